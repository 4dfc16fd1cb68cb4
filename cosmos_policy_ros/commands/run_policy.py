"""`cosmos-policy-ros run-policy`: the README's main job.

Brings up the aloha_policy graph on the simulated ALOHA (GraphProcesses, loopback), watches it
with a GraphClient for `--duration` wall seconds, then prints chunk rate, latency per stage
(p50/p95), commands clamped/rejected, the largest commanded step (overall and at chunk
boundaries), watchdog holds, and whether the policy is UNTRAINED; writes a plot of the
commanded joints with chunk boundaries marked and a JSON summary.
"""
import json
import time
from pathlib import Path

import numpy as np

from cosmos_policy_ros import names

STAGES = ('convert_s', 'model_s', 'publish_s', 'camera_to_publish_s', 'obs_age_at_publish_s')


class PolicyRunObserver:
    """Subscriptions on a GraphClient and the summary of what the graph did (tests reuse it)."""

    def __init__(self, client, planning: bool = False):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float32MultiArray, String
        from trajectory_msgs.msg import JointTrajectory
        self.planning = planning
        self.chunks = client.subscribe(
            names.PLANNED_CHUNK_TOPIC if planning else names.ACTION_CHUNK_TOPIC, JointTrajectory)
        self.latency = client.subscribe(
            names.PLANNER_LATENCY_TOPIC if planning else names.POLICY_LATENCY_TOPIC, String)
        self.info = client.subscribe(names.POLICY_INFO_TOPIC, String, maxlen=10)
        self.status = client.subscribe(names.CONTROLLER_STATUS_TOPIC, String, maxlen=100000)
        self.commands = {arm: client.subscribe(names.joint_command_topic(arm), JointState,
                                               maxlen=100000)
                         for arm in names.FOLLOWERS}
        self.values = (client.subscribe(names.PLANNER_VALUES_TOPIC, Float32MultiArray)
                       if planning else None)

    def statuses(self) -> list:
        return [json.loads(m.data) for m in self.status.messages()]

    def command_series(self) -> tuple:
        """(times [s, sim], (T, 14) commands) for ticks where both arms were commanded."""
        by_stamp = {}
        for index, arm in enumerate(names.FOLLOWERS):
            for msg in self.commands[arm].messages():
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                by_stamp.setdefault(stamp, [None, None])[index] = list(msg.position)
        rows = sorted((t, a + b) for t, (a, b) in by_stamp.items() if a and b)
        if not rows:
            return np.zeros(0), np.zeros((0, 14))
        return np.array([t for t, _ in rows]), np.array([r for _, r in rows])

    def boundary_times(self) -> list:
        """Sim times at which the controller started a new chunk (boundaries counter rose)."""
        times, last = [], 0
        for status in self.statuses():
            count = status.get('counts', {}).get('boundaries', 0)
            if count > last:
                times.append(status['stamp'])
            last = count
        return times

    def summary(self, wall_s: float) -> dict:
        times, commands = self.command_series()
        latencies = [json.loads(m.data) for m in self.latency.messages()]
        statuses = self.statuses()
        counts = statuses[-1].get('counts', {}) if statuses else {}
        info = self.info.latest()
        info = json.loads(info.data) if info is not None else {}
        deltas = np.abs(np.diff(commands, axis=0)) if len(commands) > 1 else np.zeros((1, 14))
        gripper, arm = list(names.GRIPPER_INDICES), list(names.ARM_JOINT_INDICES)
        intervals = np.diff(times) if len(times) > 1 else np.zeros(0)
        sim_span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
        chunk_count = self.chunks.count
        stages = {}
        for stage in STAGES:
            values = [entry[stage] for entry in latencies if stage in entry]
            if values:
                stages[stage] = {'p50': float(np.percentile(values, 50)),
                                 'p95': float(np.percentile(values, 95)), 'n': len(values)}
        return {
            'untrained': bool(info.get('untrained', True)), 'model': info,
            'wall_s': wall_s, 'sim_s': sim_span, 'chunks': chunk_count,
            'chunk_rate_per_sim_s': chunk_count / sim_span if sim_span else 0.0,
            'chunk_rate_per_wall_s': chunk_count / wall_s if wall_s else 0.0,
            'commands': len(times),
            'command_rate_sim_hz': float(1.0 / np.median(intervals)) if intervals.size else 0.0,
            'command_interval_p99_s': float(np.percentile(intervals, 99))
            if intervals.size else 0.0,
            'latency': stages,
            'max_commanded_step': float(deltas.max()),
            'max_arm_step': float(deltas[:, arm].max()),
            'max_gripper_step': float(deltas[:, gripper].max()),
            'max_boundary_step': counts.get('max_boundary_step', 0.0),
            'max_raw_boundary_step': counts.get('max_raw_boundary_step', 0.0),
            'controller': counts,
            'final_state': statuses[-1]['state'] if statuses else 'no status',
        }


