"""Policy server overhead on loopback and throughput with concurrent clients.

Each request carries what a robot sends: 3 camera frames of 224 x 224 x 3 uint8 + 14-d proprio.
The server runs in its own process on 127.0.0.1 (as on a GPU box), the clients in this one.

1. Serving overhead, isolated: the server's model is a stand-in that answers at once, so the
   round trip is all transport, codec, validation and thread hand-offs. Overhead = round
   trip - the server's own model time (server_timing.infer_ms), per request; plus the CPU
   both processes spend per request (robust on a shared machine, where waits are not).
2. The same with the real model (`--preset`, random weights): in-process predict vs remote.
3. Throughput: 1 client in sequence vs `--clients` concurrent clients (one connection each).

    .venv/bin/python benchmarks/policy_server.py                       # tiny model, CPU
    .venv/bin/python benchmarks/policy_server.py --preset 2b --device cuda --dtype bfloat16
Prints a table, writes <out>/policy_server.json.
"""
import argparse
import json
import multiprocessing
import os
import threading
import time
import types
from pathlib import Path

import numpy as np

from cosmos_policy_ros.names import CAMERAS
from cosmos_policy_ros.serving import codec
from cosmos_policy_ros.serving.client import PolicyClient

ACT_KEYS = {'primary_image': 'cam_high', 'left_wrist_image': 'cam_left_wrist',
            'right_wrist_image': 'cam_right_wrist'}
TASK = 'transfer the red cube to the other arm'


class InstantModel:
    """Answers at once with a chunk of the right shape (isolates the serving cost)."""
    preset = types.SimpleNamespace(image_size=224, name='instant')

    def predict(self, observation, num_steps, seeds, decode_future=False):
        actions = np.tile(np.asarray(observation.proprio, np.float32), (1, 50, 1))
        return types.SimpleNamespace(actions=actions, value=np.array([0.5], np.float32),
                                     future_images=None, timings={})


def serve(kind: str, args, ports, stop) -> None:
    """Server process: `kind` 'instant' or 'model'."""
    from cosmos_policy_ros.serving.server import PolicyServer, ServerConfig
    from cosmos_policy_ros.serving.service import PolicyService, load_policy
    if kind == 'model':
        import torch
        torch.set_num_threads(args.threads)
        model = load_policy(args.preset, None, None, 'minilm', args.device, args.dtype)
    else:
        model = InstantModel()
    service = PolicyService(model, num_steps=args.num_steps, default_prompt=TASK)
    server = PolicyServer(service, ServerConfig(port=0, max_connections=64)).start()
    ports.put(server.port)
    stop.wait()
    server.stop()


