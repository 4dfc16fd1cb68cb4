"""Largest commanded step at chunk boundaries: sync vs async (splice / cross-fade) vs temporal
ensembling (sync, a query every 10 actions; async), ROS-free.

A smooth reference motion (sines on every joint) stands in for the task; each chunk is the
reference from its observation time plus a per-chunk offset (a policy whose consecutive
chunks disagree by `--disagreement` rad) and arrives `latency` after its observation. The
real ChunkExecutor, QueryTrigger and SafetyGate run on a simulated 25 Hz clock.

    .venv/bin/python benchmarks/chunk_boundaries.py [--disagreement 0.2] [--plot out.png]
"""
import argparse

import numpy as np
from tqdm import tqdm

from cosmos_policy_ros.control.chunks import DT, ChunkExecutor, StepStats
from cosmos_policy_ros.control.safety import SafetyGate, SafetyLimits
from cosmos_policy_ros.control.trigger import ControllerStatus, QueryTrigger
from cosmos_policy_ros.names import CHUNK_LENGTH, STATE_DIM


def reference(t: np.ndarray) -> np.ndarray:
    """(T, 14) smooth joint motion, 0.3 rad amplitude, periods 3-6 s."""
    periods = np.linspace(3.0, 6.0, STATE_DIM)
    return 0.3 * np.sin(2 * np.pi * t[:, None] / periods[None])


def simulate(mode: str, blend_steps: int, latency: float, disagreement: float,
             seconds: float, seed: int = 0, ensemble: bool = False,
             execute_steps: int = CHUNK_LENGTH) -> dict:
    rng = np.random.default_rng(seed)
    executor = ChunkExecutor(mode=mode, blend_steps=blend_steps, ensemble=ensemble,
                             execute_steps=execute_steps)
    trigger = QueryTrigger(mode=mode)
    gate = SafetyGate(SafetyLimits(np.full(STATE_DIM, -3.0), np.full(STATE_DIM, 3.0),
                                   np.full(STATE_DIM, 0.1)))
    gate.reset(reference(np.zeros(1))[0])
    raw, sent = StepStats(), StepStats()
    in_flight, last_stamp, commands = None, -1.0, []
    for tick in range(int(seconds / DT)):
        now = tick * DT
        status = ControllerStatus(executor.remaining(now), last_stamp, 'running')
        if in_flight is None and trigger.should_query(status, now):
            offsets = now + DT * np.arange(CHUNK_LENGTH)
            chunk = reference(offsets) + rng.normal(0.0, disagreement, STATE_DIM)
            in_flight = (now, now + latency, chunk)
        if in_flight is not None and now >= in_flight[1] - 1e-9:
            stamp, _, chunk = in_flight
            executor.submit(chunk, stamp, now)
            trigger.published(stamp, now, latency)
            last_stamp, in_flight = stamp, None
        target = executor.target(now)
        desired = gate.hold() if target is None else target.position
        boundary = target is not None and target.boundary
        raw.add(desired, boundary)
        result = gate.apply(desired)
        sent.add(result.target, boundary)
        commands.append(result.target[0])
    # The first boundary (start from rest) is the same in every mode: leave it out.
    return {'raw_boundary': max(raw.boundary_steps[1:], default=0.0),
            'sent_boundary': max(sent.boundary_steps[1:], default=0.0),
            'raw_overall': raw.max_step, 'boundaries': raw.boundaries,
            'step_clamped': gate.counts.step_clamped, 'commands': np.array(commands)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--disagreement', type=float, default=0.2,
                        help='std of the per-chunk offset [rad]')
    parser.add_argument('--latencies', type=float, nargs='+', default=[0.1, 0.3, 0.6, 1.0])
    parser.add_argument('--blend', type=int, default=8, help='async cross-fade ticks')
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--plot', default='', help='PNG of commanded joint 0 per mode')
    args = parser.parse_args()
    # (mode, blend ticks, temporal ensembling, execute_steps)
    variants = [('sync', 0, False, CHUNK_LENGTH), ('async', 0, False, CHUNK_LENGTH),
                ('async', args.blend, False, CHUNK_LENGTH), ('sync', 0, True, 10),
                ('async', 0, True, CHUNK_LENGTH)]
    rows = []
    for latency in tqdm(args.latencies, desc='latencies'):
        for mode, blend, ensemble, steps in variants:
            result = simulate(mode, blend, latency, args.disagreement, args.seconds,
                              ensemble=ensemble, execute_steps=steps)
            label = f'{mode}{" ensemble" if ensemble else ""}'
            rows.append((latency, label, blend, result))
    print(f'per-chunk disagreement {args.disagreement} rad, {args.seconds:.0f} s at 25 Hz; '
          'largest step between consecutive commands [rad] (first chunk excluded)')
    print(f'{"latency s":>9} {"mode":>14} {"blend":>5} {"boundaries":>10} '
          f'{"at boundary (raw)":>18} {"after gate":>10} {"overall raw":>11} {"clamped":>7}')
    for latency, mode, blend, r in rows:
        print(f'{latency:9.2f} {mode:>14} {blend:5d} {r["boundaries"]:10d} '
              f'{r["raw_boundary"]:18.4f} {r["sent_boundary"]:10.4f} {r["raw_overall"]:11.4f} '
              f'{r["step_clamped"]:7d}')
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(10, 4))
        shown = args.latencies[len(args.latencies) // 2]
        for latency, mode, blend, r in rows:
            if latency == shown:
                t = DT * np.arange(len(r['commands']))
                ax.plot(t, r['commands'], lw=1, label=f'{mode} blend {blend}')
        t = DT * np.arange(int(args.seconds / DT))
        ax.plot(t, reference(t)[:, 0], 'k:', lw=1, label='reference')
        ax.set_xlabel('time [s]')
        ax.set_ylabel('joint 0 command [rad]')
        ax.set_title(f'chunk boundaries, latency {shown} s, disagreement {args.disagreement}')
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
