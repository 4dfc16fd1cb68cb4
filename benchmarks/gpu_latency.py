"""GPU latency of the policy per runtime: one prepared command for a lent GPU (<= 8 min).

    python benchmarks/gpu_latency.py --out runs/gpu_latency            # 2b, bf16, cuda
    python benchmarks/gpu_latency.py --preset tiny --image-size 64 --device cpu \
        --dtype float32 --runtimes eager onnxruntime --repeats 1 --out /tmp/gpu_smoke

What it measures (2b preset, random weights, no network, no downloads):
- obs -> 50x14 chunk at 1 and 10 denoising steps for each runtime given (default: eager,
  compile, cuda_graphs; tensorrt too when its engines are already in the cache: build them
  first with `cosmos-policy-ros build-engine --preset 2b --device cuda --dtype bfloat16`,
  which is not inside the 8-minute budget), median of --repeats after a warm-up, with the
  VAE-encode and denoise split and the peak GPU memory of each runtime;
- best-of-8 planning with the paper's ensembles (3 futures x 5 values: 61 DiT calls of
  batch 8) and a lean 1 x 1 setting, on the first runtime;
- ROS messages -> tensors on the CPU (3 rgb8 480x640 Images + 2 JointStates -> the
  policy's inputs on the device).
A stage that would not fit in --budget seconds is recorded as skipped. Writes
<out>/gpu_latency.json and <out>/gpu_latency.md (the table) and prints the table.
"""
import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
from cosmos_policy_ros.model.text import TextEmbeddings
from cosmos_policy_ros.names import CAMERAS, IMAGE_HEIGHT, IMAGE_WIDTH
from cosmos_policy_ros.planning.best_of_n import BestOfN, PlanningConfig
from cosmos_policy_ros.runtime import RUNTIMES

TASK = 'benchmark task'
PLANS = {'paper (8 x 3 futures x 5 values)': PlanningConfig(num_candidates=8),
         'lean (8 x 1 x 1)': PlanningConfig(num_candidates=8, future_steps=(1,),
                                            value_steps=(1,))}


class Clock:
    def __init__(self, budget: float):
        self.start, self.budget = time.monotonic(), budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> tuple[float, object]:
    """(median seconds, last result) after one warm-up call."""
    result = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build_policy(args) -> CosmosPolicy:
    """Random weights built on the device (a 2b init on the CPU would take minutes)."""
    from cosmos_policy_ros.model.dit import DiT
    from cosmos_policy_ros.model.vae import WanVAE
    preset = get_preset(args.preset)
    if args.image_size:
        preset = dataclasses.replace(preset, image_size=args.image_size)
    torch.manual_seed(0)
    with torch.device(args.device):
        dit, vae = DiT(preset.dit), WanVAE(preset.vae)
    gen = torch.Generator().manual_seed(0)
    text = TextEmbeddings(preset.text_tokens, preset.text_dim, {
        TASK: torch.randn(1, preset.text_tokens, preset.text_dim, generator=gen)})
    return CosmosPolicy(preset, dit, vae, text, device=args.device, dtype=args.dtype)