class ServerProcess:
    def __init__(self, kind: str, args):
        context = multiprocessing.get_context('spawn')
        ports, self.stop = context.Queue(), context.Event()
        self.process = context.Process(target=serve, args=(kind, args, ports, self.stop),
                                       daemon=True)
        self.process.start()
        self.port = ports.get(timeout=600)
        self.url = f'ws://127.0.0.1:{self.port}'

    def cpu_seconds(self) -> float:
        fields = Path(f'/proc/{self.process.pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

    def close(self) -> None:
        self.stop.set()
        self.process.join(30)


def inputs(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    images = {cam: rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for cam in CAMERAS}
    return images, rng.uniform(-1, 1, 14)


def openpi_caller(url: str):
    """The real openpi-client when installed, else ours (same protocol)."""
    images, state = inputs()
    obs = {'state': state, 'images': images, 'prompt': TASK}
    try:
        from openpi_client.websocket_client_policy import WebsocketClientPolicy
        client = WebsocketClientPolicy(url)
        name = 'openpi-client'
    except ImportError:
        client, name = PolicyClient(url), 'PolicyClient'
    return (lambda: client.infer(obs)['server_timing']['infer_ms'] / 1e3), name


def act_caller(http_url: str, encoded: bool):
    import requests
    images, state = inputs()
    body = {**{key: images[cam] for key, cam in ACT_KEYS.items()}, 'proprio': state,
            'task_description': TASK}
    data = codec.dumps_json(body)
    if encoded:
        data = json.dumps({'encoded': data})
    session = requests.Session()

    def call():
        reply = session.post(f'{http_url}/act', data=data, timeout=600)
        reply.raise_for_status()
        text = reply.json()
        text = json.loads(text) if encoded else text
        return text['server_timing']['infer_ms'] / 1e3
    return call, 'requests + json_numpy layout' + (' (encoded)' if encoded else '')


def measure(call, server: ServerProcess, count: int) -> dict:
    call()                                              # warm-up (connection, caches)
    rtt, model = [], []
    cpu_server, cpu_client = server.cpu_seconds(), time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        model.append(call())
        rtt.append(time.perf_counter() - start)
    cpu_server = server.cpu_seconds() - cpu_server
    cpu_client = time.process_time() - cpu_client
    rtt, model = np.array(rtt), np.array(model)
    overhead = rtt - model
    ms = lambda x: round(float(x) * 1e3, 3)            # noqa: E731
    return {'n': count, 'rtt_p50_ms': ms(np.median(rtt)), 'rtt_p90_ms': ms(np.percentile(rtt, 90)),
            'model_p50_ms': ms(np.median(model)), 'overhead_p50_ms': ms(np.median(overhead)),
            'overhead_p90_ms': ms(np.percentile(overhead, 90)),
            'server_cpu_ms_per_request': ms(cpu_server / count),
            'client_cpu_ms_per_request': ms(cpu_client / count)}


def throughput(url: str, clients: int, per_client: int) -> dict:
    images, state = inputs()
    obs = {'state': state, 'images': images, 'prompt': TASK}
    connections = [PolicyClient(url) for _ in range(clients)]
    for connection in connections:
        connection.infer(obs, 600)                     # warm-up
    latencies, errors = [], []
    barrier = threading.Barrier(clients)

    def run(connection):
        barrier.wait()
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                connection.infer(obs, 600)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(str(exc))
            latencies.append(time.perf_counter() - start)
    threads = [threading.Thread(target=run, args=(c,)) for c in connections]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for connection in connections:
        connection.close()
    done = clients * per_client - len(errors)
    return {'clients': clients, 'requests': clients * per_client, 'errors': len(errors),
            'requests_per_s': round(done / wall, 2),
            'latency_p50_ms': round(float(np.median(latencies)) * 1e3, 2)}


def in_process(args, count: int) -> dict:
    import torch

    from cosmos_policy_ros.model.policy import Observation
    from cosmos_policy_ros.serving.service import load_policy
    torch.set_num_threads(args.threads)
    model = load_policy(args.preset, None, None, 'minilm', args.device, args.dtype)
    images, state = inputs()
    observation = Observation(images=images, proprio=state, task=TASK)
    model.predict(observation, num_steps=args.num_steps, seeds=0)
    times = []
    for i in range(count):
        start = time.perf_counter()
        model.predict(observation, num_steps=args.num_steps, seeds=i)
        times.append(time.perf_counter() - start)
    del model
    return {'n': count, 'predict_p50_ms': round(float(np.median(times)) * 1e3, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--num-steps', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--requests', type=int, default=200, help='per transport, instant')
    parser.add_argument('--model-requests', type=int, default=5, help='per transport, model')
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--out', default='runs/bench_policy_server')
    args = parser.parse_args()
    result = {'machine': {'cpus': os.cpu_count(), 'load_avg_start': os.getloadavg(),
                          'nice': os.nice(0)}, 'args': vars(args)}

    instant = ServerProcess('instant', args)
    try:
        rows = {}
        for make in (lambda: openpi_caller(instant.url),
                     lambda: act_caller(f'http://127.0.0.1:{instant.port}', False),
                     lambda: act_caller(f'http://127.0.0.1:{instant.port}', True)):
            call, name = make()
            rows[name] = measure(call, instant, args.requests)
        result['instant'] = rows
        result['throughput_instant'] = [throughput(instant.url, 1, args.requests // 2),
                                        throughput(instant.url, args.clients,
                                                   args.requests // args.clients)]
    finally:
        instant.close()

    result['in_process'] = in_process(args, args.model_requests)
    served = ServerProcess('model', args)
    try:
        rows = {}
        for make in (lambda: openpi_caller(served.url),
                     lambda: act_caller(f'http://127.0.0.1:{served.port}', False)):
            call, name = make()
            rows[name] = measure(call, served, args.model_requests)
        result['model'] = rows
        result['throughput_model'] = [throughput(served.url, 1, 2),
                                      throughput(served.url, args.clients, 2)]
    finally:
        served.close()
    result['machine']['load_avg_end'] = os.getloadavg()
    report(result, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'policy_server.json').write_text(json.dumps(result, indent=1))
    print(f'wrote {out / "policy_server.json"}')


def report(result: dict, args) -> None:
    machine = result['machine']
    print(f'{machine["cpus"]} CPUs, load average {machine["load_avg_start"][0]:.1f} -> '
          f'{machine["load_avg_end"][0]:.1f}, nice {machine["nice"]}; 3 x 224x224 RGB + '
          '14-d proprio per request, server on 127.0.0.1 in its own process')
    header = (f'{"model / client":48s} {"n":>4s} {"RTT p50":>9s} {"p90":>8s} '
              f'{"model p50":>10s} {"overhead p50":>13s} {"p90":>8s} {"CPU/req srv+cli":>16s}')
    print(header)
    for section, label in (('instant', 'instant'), ('model', args.preset)):
        for name, row in result[section].items():
            print(f'{label + ": " + name:48s} {row["n"]:4d} {row["rtt_p50_ms"]:7.2f}ms '
                  f'{row["rtt_p90_ms"]:6.2f}ms {row["model_p50_ms"]:8.2f}ms '
                  f'{row["overhead_p50_ms"]:11.2f}ms {row["overhead_p90_ms"]:6.2f}ms '
                  f'{row["server_cpu_ms_per_request"]:7.2f}+{row["client_cpu_ms_per_request"]:.2f}ms')
    print(f'{args.preset} in-process predict p50: {result["in_process"]["predict_p50_ms"]:.1f} ms '
          f'({args.num_steps} steps, {args.device}, {args.threads} torch threads)')
    for key, label in (('throughput_instant', 'instant'), ('throughput_model', args.preset)):
        one, many = result[key]
        print(f'throughput {label}: 1 client {one["requests_per_s"]:.1f} req/s '
              f'(p50 {one["latency_p50_ms"]:.1f} ms); {many["clients"]} concurrent clients '
              f'{many["requests_per_s"]:.1f} req/s (p50 {many["latency_p50_ms"]:.1f} ms, '
              f'{many["errors"]} errors)')


if __name__ == '__main__':
    main()
