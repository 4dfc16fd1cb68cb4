"""`cosmos-policy-ros record`: demonstrations through the ROS graph, then export.

Sim (default), `record --task transfer_cube --episodes N`: starts the record_demos graph (sim,
scripted leader arms, teleop, recorder), then per episode: reset the sim, wait for the scripted
leader to play, start the recorder, wait for success + a margin (or the episode time limit, in
sim time), stop and save.

Hardware, `record --hardware --calibration my_aloha`: starts the record_demos graph on the real
arms and cameras (use_sim:=false: drivers or the Interbotix bridge, teleop with its opening
ceremony, recorder) and hands the operator keyboard controls (commands/record_keys.py): space
starts an episode and stops-and-saves it, d discards it, q quits; a foot pedal that types a key
can be given with --pedal-key. No ROS command-line tools are needed.

Both finally export every saved episode to ALOHA HDF5 + dataset statistics, print a summary
table and write a plot.
"""
import json
import sys
import time
from pathlib import Path

from cosmos_policy_ros import names
from cosmos_policy_ros.sim.tasks import TASKS


def add_arguments(parser) -> None:
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--episodes', type=int, default=None,
                        help='episodes to record (sim: default 2; --hardware: quit after this '
                        'many saved episodes, default: when the operator presses q)')
    parser.add_argument('--output', default='runs/demos',
                        help='bags go to OUTPUT/bags, HDF5 + statistics + plot to OUTPUT/hdf5')
    parser.add_argument('--seed', type=int, default=0,
                        help='recorded episode i has seed SEED + 1 + i (the sim starts at SEED '
                        'and resets before each episode)')
    parser.add_argument('--max-seconds', type=float, default=0.0,
                        help='episode limit in sim seconds (0: the task length); with '
                        '--hardware in wall seconds, after which the episode is saved (0: none)')
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
    hardware = parser.add_argument_group('real robot (docs/hardware.md)')
    hardware.add_argument('--hardware', action='store_true',
                          help='record teleoperated episodes on the real ALOHA with keyboard '
                          'controls instead of scripted sim demos')
    hardware.add_argument('--calibration', default='aloha_stationary',
                          help='robot file calibration/<name>.yaml or a path (arms, cameras)')
    hardware.add_argument('--driver', default='dynamixel', choices=('dynamixel', 'interbotix'),
                          help="arm driver: ours, or Interbotix's xs_sdk through the bridge")
    hardware.add_argument('--pedal-key', default='',
                          help='a foot pedal (or any key) that starts / stops and saves, as '
                          'space does: one character, or enter, pagedown, f5, ...')
    hardware.add_argument('--no-export', action='store_true',
                          help='keep the bags only (export later with `cosmos-policy-ros export`)')


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
    if args.hardware:
        return run_hardware(args)
    if args.episodes is None:
        args.episodes = 2
    from tqdm import tqdm

    from cosmos_policy_ros.commands.export import export_and_report
    from cosmos_policy_ros.data.export import ExportConfig
    from cosmos_policy_ros.graphs import build_graph
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


class _RecorderServices:
    """The recorder node's services, as commands/record_keys.RecordControls wants them."""

    def __init__(self, session: _Session):
        self.session = session

    def start(self) -> str:
        return self.session.trigger(names.RECORDER_START_SERVICE, timeout=20.0)

    def stop(self) -> dict:
        return json.loads(self.session.trigger(names.RECORDER_STOP_SERVICE, timeout=60.0))

    def discard(self) -> str:
        message = self.session.trigger(names.RECORDER_DISCARD_SERVICE, timeout=20.0)
        return message.removeprefix('discarded ')


