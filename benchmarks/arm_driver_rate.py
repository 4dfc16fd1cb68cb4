"""Joint-state rate of the arm_driver node against emulated buses (one emulator process per
arm, one node process per arm, as on the robot), as the 100 Hz Interbotix rate needs: delivered
Hz, stamp/reception interval p50/p99, bus read+write cycle time, and where the CPU goes (CPU
time per published message of each node and emulator process). Prints a table and writes JSON.

    .venv/bin/python benchmarks/arm_driver_rate.py [--arms 1|2|4] [--rate 100] [--seconds 8]
        [--wire-baud 1000000] [--json runs/bench/arm_driver_rate_4.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cosmos_policy_ros.rosenv import apply_loopback_env

apply_loopback_env()

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from cosmos_policy_ros import names  # noqa: E402
from cosmos_policy_ros.graph import NodeSpec  # noqa: E402
from cosmos_policy_ros.paths import share_path  # noqa: E402
from cosmos_policy_ros.procs import GraphProcesses  # noqa: E402
from cosmos_policy_ros.ros.client import GraphClient  # noqa: E402
from cosmos_policy_ros.ros.stamps import to_ns  # noqa: E402

MODEL = {'follower_left': 'aloha_vx300s', 'follower_right': 'aloha_vx300s',
         'leader_left': 'aloha_wx250s', 'leader_right': 'aloha_wx250s'}
EMULATOR = 'cosmos_policy_ros.hardware.dynamixel.emulator'


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def start_emulators(arms: list, links: dict, wire_baud: int | None) -> list:
    extra = ['--wire-baud', str(wire_baud)] if wire_baud else []
    procs = [subprocess.Popen([sys.executable, '-m', EMULATOR, '--arm',
                               f'{links[arm]}={MODEL[arm]}', *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for arm in arms]
    for proc in procs:
        if proc.stdout.readline().strip() != 'ready':
            raise SystemExit('an emulator did not start')
    return procs


def write_calibration(work: Path, arms: list, links: dict) -> Path:
    calibration = yaml.safe_load(share_path('calibration', 'aloha_stationary.yaml').read_text())
    calibration['arms'] = {arm: {**calibration['arms'].get(arm, {}), 'port': links[arm]}
                           for arm in arms}
    calibration.pop('cameras', None)
    path = work / 'robot.yaml'
    path.write_text(yaml.safe_dump(calibration))
    return path


def cycle_ms(diagnostics, arm: str) -> list:
    values = []
    for msg in diagnostics.messages():
        for status in msg.status:
            if status.name.endswith(arm):
                values += [float(kv.value) for kv in status.values if kv.key == 'cycle_ms']
    return values


def arm_figures(record, diag_ms: list, node_cpu: float, emu_cpu: float) -> dict:
    timed = record.timed()
    received = np.array([t for t, _ in timed])
    stamps = np.array([to_ns(m.header.stamp) for _, m in timed]) * 1e-9
    stamp_gaps, recv_gaps = np.diff(stamps) * 1e3, np.diff(received) * 1e3
    count = max(1, len(stamps))
    return {'hz': round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1),
            'stamp_ms_p50': round(float(np.median(stamp_gaps)), 2),
            'stamp_ms_p99': round(float(np.percentile(stamp_gaps, 99)), 2),
            'recv_ms_p50': round(float(np.median(recv_gaps)), 2),
            'recv_ms_p99': round(float(np.percentile(recv_gaps, 99)), 2),
            'bus_cycle_ms_p50': round(float(np.median(diag_ms)), 2) if diag_ms else None,
            'node_cpu_ms_per_msg': round(node_cpu / count * 1e3, 2),
            'emulator_cpu_ms_per_msg': round(emu_cpu / count * 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arms', type=int, default=1, choices=(1, 2, 4))
    parser.add_argument('--rate', type=float, default=100.0)
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--wire-baud', type=int, default=None,
                        help='emulators delay status packets by their wire time at this baud')
    parser.add_argument('--json', default='', help='write the figures here (default: '
                        'runs/bench/arm_driver_rate_<arms>.json)')
    args = parser.parse_args()
    arms = list(MODEL)[:args.arms]
    work = Path(tempfile.mkdtemp(prefix='arm_rate_'))
    links = {arm: str(work / f'ttyDXL_{arm}') for arm in arms}
    emulators = start_emulators(arms, links, args.wire_baud)
    cal_path = write_calibration(work, arms, links)
    specs = [NodeSpec('arm_driver', 'arm_driver', arm,
                      {'arm': arm, 'calibration': str(cal_path), 'rate': args.rate,
                       'diagnostics_period': 0.5}) for arm in arms]
    try:
        with GraphProcesses(specs, work / 'logs') as graph, GraphClient('arm_rate') as client:
            records = {arm: client.subscribe(names.joint_states_topic(arm), JointState)
                       for arm in arms}
            diagnostics = client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray)
            if not client.wait_for(lambda: all(r.count > 20 for r in records.values()), 60):
                graph.check_alive()
                raise SystemExit('no joint_states: ' + ' | '.join(
                    p.log_tail(5) for p in graph.processes))
            for record in [*records.values(), diagnostics]:
                record.clear()
            pids = {arm: proc.popen.pid for arm, proc in zip(arms, graph.processes)}
            cpu0 = {arm: (cpu_seconds(pids[arm]), cpu_seconds(emu.pid))
                    for arm, emu in zip(arms, emulators)}
            time.sleep(args.seconds)
            cpu1 = {arm: (cpu_seconds(pids[arm]), cpu_seconds(emu.pid))
                    for arm, emu in zip(arms, emulators)}
            figures = {arm: arm_figures(records[arm], cycle_ms(diagnostics, arm),
                                        cpu1[arm][0] - cpu0[arm][0],
                                        cpu1[arm][1] - cpu0[arm][1]) for arm in arms}
    finally:
        for proc in emulators:
            proc.terminate()
            proc.wait(5)
    report(args, figures)


def report(args, figures: dict) -> None:
    print(f'target {args.rate:.0f} Hz, {args.arms} arm(s), {os.cpu_count()} CPUs, load '
          f'{os.getloadavg()[0]:.1f}; intervals between header stamps (publisher) and '
          'receptions (subscriber); CPU ms per published message')
    print(f'{"arm":16s} {"Hz":>6s} {"stamp p50/p99":>14s} {"recv p50/p99":>14s} '
          f'{"bus cycle":>9s} {"node CPU":>8s} {"emu CPU":>7s}')
    for arm, f in figures.items():
        print(f'{arm:16s} {f["hz"]:6.1f} {f["stamp_ms_p50"]:6.2f}/{f["stamp_ms_p99"]:<7.2f} '
              f'{f["recv_ms_p50"]:6.2f}/{f["recv_ms_p99"]:<7.2f} '
              f'{f["bus_cycle_ms_p50"] or float("nan"):9.2f} {f["node_cpu_ms_per_msg"]:8.2f} '
              f'{f["emulator_cpu_ms_per_msg"]:7.2f}')
    path = Path(args.json or f'runs/bench/arm_driver_rate_{args.arms}.json')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'rate': args.rate, 'arms': args.arms, 'seconds': args.seconds,
                                'wire_baud': args.wire_baud, 'cpus': os.cpu_count(),
                                'load_1min': os.getloadavg()[0], 'figures': figures},
                               indent=2))
    print(f'json: {path}')


if __name__ == '__main__':
    main()
