"""ROS pipeline latency and control-tick jitter of the aloha_policy graph on the sim.

Time from the newest camera message (its receipt by the policy node) to the chunk being
published, split into: wait (trigger/poll until the query starts), ROS message -> tensors,
model, publish; and the 25 Hz control tick's jitter (p50/p99 of |interval - 40 ms|, node
clock = sim time, as the controller measures it) plus the command stream's rate in sim time.

    CPU, tiny preset:  .venv/bin/python benchmarks/ros_pipeline.py --preset tiny --duration 60
    GPU, 2b preset:    .venv/bin/python benchmarks/ros_pipeline.py --preset 2b --device cuda \
                           --dtype bfloat16 --num-steps 10 --duration 120
Prints a table, writes <out>/ros_pipeline.json and a latency plot.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cosmos_policy_ros.commands.run_policy import PolicyRunObserver
from cosmos_policy_ros.graphs import build_graph
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.rosenv import apply_loopback_env


def stage_table(latencies: list) -> dict:
    rows = {}
    for entry in latencies:
        entry = dict(entry)
        entry['wait_s'] = (entry['camera_to_publish_s'] - entry['convert_s'] - entry['model_s']
                           - entry['publish_s'])
        for stage in ('camera_to_publish_s', 'wait_s', 'convert_s', 'model_s', 'publish_s'):
            rows.setdefault(stage, []).append(entry[stage])
        for stage, value in entry.get('model_stages_s', {}).items():
            rows.setdefault(f'model.{stage}', []).append(value)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--num-steps', type=int, default=10)
    parser.add_argument('--mode', default='sync', choices=('sync', 'async'))
    parser.add_argument('--duration', type=float, default=60.0, help='wall seconds measured')
    parser.add_argument('--camera-rate', type=float, default=10.0)
    parser.add_argument('--out', default='runs/bench_ros_pipeline')
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = build_graph('aloha_policy', {
        'use_sim': 'true', 'preset': args.preset, 'device': args.device, 'dtype': args.dtype,
        'num_steps': str(args.num_steps), 'mode': args.mode,
        'camera_rate': str(args.camera_rate),
        'max_jump_rad': '0'})        # random weights jump by design; the latency is measured
    domain = apply_loopback_env()
    from cosmos_policy_ros.ros.client import GraphClient
    with GraphProcesses(specs, out / 'logs', domain_id=domain) as procs:
        client = GraphClient('bench_ros_pipeline', use_sim_time=True)
        observer = PolicyRunObserver(client)
        start = time.monotonic()
        with tqdm(total=int(args.duration), unit='s', desc=f'{args.preset} {args.device}') as bar:
            while time.monotonic() - start < args.duration:
                time.sleep(1.0)
                procs.check_alive()
                bar.update(1)
                bar.set_postfix(chunks=observer.chunks.count)
        summary = observer.summary(time.monotonic() - start)
        latencies = [json.loads(m.data) for m in observer.latency.messages()]
        times, _ = observer.command_series()
        client.close()
    rows = stage_table(latencies[1:])          # the first query includes warm-up
    print(f'{args.preset} on {args.device} ({args.dtype}), {args.num_steps} steps, '
          f'{args.mode}; {len(latencies)} chunks in {summary["wall_s"]:.0f} s wall'
          + ('; policy UNTRAINED' if summary['untrained'] else ''))
    print(f'{"stage":34s} {"p50 [ms]":>9} {"p95 [ms]":>9} {"max [ms]":>9}')
    for stage, values in rows.items():
        v = np.array(values) * 1e3
        print(f'{stage:34s} {np.percentile(v, 50):9.1f} {np.percentile(v, 95):9.1f} '
              f'{v.max():9.1f}')
    counts = summary['controller']
    intervals = np.diff(times) if len(times) > 1 else np.zeros(1)
    print('control tick jitter (controller, node clock): '
          f'p50 {counts.get("jitter_p50", 0) * 1e3:.1f} ms, '
          f'p99 {counts.get("jitter_p99", 0) * 1e3:.1f} ms')
    print(f'command stream: {summary["command_rate_sim_hz"]:.2f} Hz median in sim time, '
          f'|interval - 40 ms| p50 {np.percentile(np.abs(intervals - 0.04), 50) * 1e3:.1f} ms, '
          f'p99 {np.percentile(np.abs(intervals - 0.04), 99) * 1e3:.1f} ms')
    result = {'args': vars(args), 'summary': summary,
              'stages_ms': {k: {'p50': float(np.percentile(v, 50) * 1e3),
                                'p95': float(np.percentile(v, 95) * 1e3)}
                            for k, v in rows.items()}}
    (out / 'ros_pipeline.json').write_text(json.dumps(result, indent=1))
    if rows:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 4))
        stages = [s for s in ('wait_s', 'convert_s', 'model_s', 'publish_s') if s in rows]
        ax.boxplot([np.array(rows[s]) * 1e3 for s in stages], tick_labels=stages)
        ax.set_ylabel('ms')
        ax.set_title(f'camera -> chunk published, {args.preset} on {args.device}')
        fig.tight_layout()
        fig.savefig(out / 'ros_pipeline.png', dpi=110)
    print(f'wrote {out / "ros_pipeline.json"}')


if __name__ == '__main__':
    main()
