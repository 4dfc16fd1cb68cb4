"""Read+write cycle of four ALOHA arm buses on the emulator: sync-read and sync-write times,
bytes per cycle, and the 1 Mbps wire budget. Prints a table and writes JSON.

One cycle of one arm = the driver's sync read of present current..temperature of 9 motors
(with the ALERT bit) + the sync write of 7 goal positions (followers). Each arm has its own
U2D2, so the four buses run in parallel processes (one per arm driver, as on the robot), each
against its own emulator process on a pty. Without --wire-baud the emulator answers at once, so
the times are what the software costs; the 1 Mbps wire time is computed from the bytes
(10 bits per byte). With --factory-fresh the emulated motors start as ROBOTIS ships them
(Return_Delay_Time 250 = 0.5 ms before each status packet): the sync read is timed once before
the driver configures the arm and once after (Return_Delay_Time 0).

    .venv/bin/python benchmarks/bus_cycle.py [--seconds 5] [--wire-baud 1000000]
        [--factory-fresh] [--json runs/bench/bus_cycle.json] [--plot runs/bus_cycle.png]
"""
import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import parse_arm
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelBus, DynamixelCommError
from cosmos_policy_ros.names import ARMS

MODEL = {'follower_left': 'aloha_vx300s', 'follower_right': 'aloha_vx300s',
         'leader_left': 'aloha_wx250s', 'leader_right': 'aloha_wx250s'}


def time_sync_reads(bus: DynamixelBus, ids, count: int = 50) -> float:
    """Median seconds of `count` state sync reads."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        bus.sync_read_state(ids)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_arm(name: str, link: str, seconds: float) -> dict:
    """In its own process: (time raw sync reads,) connect, then cycle for `seconds`."""
    arm = Arm(parse_arm(name, {'port': link}))
    arm.bus.connect()
    unconfigured_read_s = time_sync_reads(arm.bus, arm.ids)
    arm.connect()
    tx0, rx0 = arm.bus.stats.tx_bytes, arm.bus.stats.rx_bytes
    reads, writes, failed = [], [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            start = time.perf_counter()
            state = arm.read()
            reads.append(time.perf_counter() - start)
            if arm.config.is_follower:
                start = time.perf_counter()
                arm.write_goal(state.position[:7])
                writes.append(time.perf_counter() - start)
        except DynamixelCommError:
            failed += 1            # counted, as the driver does; the next cycle goes on
        time.sleep(0.001)          # the driver's cycle has idle time too
    result = {'unconfigured_read_ms': unconfigured_read_s * 1e3, 'reads': reads,
              'writes': writes, 'tx': arm.bus.stats.tx_bytes - tx0,
              'rx': arm.bus.stats.rx_bytes - rx0, 'retries': arm.bus.stats.retries,
              'failed': failed}
    arm.close()
    return result


def summary(name: str, r: dict) -> dict:
    n = max(1, len(r['reads']))
    read_ms, write_ms = np.array(r['reads']) * 1e3, np.array(r['writes'] or [0.0]) * 1e3
    wire_ms = (r['tx'] + r['rx']) / n * 10 / 1e6 * 1e3
    return {'arm': name, 'cycles': n, 'sync_read_ms_p50': round(float(np.median(read_ms)), 3),
            'sync_read_ms_p99': round(float(np.percentile(read_ms, 99)), 3),
            'sync_write_ms_p50': round(float(np.median(write_ms)), 3),
            'unconfigured_sync_read_ms': round(r['unconfigured_read_ms'], 3),
            'tx_bytes_per_cycle': round(r['tx'] / n, 1),
            'rx_bytes_per_cycle': round(r['rx'] / n, 1), 'wire_ms_1mbps': round(wire_ms, 2),
            'wire_limited_hz': round(1e3 / wire_ms), 'retries': r['retries'],
            'failed': r['failed']}


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        ax.hist(np.array(r['reads']) * 1e3, bins=60, histtype='step', label=name)
    ax.set_xlabel('sync read of 9 motors on the emulator [ms]')
    ax.set_ylabel('reads')
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    print(f'plot: {path}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--wire-baud', type=int, default=None,
                        help='emulators delay status packets by their wire time at this baud')
    parser.add_argument('--factory-fresh', action='store_true',
                        help='motors as ROBOTIS ships them (Return_Delay_Time 250, ...)')
    parser.add_argument('--json', default='runs/bench/bus_cycle.json')
    parser.add_argument('--plot', default='', help='save a sync-read time histogram here')
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bus_cycle_'))
    links = {arm: tmp / f'ttyDXL_{arm}' for arm in ARMS}
    extra = (['--wire-baud', str(args.wire_baud)] if args.wire_baud else []) + \
        (['--factory-fresh'] if args.factory_fresh else [])
    servers = [subprocess.Popen([sys.executable, '-m',
                                 'cosmos_policy_ros.hardware.dynamixel.emulator',
                                 '--arm', f'{links[a]}={MODEL[a]}', *extra],
                                stdout=subprocess.PIPE, text=True) for a in ARMS]
    try:
        for server in servers:
            assert server.stdout.readline().strip() == 'ready', 'emulator did not start'
        with multiprocessing.get_context('spawn').Pool(len(ARMS)) as pool:
            jobs = {a: pool.apply_async(bench_arm, (a, str(links[a]), args.seconds))
                    for a in ARMS}
            results = {a: job.get(timeout=args.seconds + 120) for a, job in jobs.items()}
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
    rows = [summary(name, results[name]) for name in ARMS]
    print(f'{"arm":15s} {"cycles":>6s} {"read p50/p99 ms":>16s} {"write ms":>8s} '
          f'{"read before config":>18s} {"B/cycle":>8s} {"1Mbps wire ms":>13s} {"retries":>7s}')
    for row in rows:
        print(f'{row["arm"]:15s} {row["cycles"]:6d} {row["sync_read_ms_p50"]:7.2f}/'
              f'{row["sync_read_ms_p99"]:<8.2f} {row["sync_write_ms_p50"]:8.2f} '
              f'{row["unconfigured_sync_read_ms"]:18.2f} '
              f'{row["tx_bytes_per_cycle"] + row["rx_bytes_per_cycle"]:8.0f} '
              f'{row["wire_ms_1mbps"]:13.2f} {row["retries"]:7d}')
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({'seconds': args.seconds, 'wire_baud': args.wire_baud,
                                           'factory_fresh': args.factory_fresh, 'arms': rows},
                                          indent=2))
    print(f'json: {args.json}')
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
