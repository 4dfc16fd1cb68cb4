"""Joint-state rate of the arm_driver node against emulated buses (one per arm, in their own
processes), as the 100 Hz Interbotix rate needs: delivered Hz, interval p50/p99, bus retries.

    .venv/bin/python benchmarks/arm_driver_rate.py [--arms 1|2|4] [--rate 100] [--seconds 8]
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cosmos_policy_ros.rosenv import apply_loopback_env

apply_loopback_env()

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from cosmos_policy_ros import names  # noqa: E402
from cosmos_policy_ros.graph import NodeSpec  # noqa: E402
from cosmos_policy_ros.paths import share_path  # noqa: E402
from cosmos_policy_ros.procs import GraphProcesses  # noqa: E402
from cosmos_policy_ros.ros.client import GraphClient  # noqa: E402
from cosmos_policy_ros.ros.stamps import to_ns  # noqa: E402

MODEL = {'follower_left': 'aloha_vx300s', 'follower_right': 'aloha_vx300s',
         'leader_left': 'aloha_wx250s', 'leader_right': 'aloha_wx250s'}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arms', type=int, default=1, choices=(1, 2, 4))
    parser.add_argument('--rate', type=float, default=100.0)
    parser.add_argument('--seconds', type=float, default=8.0)
    args = parser.parse_args()
    arms = list(MODEL)[:args.arms]
    work = Path(tempfile.mkdtemp(prefix='arm_rate_'))
    links = {arm: str(work / f'ttyDXL_{arm}') for arm in arms}
    emulators = [subprocess.Popen([sys.executable, '-m', 'cosmos_policy_ros.hardware.dynamixel.emulator',
                                   '--arm', f'{links[arm]}={MODEL[arm]}'],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for arm in arms]
    try:
        deadline = time.monotonic() + 20
        while not all(Path(link).exists() for link in links.values()):
            if time.monotonic() > deadline:
                raise SystemExit('emulators did not start')
            time.sleep(0.1)
        calibration = yaml.safe_load(share_path('calibration', 'aloha_stationary.yaml').read_text())
        calibration['arms'] = {arm: {**calibration['arms'].get(arm, {}), 'port': links[arm]}
                               for arm in arms}
        calibration.pop('cameras', None)
        cal_path = work / 'robot.yaml'
        cal_path.write_text(yaml.safe_dump(calibration))
        specs = [NodeSpec('arm_driver', 'arm_driver', arm,
                          {'arm': arm, 'calibration': str(cal_path), 'rate': args.rate})
                 for arm in arms]
        with GraphProcesses(specs, work / 'logs'), GraphClient('arm_rate') as client:
            records = {arm: client.subscribe(names.joint_states_topic(arm), JointState)
                       for arm in arms}
            client.wait_for(lambda: all(r.count > 20 for r in records.values()), 30)
            for record in records.values():
                record.clear()
            time.sleep(args.seconds)
            print(f'target {args.rate:.0f} Hz; intervals between header stamps (publisher side) '
                  'and between receptions (subscriber side)')
            print(f'{"arm":16s} {"Hz":>7s} {"stamp p50/p99 ms":>17s} {"recv p50/p99 ms":>16s}')
            for arm, record in records.items():
                timed = record.timed()
                received = np.array([t for t, _ in timed])
                stamps = np.array([to_ns(m.header.stamp) for _, m in timed]) * 1e-9
                rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
                stamp_gaps, recv_gaps = np.diff(stamps) * 1e3, np.diff(received) * 1e3
                print(f'{arm:16s} {rate:7.1f} {np.median(stamp_gaps):8.2f}/{np.percentile(stamp_gaps, 99):<8.2f}'
                      f' {np.median(recv_gaps):7.2f}/{np.percentile(recv_gaps, 99):<8.2f}')
    finally:
        for proc in emulators:
            proc.terminate()
            proc.wait(5)


if __name__ == '__main__':
    main()