def run_hardware(args, keys=None) -> int:
    """Teleoperated recording on the real robot, driven by keys from `keys` (default stdin)."""
    from std_msgs.msg import String

    from cosmos_policy_ros.calibration import load_calibration
    from cosmos_policy_ros.commands.export import export_and_report
    from cosmos_policy_ros.commands.record_keys import RecordControls, check_key_name
    from cosmos_policy_ros.data.export import ExportConfig
    from cosmos_policy_ros.graphs import build_graph
    from cosmos_policy_ros.procs import GraphProcesses
    from cosmos_policy_ros.rosenv import apply_loopback_env

    try:
        pedal = check_key_name(args.pedal_key) if args.pedal_key else ''
        calibration = load_calibration(args.calibration)
        specs = build_graph('record_demos', {
            'use_sim': 'false', 'task': args.task, 'calibration': args.calibration,
            'driver': args.driver, 'output_dir': str(Path(args.output) / 'bags')})
    except (ValueError, OSError) as exc:
        print(f'error: {exc}')
        return 2
    output = Path(args.output)
    log_dir = Path(args.log_dir) if args.log_dir else output / 'logs'
    cameras = tuple(c for c in names.CAMERAS if c in calibration.cameras)
    domain = apply_loopback_env()
    from cosmos_policy_ros.ros.client import GraphClient
    with GraphProcesses(specs, log_dir, domain_id=domain) as procs:
        say(f'started {len(specs)} nodes on {calibration.robot} ({args.driver} driver, '
            f'cameras {list(cameras) or "none"}; ROS_DOMAIN_ID={procs.domain_id}, loopback); '
            f'logs in {log_dir}')
        client = GraphClient('record_job')
        session = _Session(client, procs)
        controls = RecordControls(_RecorderServices(session), pedal_key=pedal, say=say)
        try:
            status = client.subscribe(names.RECORDER_STATUS_TOPIC, String, maxlen=10,
                                      latched=True)
            session.wait(lambda: status.count > 0, 60.0, 'the recorder node')
            say('ready. The followers move to the start pose; close both leader grippers to '
                'begin teleoperation.')
            say(controls.help_text())
            _key_loop(controls, session, status, keys or sys.stdin, args)
        except (_Failure, RuntimeError, TimeoutError) as exc:
            say(f'error: {exc}')
            return 1
        finally:
            client.close()
    saved = [Path(summary['path']) for summary in controls.saved]
    say(f'{len(saved)} episode(s) saved, {len(controls.discarded)} discarded')
    if not saved or args.no_export:
        return 0
    config = ExportConfig(cameras=cameras, compress=args.compress,
                          jpeg_quality=args.jpeg_quality)
    return export_and_report(saved, output / 'hdf5', config, plot=True)


def say(text: str) -> None:
    print(text, flush=True)


def _key_loop(controls, session: _Session, status, keys, args) -> None:
    """Until q, end of input or --episodes saved: keys -> recorder, nodes checked every 0.1 s,
    an episode saved at --max-seconds, recorder errors (disk) shown once each."""
    from cosmos_policy_ros.commands.record_keys import KeyReader
    started = None
    shown_error = ''
    with KeyReader(keys) as reader:
        while True:
            session.procs.check_alive()
            latest = json.loads(status.latest().data) if status.latest() else {}
            if latest.get('error') and latest['error'] != shown_error:
                shown_error = latest['error']
                say(f'recorder error: {shown_error}')
            if controls.recording and started is None:
                started = time.monotonic()
            elif not controls.recording:
                started = None
            if started is not None and args.max_seconds and \
                    time.monotonic() - started >= args.max_seconds:
                say(f'{args.max_seconds:g} s reached')
                controls.stop()
            if args.episodes and len(controls.saved) >= args.episodes:
                return
            try:
                pressed = reader.read(0.1)
            except KeyboardInterrupt:
                pressed = None
            if pressed is None:                      # end of input or Ctrl-C: as q
                pressed = ['q']
            for key in pressed:
                try:
                    if not controls.handle(key):
                        return
                except _Failure as exc:              # e.g. start refused: disk full
                    say(f'error: {exc}')