def observation() -> Observation:
    rng = np.random.default_rng(0)
    return Observation({c: rng.integers(0, 256, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
                        for c in CAMERAS}, rng.normal(size=14) * 0.1, TASK)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else None


def bench_runtime(policy, runtime: str, args, clock: Clock, obs) -> dict:
    device = policy.device
    row = {'runtime': runtime}
    try:
        if runtime == 'tensorrt':
            from cosmos_policy_ros.runtime.engine_cache import (
                default_cache_dir,
                engine_dir,
                engine_key,
                is_current,
            )
            key = engine_key(policy, 'tensorrt')
            directory = engine_dir(default_cache_dir(), policy.preset.name, key)
            if not is_current(directory, key):
                return {**row, 'skipped': 'no current TensorRT engines in the cache: run '
                        'cosmos-policy-ros build-engine first (not in the time budget)'}
        start = time.perf_counter()
        policy.use_runtime(runtime)
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        for steps in (1, 10):
            if clock.left() < args.stage_reserve:
                row[f'{steps}_steps'] = 'skipped: time budget'
                continue
            seconds, out = timed(lambda n=steps: policy.predict(obs, num_steps=n), device,
                                 args.repeats)
            assert out.actions.shape == (1, 50, 14) and np.isfinite(out.actions).all()
            row[f'{steps}_steps_ms'] = seconds * 1000
            row[f'{steps}_steps_split_ms'] = {k: v * 1000 for k, v in out.timings.items()}
        row['first_call_s'] = time.perf_counter() - start     # includes compile/capture
        row['peak_gib'] = peak_gib(device)
    except Exception as exc:        # one runtime failing must not lose the others' figures
        row['error'] = f'{type(exc).__name__}: {exc}'
    finally:
        policy.use_runtime('eager')
    return row


def bench_planning(policy, runtime: str, args, clock: Clock, obs) -> dict:
    rows = {}
    policy.use_runtime(runtime)
    for name, config in PLANS.items():
        if clock.left() < args.stage_reserve * 3:
            rows[name] = 'skipped: time budget'
            continue
        planner = BestOfN(policy, config=config)
        if policy.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(policy.device)
        seconds, plan = timed(lambda p=planner: p.plan(obs), policy.device, 1)
        rows[name] = {'s': seconds, 'stages_s': plan.timings, 'peak_gib': peak_gib(policy.device)}
    policy.use_runtime('eager')
    return {'runtime': runtime, **rows}


def bench_messages(policy, repeats: int) -> dict:
    """ROS messages -> the policy's input tensors, as the nodes convert them (CPU)."""
    try:
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import JointState

        from cosmos_policy_ros.calibration import get_gripper_preset
        from cosmos_policy_ros.names import FOLLOWERS, JOINT_STATE_NAMES
        from cosmos_policy_ros.ros.image import to_msg, to_rgb
        from cosmos_policy_ros.ros.observation import proprio_from_joint_states
    except ImportError as exc:
        return {'skipped': f'ROS messages unavailable ({exc})'}
    rng = np.random.default_rng(1)
    images = {c: to_msg(rng.integers(0, 256, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8),
                        Time(), c) for c in CAMERAS}
    states = {}
    for arm in FOLLOWERS:
        msg = JointState()
        msg.name = list(JOINT_STATE_NAMES)
        msg.position = [0.1] * len(JOINT_STATE_NAMES)
        states[arm] = msg
    gripper = get_gripper_preset('aloha2_mobile')

    def convert():
        obs = Observation({c: to_rgb(m) for c, m in images.items()},
                          proprio_from_joint_states(states, gripper), TASK)
        return policy.prepare([obs])

    seconds, _ = timed(convert, policy.device, repeats)
    return {'ms': seconds * 1000}


def table(report: dict) -> str:
    lines = [f'# GPU latency: {report["device_name"]}, preset {report["preset"]}, '
             f'{report["dtype"]}', '',
             '| runtime | 1 step [ms] | 10 steps [ms] | first call [s] | peak [GiB] | note |',
             '|---|---|---|---|---|---|']

    def cell(value, fmt):
        return fmt.format(value) if isinstance(value, (int, float)) else '-'

    for row in report['runtimes']:
        note = row.get('skipped') or row.get('error') or ''
        lines.append(f'| {row["runtime"]} | {cell(row.get("1_steps_ms"), "{:.1f}")} | '
                     f'{cell(row.get("10_steps_ms"), "{:.1f}")} | '
                     f'{cell(row.get("first_call_s"), "{:.1f}")} | '
                     f'{cell(row.get("peak_gib"), "{:.2f}")} | {note} |')
    planning = report.get('planning', {})
    lines += ['', f'Best-of-8 planning ({planning.get("runtime", "-")}):', '',
              '| setting | s | peak [GiB] |', '|---|---|---|']
    for name in PLANS:
        value = planning.get(name)
        if isinstance(value, dict):
            lines.append(f'| {name} | {value["s"]:.2f} | {cell(value["peak_gib"], "{:.2f}")} |')
        else:
            lines.append(f'| {name} | {value or "-"} | - |')
    messages = report['messages']
    lines += ['', 'ROS messages -> tensors (CPU): '
              + (f'{messages["ms"]:.1f} ms' if 'ms' in messages else messages['skipped'])]
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='2b')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='bfloat16', choices=('bfloat16', 'float16',
                                                                'float32'))
    parser.add_argument('--runtimes', nargs='+', default=['eager', 'cuda_graphs', 'compile',
                                                          'tensorrt'], choices=RUNTIMES)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--budget', type=float, default=450.0, help='seconds for everything')
    parser.add_argument('--stage-reserve', type=float, default=30.0,
                        help='skip a stage when fewer seconds than this are left')
    parser.add_argument('--image-size', type=int, default=0,
                        help="override the preset's image size (CPU smoke test: 64)")
    parser.add_argument('--no-planning', action='store_true')
    parser.add_argument('--out', type=Path, default=Path('runs/gpu_latency'))
    args = parser.parse_args()
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('no CUDA device here; for a CPU smoke test pass --device cpu '
                     '--dtype float32 --preset tiny')
    clock = Clock(args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    policy = build_policy(args)
    obs = observation()
    device = policy.device
    report = {'preset': args.preset, 'dtype': args.dtype, 'device': args.device,
              'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda'
                              else f'cpu ({platform.processor() or platform.machine()}, '
                                   f'{torch.get_num_threads()} threads)'),
              'torch': torch.__version__, 'runtimes': []}
    for runtime in args.runtimes:
        report['runtimes'].append(bench_runtime(policy, runtime, args, clock, obs))
        print(json.dumps(report['runtimes'][-1]), flush=True)
    if not args.no_planning:
        report['planning'] = bench_planning(policy, args.runtimes[0], args, clock, obs)
    report['messages'] = bench_messages(policy, args.repeats)
    report['wall_s'] = time.monotonic() - clock.start
    (args.out / 'gpu_latency.json').write_text(json.dumps(report, indent=1, default=str))
    text = table(report)
    (args.out / 'gpu_latency.md').write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