def plot(observer: PolicyRunObserver, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    times, commands = observer.command_series()
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for ax, (arm, part) in zip(axes, names.FOLLOWER_SLICES.items()):
        for joint, column in zip(names.COMMAND_JOINTS, commands[:, part].T):
            ax.plot(times, column, lw=1, label=joint)
        for t in observer.boundary_times():
            ax.axvline(t, color='k', ls=':', lw=0.8)
        ax.set_ylabel(f'{arm} command [rad]')
        ax.grid(alpha=0.3)
    axes[0].legend(ncol=4, fontsize=7, loc='upper right')
    axes[0].set_title(title + ' (dotted: chunk boundaries)')
    axes[1].set_xlabel('sim time [s]')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_report(summary: dict) -> str:
    c = summary['controller']
    lines = [
        ('policy: UNTRAINED (random weights)' if summary['untrained'] else
         f'policy: checkpoint {summary["model"].get("checkpoint")}'),
        (f'ran {summary["wall_s"]:.0f} s wall, {summary["sim_s"]:.1f} s sim; '
         f'{summary["chunks"]} chunks = {summary["chunk_rate_per_sim_s"]:.3f}/s sim, '
         f'{summary["chunk_rate_per_wall_s"]:.3f}/s wall'),
        (f'commands: {summary["commands"]} at {summary["command_rate_sim_hz"]:.2f} Hz sim '
         f'time (p99 interval {summary["command_interval_p99_s"] * 1e3:.1f} ms)'),
    ]
    if summary['chunks'] == 0:
        lines.append('no chunk was published during the run: the first CPU inference of this '
                     'preset (plus start-up) took longer than --duration; see the policy log, '
                     'and run longer or use --preset tiny')
    for stage, value in summary['latency'].items():
        lines.append(f'latency {stage:22s} p50 {value["p50"]:.3f} s  p95 {value["p95"]:.3f} s '
                     f'(n={value["n"]})')
    lines += [
        (f'chunks accepted/rejected: {c.get("chunks_accepted", 0)}/'
         f'{c.get("chunks_rejected", 0)}'
         + (f' (last: {c["last_reject"]})' if c.get('last_reject') else '')),
        (f'ticks clamped: range {c.get("limit_clamped", 0)}, step {c.get("step_clamped", 0)} of '
         f'{c.get("ticks", 0)}; non-finite held {c.get("non_finite_held", 0)}'),
        (f'largest commanded step (controller): arm joints {c.get("max_arm_step", 0):.4f} rad, '
         f'gripper motors {c.get("max_gripper_step", 0):.4f} rad; '
         f'{summary["max_boundary_step"]:.4f} rad at chunk boundaries (before the gate: '
         f'{summary["max_raw_boundary_step"]:.4f} rad); as received here (lost or late '
         f'messages merge ticks): arm {summary["max_arm_step"]:.4f}, gripper '
         f'{summary["max_gripper_step"]:.4f} rad'),
        (f'watchdog engagements {c.get("watchdog_engagements", 0)}, hold ticks '
         f'{c.get("holds", 0)}; final state {summary["final_state"]}'),
    ]
    return '\n'.join(lines)


# aloha_policy graph arguments offered as flags: type, default, choices and help come from the
# node schemas (cosmos_policy_ros/schemas), so `up aloha_policy` and run-policy agree.
FLAGS = ('preset', 'checkpoint', 'task', 'mode', 'planning', 'num_steps', 'execute_steps',
         'ensemble', 'ensemble_decay', 'chunk_smoothing',
         'device', 'runtime', 'camera_rate', 'max_chunk_age', 'max_jump_rad')


def add_arguments(parser) -> None:
    from cosmos_policy_ros.graph import add_flags
    from cosmos_policy_ros.graphs import get_graph
    parser.add_argument('--duration', type=float, default=60.0, help='wall seconds to run')
    add_flags(parser, get_graph('aloha_policy'), *FLAGS)
    parser.add_argument('--set', nargs='*', default=[], metavar='arg:=value',
                        help='further aloha_policy graph arguments')
    parser.add_argument('--out', default='runs/run_policy', help='plot, JSON and logs')


def run(args) -> int:
    from tqdm import tqdm

    from cosmos_policy_ros.commands.up import parse_overrides
    from cosmos_policy_ros.graph import flag_values
    from cosmos_policy_ros.graphs import build_graph
    from cosmos_policy_ros.procs import GraphProcesses
    from cosmos_policy_ros.rosenv import apply_loopback_env
    overrides = {'use_sim': True, **flag_values(args, *FLAGS), **parse_overrides(args.set)}
    specs = build_graph('aloha_policy', overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    domain = apply_loopback_env()
    from cosmos_policy_ros.ros.client import GraphClient
    with GraphProcesses(specs, out / 'logs', domain_id=domain) as procs:
        client = GraphClient('run_policy', use_sim_time=True)
        try:
            observer = PolicyRunObserver(client, planning=args.planning)
            start = time.monotonic()
            with tqdm(total=int(args.duration), unit='s', desc='run-policy') as bar:
                while (elapsed := time.monotonic() - start) < args.duration:
                    time.sleep(1.0)
                    procs.check_alive()
                    bar.update(int(elapsed + 1) - bar.n)
                    bar.set_postfix(chunks=observer.chunks.count)
            summary = observer.summary(time.monotonic() - start)
            title = (f'aloha_policy {args.mode}{" + planning" if args.planning else ""}, '
                     f'{args.preset}' + (' UNTRAINED' if summary['untrained'] else ''))
            plot(observer, out / 'commands.png', title)
        except RuntimeError as exc:
            print(f'error: {exc}')
            return 1
        finally:
            client.close()
    (out / 'summary.json').write_text(json.dumps(summary, indent=1))
    print(format_report(summary))
    print(f'plot: {out / "commands.png"}  summary: {out / "summary.json"}  logs: {out / "logs"}')
    return 0
