"""`cosmos-policy-ros build-engine`: export a policy to ONNX and build its engines into the
engine cache, so the first query of a node does not pay for it.

    cosmos-policy-ros build-engine --checkpoint sim_transfer_cube --runtime onnxruntime
    cosmos-policy-ros build-engine --preset 2b --checkpoint Cosmos-Policy-ALOHA-Predict2-2B.pt \\
        --device cuda --dtype bfloat16 --runtime tensorrt --max-batch 8

Prints the cache directory, whether it was built or reused, and the time. A node started
with the same checkpoint, device, dtype and runtime (and `engine_cache`) reuses it.
"""


def add_arguments(parser) -> None:
    from cosmos_policy_ros.runtime.engine_cache import DEFAULT_MAX_BATCH, DEFAULT_PARTS
    from cosmos_policy_ros.runtime.onnx_export import PARTS
    parser.add_argument('--preset', default='tiny', help='model preset (ignored when the '
                        'checkpoint directory carries its own)')
    parser.add_argument('--checkpoint', default='',
                        help="weights: a shipped model name, a directory or a released .pt "
                        "('' = random weights of the preset)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16', 'float16'))
    parser.add_argument('--runtime', default='tensorrt', choices=('tensorrt', 'onnxruntime'))
    parser.add_argument('--max-batch', type=int, default=DEFAULT_MAX_BATCH,
                        help='largest batch the engines take (best-of-N candidates)')
    parser.add_argument('--parts', nargs='+', default=list(DEFAULT_PARTS), choices=PARTS,
                        help='networks to build (vae_decoder serves decode_future only)')
    parser.add_argument('--engine-cache', default='',
                        help="cache directory ('' = $COSMOS_POLICY_ENGINE_CACHE or "
                        '~/.cache/cosmos_policy_ros/engines)')


def run(args) -> int:
    from cosmos_policy_ros.model.checkpoint import CheckpointError
    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.runtime.engine_cache import prepare_engines
    from cosmos_policy_ros.runtime.parts import RuntimeUnavailable, check_available
    if args.max_batch < 1:
        print(f'error: --max-batch must be >= 1, got {args.max_batch}')
        return 2
    try:
        check_available(args.runtime, args.device)
        policy = CosmosPolicy.from_config(preset=args.preset,
                                          checkpoint=args.checkpoint or None,
                                          device=args.device, dtype=args.dtype)
        prepared = prepare_engines(policy, args.runtime, args.engine_cache or None,
                                   max_batch=args.max_batch, parts=tuple(args.parts))
    except RuntimeUnavailable as exc:
        print(f'error: {exc}')
        return 2
    except (ValueError, CheckpointError, FileNotFoundError) as exc:
        print(f'error: {exc}')
        return 2
    action = 'built' if prepared.built else 'reused (already current)'
    print(f'{args.runtime} engines {action} in {prepared.build_seconds:.1f} s: '
          f'{prepared.directory}')
    print(f'key: {prepared.key.device_name}, {prepared.key.runtime_version}, '
          f'{prepared.key.precision}, batch 1..{prepared.key.max_batch}, parts '
          f'{", ".join(prepared.key.shapes)}')
    return 0
