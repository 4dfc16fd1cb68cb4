"""`cosmos-policy-ros record --task transfer_cube --episodes N`: scripted demos through ROS.

Starts the record_demos graph (sim, scripted leader arms, teleop, recorder), then per
episode: reset the sim, wait for the scripted leader to play, start the recorder, wait for
success + a margin (or the episode time limit, in sim time), stop and save. Finally exports
every episode to ALOHA HDF5 + dataset statistics, prints a summary table and writes a plot.
"""
import json
import time
from pathlib import Path

from cosmos_policy_ros import names
from cosmos_policy_ros.sim.tasks import TASKS


def add_arguments(parser) -> None:
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--episodes', type=int, default=2, help='episodes to record')
    parser.add_argument('--output', default='runs/demos',
                        help='bags go to OUTPUT/bags, HDF5 + statistics + plot to OUTPUT/hdf5')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode')
    parser.add_argument('--max-seconds', type=float, default=0.0,
                        help='episode limit in sim seconds (0: the task length)')
    parser.add_argument('--margin', type=float, default=0.5,
                        help='sim seconds recorded after success before stopping')
    parser.add_argument('--camera-rate', type=float, default=25.0,
                        help='sim camera rate [Hz of sim time] (lower = faster on a CPU)')
    parser.add_argument('--wall-timeout', type=float, default=900.0,
                        help='wall seconds allowed per episode before giving up')
    parser.add_argument('--log-dir', default='', help='node logs (default OUTPUT/logs)')
    parser.add_argument('--compress', action='store_true',
                        help='export JPEG images with /compress_len (ALOHA compress=True layout): '
                        '~15 MB per episode instead of ~450 MB raw')
    parser.add_argument('--jpeg-quality', type=int, default=90,
                        help='JPEG quality with --compress')


class _Failure(RuntimeError):
    pass


class _Session:
    """The record job's view of the graph: services, success and sim time."""

    def __init__(self, client, procs):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool
        self.client, self.procs = client, procs
        self.success = client.subscribe(names.SUCCESS_TOPIC, Bool, maxlen=100)
        self.leader = client.subscribe(names.joint_states_topic('leader_left'), JointState,
                                       maxlen=10)
        self.follower = client.subscribe(names.joint_states_topic('follower_left'), JointState,
                                         maxlen=10)

    def sim_time(self) -> float:
        latest = self.follower.latest()
        return latest.header.stamp.sec + latest.header.stamp.nanosec * 1e-9 if latest else 0.0

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.procs.check_alive()      # a dead node is an error, never a silent hang
            if predicate():
                return
            time.sleep(0.05)
        raise _Failure(f'timed out after {timeout:.0f} s waiting for {what}')

    def trigger(self, service: str, timeout: float = 60.0):
        from std_srvs.srv import Trigger
        self.procs.check_alive()
        response = self.client.call(service, Trigger, timeout=timeout)
        if not response.success:
            raise _Failure(f'{service}: {response.message}')
        return response.message

    def record_episode(self, limit_s: float, margin_s: float, wall_timeout: float) -> dict:
        info = json.loads(self.trigger(names.RESET_SERVICE) or '{}')
        start_sim = float(info.get('sim_time', 0.0))
        self.leader.clear()
        self.wait(lambda: any(_stamp(m) >= start_sim for m in self.leader.messages()),
                  wall_timeout, 'the scripted leader to start playing')
        self.trigger(names.RECORDER_START_SERVICE)
        begin = self.sim_time()
        started_wall = time.monotonic()
        self.success.clear()
        succeeded_at = []

        def done() -> bool:
            now = self.sim_time()
            if not succeeded_at and any(m.data for m in self.success.messages()):
                succeeded_at.append(now)
            return (bool(succeeded_at) and now - succeeded_at[0] >= margin_s) or \
                now - begin >= limit_s
        self.wait(done, wall_timeout, 'success or the episode time limit')
        summary = json.loads(self.trigger(names.RECORDER_STOP_SERVICE))
        summary.update(success=bool(succeeded_at), seed=info.get('seed'),
                       wall_s=time.monotonic() - started_wall)
        return summary


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def run(args) -> int:
    from tqdm import tqdm

    from cosmos_policy_ros.commands.export import export_and_report
    from cosmos_policy_ros.data.export import ExportConfig
    from cosmos_policy_ros.graph import build_graph
    from cosmos_policy_ros.procs import GraphProcesses
    from cosmos_policy_ros.rosenv import apply_loopback_env

    if args.episodes < 1:
        print('error: --episodes must be >= 1')
        return 2
    output = Path(args.output)
    bag_dir, hdf5_dir = output / 'bags', output / 'hdf5'
    limit = args.max_seconds or TASKS[args.task].episode_seconds
    specs = build_graph('record_demos', {
        'task': args.task, 'seed': str(args.seed), 'camera_rate': str(args.camera_rate),
        'output_dir': str(bag_dir)})
    log_dir = Path(args.log_dir) if args.log_dir else output / 'logs'
    recorded = []
    domain = apply_loopback_env()      # this process joins the graph's loopback domain
    from cosmos_policy_ros.ros.client import GraphClient
    with GraphProcesses(specs, log_dir, domain_id=domain) as procs:
        print(f'started {len(specs)} nodes (ROS_DOMAIN_ID={procs.domain_id}, loopback); logs '
              f'in {log_dir}')
        client = GraphClient('record_job', use_sim_time=True)
        try:
            session = _Session(client, procs)
            progress = tqdm(range(args.episodes), desc='record', unit='episode')
            for _ in progress:
                summary = session.record_episode(limit, args.margin, args.wall_timeout)
                recorded.append(Path(summary['path']))
                progress.write(f'{summary["episode"]}: seed {summary["seed"]}, success '
                               f'{summary["success"]}, {summary["duration_s"]:.1f} s sim in '
                               f'{summary["wall_s"]:.0f} s wall, {summary["messages"]} '
                               f'messages, bad frames {summary["bad_frames"] or "none"}')
        except (_Failure, RuntimeError, TimeoutError) as exc:
            print(f'error: {exc}')
            return 1
        finally:
            client.close()
    config = ExportConfig(compress=args.compress, jpeg_quality=args.jpeg_quality)
    return export_and_report(recorded, hdf5_dir, config, plot=True)
