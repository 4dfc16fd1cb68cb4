"""Real-time factor of the simulated ALOHA: sim seconds per wall second.

    .venv/bin/python benchmarks/sim_rtf.py [--seconds 20] [--task transfer_cube]

Rows: physics only (AlohaSim.step in-process, no ROS); the sim_robot node with cameras off;
the sim_robot node with the three 480x640 cameras at 25 Hz of sim time. Node rows read /clock
from a separate process over `--seconds` wall seconds (after start-up), as the graph sees it.
"""
import argparse
import time

from tqdm import tqdm

from cosmos_policy_ros.rosenv import apply_loopback_env


def physics_only(task: str, seconds: float) -> float:
    from cosmos_policy_ros.calibration import load_calibration
    from cosmos_policy_ros.sim.aloha_sim import AlohaSim
    sim = AlohaSim(task, load_calibration('aloha_sim'))
    sim.reset(0)
    start = time.perf_counter()
    steps = 0
    while time.perf_counter() - start < seconds:
        sim.step()
        steps += 1
    return steps * 0.02 / (time.perf_counter() - start)


def node_rtf(task: str, seconds: float, publish_cameras: bool, log_dir: str) -> float:
    from rosgraph_msgs.msg import Clock

    from cosmos_policy_ros.graph import NodeSpec
    from cosmos_policy_ros.procs import GraphProcesses
    from cosmos_policy_ros.ros.client import GraphClient
    from cosmos_policy_ros.ros.stamps import to_ns
    spec = NodeSpec('sim_robot', 'sim_robot', parameters={
        'use_sim_time': True, 'task': task, 'camera_rate': 25.0,
        'publish_cameras': publish_cameras})
    client = GraphClient(name='sim_rtf_bench')
    clock = client.subscribe('/clock', Clock, maxlen=10)
    try:
        with GraphProcesses([spec], log_dir) as processes:
            if not client.wait_for(lambda: clock.count > 10, 60):
                processes.check_alive()
                raise RuntimeError('no /clock from sim_robot within 60 s')
            time.sleep(2.0)                        # let the first renders/allocations pass
            sim0, wall0 = to_ns(clock.latest().clock), time.monotonic()
            for _ in tqdm(range(int(seconds)), desc=f'cameras {publish_cameras}', leave=False):
                time.sleep(1.0)
            processes.check_alive()
            return (to_ns(clock.latest().clock) - sim0) / 1e9 / (time.monotonic() - wall0)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--task', default='transfer_cube')
    parser.add_argument('--log-dir', default='/tmp/sim_rtf_logs')
    args = parser.parse_args()
    apply_loopback_env()
    rows = [('physics only (AlohaSim, no ROS)', physics_only(args.task, args.seconds)),
            ('sim_robot node, cameras off', node_rtf(args.task, args.seconds, False,
                                                     args.log_dir)),
            ('sim_robot node, 3 cameras at 25 Hz', node_rtf(args.task, args.seconds, True,
                                                            args.log_dir))]
    print(f'\ntask {args.task}, {args.seconds:.0f} s wall per row')
    print('| configuration | real-time factor |')
    print('|---|---|')
    for name, rtf in rows:
        print(f'| {name} | {rtf:.2f}x |')


if __name__ == '__main__':
    main()
