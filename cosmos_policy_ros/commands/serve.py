"""`cosmos-policy-ros serve --checkpoint C`: serve the policy over openpi websocket and /act.

One port: openpi clients connect to ws://HOST:PORT (metadata on connect, msgpack observation
-> action chunk), the reference deploy script's clients POST http://HOST:PORT/act, and
GET /healthz answers 200 once the model is loaded. Binds 127.0.0.1 unless --host says
otherwise; any other address needs a token (--token-file or COSMOS_POLICY_TOKEN), which
clients send as "Authorization: Api-Key <token>". No ROS needed (docs/serving.md).
"""
import os
import signal
import threading
from pathlib import Path

from cosmos_policy_ros.sim.tasks import TASKS


def add_arguments(parser) -> None:
    model = parser.add_argument_group('model')
    model.add_argument('--checkpoint', default='',
                       help="released .pt, checkpoint directory or shipped model name ('' = "
                       'UNTRAINED random weights)')
    model.add_argument('--preset', default=None,
                       help='models/<preset>.yaml or a preset YAML (default: 2b for a .pt, '
                       "the checkpoint's own for a directory, tiny without a checkpoint)")
    model.add_argument('--statistics', default='', help="dataset statistics JSON ('' = the "
                       "checkpoint's, else config/sim_statistics.json)")
    model.add_argument('--text', default='',
                       help="text embeddings: the released T5 pickle, a .safetensors cache, a T5 "
                       "model directory or 'minilm' ('' = the preset's encoder: MiniLM for "
                       'tiny/small; 2b needs T5)')
    model.add_argument('--device', default='cpu', help='torch device (cpu, cuda, cuda:1)')
    model.add_argument('--dtype', default='float32',
                       choices=('float32', 'bfloat16', 'float16'))
    model.add_argument('--num-steps', type=int, default=10,
                       help='denoising steps when a request does not say')
    model.add_argument('--max-num-steps', type=int, default=100,
                       help='largest num_steps a request may ask for')
    model.add_argument('--seed', type=int, default=0,
                       help='base noise seed (incremented per query without a seed)')
    prompt = model.add_mutually_exclusive_group()
    prompt.add_argument('--task', default=None, choices=tuple(TASKS),
                        help="default prompt: this task's instruction (openpi requests "
                        'without "prompt")')
    prompt.add_argument('--prompt', default='', help='default prompt text')
    model.add_argument('--decode-future', action='store_true',
                       help='decode predicted future images (/act future_image_predictions; '
                       'openpi requests with decode_future)')
    model.add_argument('--torch-threads', type=int, default=0,
                       help='torch CPU threads (0: torch default)')
    model.add_argument('--no-warmup', action='store_true',
                       help='skip the warm-up inference before listening')
    net = parser.add_argument_group('network')
    net.add_argument('--host', default='127.0.0.1',
                     help='bind address (anything but 127.0.0.1/localhost/::1 needs a token)')
    net.add_argument('--port', type=int, default=8000,
                     help='TCP port (openpi default 8000; 0 picks a free one)')
    net.add_argument('--token-file', default='',
                     help='file holding the token (else the COSMOS_POLICY_TOKEN environment '
                     'variable); never pass a token on the command line')
    net.add_argument('--max-message-mb', type=float, default=16.0,
                     help='largest websocket message or /act body [MiB]')
    net.add_argument('--max-connections', type=int, default=16)


def read_token(path: str) -> str | None:
    if path:
        token = Path(path).read_text().strip()
        if not token:
            raise ValueError(f'--token-file {path}: the file is empty')
        return token
    return os.environ.get('COSMOS_POLICY_TOKEN') or None


def warmup(service) -> float:
    """One inference on grey frames, so the first client does not pay for lazy init."""
    import time

    import numpy as np

    from cosmos_policy_ros.names import CAMERAS, STATE_DIM
    from cosmos_policy_ros.serving.schema import Query
    size = max(hw[0] for hw in service.limits.image_sizes if hw[0] == hw[1])
    images = {cam: np.full((size, size, 3), 128, np.uint8) for cam in CAMERAS}
    start = time.perf_counter()
    service.infer(Query(images=images, proprio=np.zeros(STATE_DIM), prompt='warm up',
                        seed=0, num_steps=1))
    service.queries = 0
    return time.perf_counter() - start


def run(args) -> int:
    from cosmos_policy_ros.serving.server import ConfigError, PolicyServer, ServerConfig
    from cosmos_policy_ros.serving.service import PolicyService, load_policy
    try:
        config = ServerConfig(host=args.host, port=args.port, token=read_token(args.token_file),
                              max_message_bytes=int(args.max_message_mb * 2**20),
                              max_connections=args.max_connections)
        from cosmos_policy_ros.serving.server import check_bind
        check_bind(config.host, config.token)      # before the (slow) model load
    except (ConfigError, OSError, ValueError) as exc:
        print(f'error: {exc}')
        return 2
    if args.torch_threads:
        import torch
        torch.set_num_threads(args.torch_threads)
    prompt = args.prompt or (TASKS[args.task].instruction if args.task else None)
    try:
        model = load_policy(args.preset, args.checkpoint or None, args.statistics or None,
                            args.text or None, args.device, args.dtype)
        info = {'preset': model.preset.name, 'checkpoint': Path(args.checkpoint).name,
                'untrained': not args.checkpoint,
                'status': 'trained' if args.checkpoint else 'UNTRAINED (random weights)',
                'device': args.device, 'dtype': args.dtype}
        service = PolicyService(model, num_steps=args.num_steps, seed=args.seed,
                                default_prompt=prompt, max_num_steps=args.max_num_steps,
                                decode_future=args.decode_future, info=info)
    except (ValueError, OSError) as exc:
        print(f'error: {exc}')
        return 2
    if not args.no_warmup:
        print(f'warm-up inference: {warmup(service):.2f} s', flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = PolicyServer(service, config).start()
    except OSError as exc:
        print(f'error: {exc}')
        return 1
    with_token = 'required' if config.token else 'not required (loopback)'
    print(f'policy: preset {info["preset"]}, {info["status"]}, {args.num_steps} steps, '
          f'{args.device}', flush=True)
    if not args.checkpoint:
        print('warning: the policy is UNTRAINED (no --checkpoint): random weights', flush=True)
    print(f'serving openpi websocket on {server.url}, POST {server.http_url}/act, '
          f'GET {server.http_url}/healthz; token {with_token}', flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        print(f'stopped; {server.stats}', flush=True)
    return 0
