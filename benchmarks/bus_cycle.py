"""Read+write cycle rate of four ALOHA arm buses on the emulator, and bytes per cycle.

One cycle of one arm = the driver's sync read of present current..temperature of 9 motors
(with the ALERT bit) + the sync write of 7 goal positions (followers). Each arm has its own
U2D2, so the four buses run in parallel processes (one per arm driver, as on the robot), each
against its own emulator process on a pty. The emulator does not model wire time, so the host
rate is what the software achieves; the 1 Mbps wire time is computed from the bytes
(10 bits per byte).

    .venv/bin/python benchmarks/bus_cycle.py [--seconds 5] [--plot runs/bus_cycle.png]
"""
import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import parse_arm
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelCommError
from cosmos_policy_ros.names import ARMS

MODEL = {'follower_left': 'aloha_vx300s', 'follower_right': 'aloha_vx300s',
         'leader_left': 'aloha_wx250s', 'leader_right': 'aloha_wx250s'}


def bench_arm(name: str, link: str, seconds: float) -> tuple:
    """In its own process: connect, then cycle for `seconds`.
    Returns (cycle times, tx bytes, rx bytes, retries, failed cycles)."""
    # More retries than the driver's default: 8 busy processes on a small shared CPU starve
    # the emulators (the sdk busy-waits); the retries are reported.
    arm = Arm(parse_arm(name, {'port': link, 'num_retry': 5}))
    for attempt in range(3):
        try:
            arm.connect()
            break
        except DynamixelCommError:
            if attempt == 2:
                raise
    tx0, rx0 = arm.bus.stats.tx_bytes, arm.bus.stats.rx_bytes
    goal, times, failed = np.zeros(7), [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        try:
            arm.read()
            if arm.config.is_follower:
                arm.write_goal(goal)
        except DynamixelCommError:
            failed += 1            # counted, as the driver does; the next cycle goes on
            continue
        times.append(time.perf_counter() - start)
    result = (times, arm.bus.stats.tx_bytes - tx0, arm.bus.stats.rx_bytes - rx0,
              arm.bus.stats.retries, failed)
    arm.close()
    return result


def plot(times: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in times.items():
        ax.hist(np.array(values) * 1e3, bins=60, histtype='step', label=name)
    ax.axvline(10.0, color='k', linestyle='--', label='100 Hz budget')
    ax.set_xlabel('read+write cycle time on the emulator [ms]')
    ax.set_ylabel('cycles')
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    print(f'plot: {path}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--plot', default='', help='save a cycle-time histogram here')
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bus_cycle_'))
    links = {arm: tmp / f'ttyDXL_{arm}' for arm in ARMS}
    servers = [subprocess.Popen([sys.executable, '-m',
                                 'cosmos_policy_ros.hardware.dynamixel.emulator',
                                 '--arm', f'{links[a]}={MODEL[a]}'],
                                stdout=subprocess.PIPE, text=True) for a in ARMS]
    try:
        for server in servers:
            assert server.stdout.readline().strip() == 'ready', 'emulator did not start'
        with multiprocessing.get_context('spawn').Pool(len(ARMS)) as pool:
            jobs = {a: pool.apply_async(bench_arm, (a, str(links[a]), args.seconds))
                    for a in ARMS}
            for _ in tqdm(range(int(args.seconds * 10) + 100), desc='benchmark', unit='0.1s'):
                if all(job.ready() for job in jobs.values()):
                    break
                time.sleep(0.1)
            results = {a: job.get(timeout=60) for a, job in jobs.items()}
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
    print('\narm             cycles/s  mean ms  p99 ms  tx B/cyc  rx B/cyc  1Mbps wire ms  '
          'wire-limited Hz  retries  failed')
    for name in ARMS:
        times, tx, rx, retries, failed = results[name]
        n = max(1, len(times))
        wire_ms = (tx + rx) / n * 10 / 1e6 * 1e3
        cycle = np.array(times) * 1e3
        print(f'{name:15s} {n / args.seconds:8.1f} {cycle.mean():8.2f} '
              f'{np.percentile(cycle, 99):7.2f} {tx / n:9.1f} {rx / n:9.1f} {wire_ms:14.2f} '
              f'{1e3 / wire_ms:16.0f} {retries:8d} {failed:7d}')
    total = sum(len(r[0]) for r in results.values()) / args.seconds
    print(f'all four arms: {total:.0f} arm-cycles/s on this host (no wire time in the emulator;'
          ' a shared CPU inflates the timings). Each bus has its own U2D2 at 1 Mbps: the wire '
          'time above against the 10 ms of a 100 Hz cycle is the headroom (add ~1 ms USB '
          'latency per transaction with latency_timer=1).')
    if args.plot:
        plot({a: r[0] for a, r in results.items()}, args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
