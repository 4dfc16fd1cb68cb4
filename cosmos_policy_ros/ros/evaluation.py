"""`cosmos-policy-ros eval` through the ROS graph: aloha_policy with lockstep:=true.

Starts sim_robot, the policy (or planner) and the controller as separate processes on
loopback, then per episode resets the sim (episode i has seed first + i), waits until it
succeeds or reaches the horizon (the lockstep sim stops there by itself, so the result does
not depend on how fast this driver or the policy is), asks the sim for the outcome, and
collects the chunks, executed commands, joint states and (for videos / rollouts) camera frames
of the episode from the topics.
"""
import json
import time

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.units import command_to_robot, proprio_from_positions
from cosmos_policy_ros.evaluation.results import EpisodeResult
from cosmos_policy_ros.evaluation.run import EvalConfig

TICK = 1.0 / names.CONTROL_HZ


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _tick(stamp: float, start: float) -> int:
    return int(round((stamp - start) / TICK))


class GraphEpisodes:
    """The eval driver's view of the running graph."""

    def __init__(self, client, procs, cfg: EvalConfig):
        from rcl_interfaces.msg import Log  # noqa: F401  (rclpy import check)
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory
        self.client, self.procs, self.cfg = client, procs, cfg
        self.gripper = load_calibration('aloha_sim').gripper
        chunk_topic = names.PLANNED_CHUNK_TOPIC if cfg.planning else names.ACTION_CHUNK_TOPIC
        latency_topic = (names.PLANNER_LATENCY_TOPIC if cfg.planning
                         else names.POLICY_LATENCY_TOPIC)
        self.episode_info = client.subscribe(names.EPISODE_TOPIC, String, maxlen=10,
                                             latched=True)
        self.chunks = client.subscribe(chunk_topic, JointTrajectory, maxlen=200)
        self.latency = client.subscribe(latency_topic, String, maxlen=200)
        self.states = {arm: client.subscribe(names.joint_states_topic(arm), JointState,
                                             maxlen=4000) for arm in names.FOLLOWERS}
        self.commands = {arm: client.subscribe(names.joint_command_topic(arm), JointState,
                                               maxlen=4000) for arm in names.FOLLOWERS}
        self.frames: dict = {camera: {} for camera in names.CAMERAS}
        self.keep: tuple = ()
        self.window = (0.0, 0.0)
        for camera in names.CAMERAS:
            client.subscribe(names.camera_topic(camera), Image, maxlen=1, sensor=True,
                             callback=lambda msg, c=camera: self._on_image(c, msg))

    def _on_image(self, camera: str, msg) -> None:
        from cosmos_policy_ros.ros.image import to_rgb
        stamp = _stamp(msg)
        if camera in self.keep and self.window[0] <= stamp < self.window[1]:
            self.frames[camera][_tick(stamp, self.window[0])] = to_rgb(msg)

    def _query_success(self) -> dict:
        from std_srvs.srv import Trigger
        response = self.client.call(names.SUCCESS_QUERY_SERVICE, Trigger, timeout=30.0)
        return {**json.loads(response.message), 'success': bool(response.success)}

    def _start(self, index: int) -> dict:
        from std_srvs.srv import Trigger
        if index == 0:
            ok = self.client.wait_for(lambda: any(json.loads(m.data)['episode'] == 0 for m in
                                                  self.episode_info.messages()), 120.0)
            if not ok:
                self.procs.check_alive()
                raise TimeoutError('no episode info from sim_robot within 120 s')
            return next(json.loads(m.data) for m in self.episode_info.messages()
                        if json.loads(m.data)['episode'] == 0)
        return json.loads(self.client.call(names.RESET_SERVICE, Trigger, timeout=60.0).message)

    def run(self, index: int) -> EpisodeResult:
        cfg = self.cfg
        horizon = cfg.horizon()
        film = ('cam_high',) if cfg.film(index) else ()
        self.keep = tuple(names.CAMERAS) if cfg.rollouts else film
        self.frames = {camera: {} for camera in names.CAMERAS}
        rate = 25.0 if self.keep else cfg.camera_rate
        self.client.set_parameters('/sim_robot', {'camera_rate': rate})
        started = time.monotonic()
        info = self._start(index)
        start = float(info['sim_time'])
        self.window = (start, start + horizon)
        report = {}
        while time.monotonic() - started < cfg.wall_timeout:
            self.procs.check_alive()
            report = self._query_success()
            if report['episode'] == info['episode'] and (
                    report['success'] or report['episode_time'] >= horizon - 1e-6):
                break
            time.sleep(0.25)
        else:
            raise TimeoutError(f'episode {index} (seed {info["seed"]}) did not end within '
                               f'{cfg.wall_timeout:.0f} s wall; see the node logs')
        end = start + (report['success_time'] if report['success_time'] is not None
                       else horizon)
        if self.keep:      # the frames of the last instants may still be in flight
            self.client.wait_for(lambda: len(self.frames[self.keep[0]]) >= _tick(end, start),
                                 5.0)
        return self._collect(index, info, report, start, end, time.monotonic() - started)

    def _collect(self, index, info, report, start, end, wall) -> EpisodeResult:
        values = {}
        for msg in self.latency.messages():
            data = json.loads(msg.data)
            value = data.get('value', None)
            if value is None and 'scores' in data:
                value = data['scores'][data['chosen']]
            values[data['obs_stamp_ns']] = value
        chunks, chunk_values = [], []
        for msg in sorted(self.chunks.messages(), key=_stamp):
            if start <= _stamp(msg) < end - 1e-9:
                chunks.append(np.array([p.positions for p in msg.points], dtype=np.float64))
                stamp_ns = msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
                chunk_values.append(values.get(stamp_ns, float('nan')))
        ticks = _tick(end, start)
        qpos, executed = self._per_tick(start, ticks)
        frames = {c: [self.frames[c][k] for k in range(ticks) if k in self.frames[c]]
                  for c in self.keep}
        for name in ('chunks', 'latency'):
            getattr(self, name).clear()
        for record in list(self.states.values()) + list(self.commands.values()):
            record.clear()
        return EpisodeResult(index, int(info['seed']), report['success'],
                             int(report['max_reward']), ticks * TICK, report['success_time'],
                             wall, chunks, chunk_values, qpos, executed, frames)

    def _per_tick(self, start: float, ticks: int):
        """(qpos, executed actions) at every tick of [start, start + ticks * 40 ms)."""
        states = {arm: {_tick(_stamp(m), start): np.array(m.position)
                        for m in self.states[arm].messages()} for arm in names.FOLLOWERS}
        sent = {arm: {_tick(_stamp(m), start): dict(zip(m.name, m.position))
                      for m in self.commands[arm].messages()} for arm in names.FOLLOWERS}
        qpos, executed = [], []
        for k in range(ticks):
            if not all(k in states[a] and k in sent[a] for a in names.FOLLOWERS):
                continue
            qpos.append(proprio_from_positions({a: states[a][k] for a in names.FOLLOWERS},
                                               self.gripper))
            executed.append([sent[a][k][n] for a in names.FOLLOWERS
                             for n in names.COMMAND_JOINTS])
        return (np.asarray(qpos), command_to_robot(np.asarray(executed), self.gripper)
                if executed else np.zeros((0, names.STATE_DIM)))


def graph_args(cfg: EvalConfig) -> dict:
    return {'use_sim': 'true', 'lockstep': 'true', 'task': cfg.task,
            'checkpoint': cfg.checkpoint, 'seed': str(cfg.seed),
            'episode_seconds': str(cfg.horizon()), 'camera_rate': str(cfg.camera_rate),
            'num_steps': str(cfg.num_steps), 'execute_steps': str(cfg.execute_steps),
            'ensemble': 'true' if cfg.ensemble else 'false',
            'ensemble_decay': str(cfg.ensemble_decay),
            'chunk_smoothing': str(cfg.chunk_smoothing),
            'device': cfg.device, 'runtime': cfg.runtime,
            'torch_threads': str(cfg.threads),
            'planning': 'true' if cfg.planning else 'false',
            'planning_checkpoint': cfg.planning_checkpoint,
            'num_candidates': str(cfg.num_candidates),
            'future_steps': ','.join(map(str, cfg.future_steps)),
            'value_steps': ','.join(map(str, cfg.value_steps)),
            'aggregation': cfg.aggregation,
            # In lockstep a rejected chunk stalls the episode (the sim waits for commands, and
            # the re-query sees the same observation and seed), and the in-process loop has no
            # such check: evaluation measures the policy through the gate, jump check off.
            'max_jump_rad': '0'}


def run_ros(cfg: EvalConfig, on_episode, log_dir) -> list[EpisodeResult]:
    from cosmos_policy_ros.graphs import build_graph
    from cosmos_policy_ros.procs import GraphProcesses
    from cosmos_policy_ros.rosenv import apply_loopback_env
    specs = build_graph('aloha_policy', graph_args(cfg))
    domain = apply_loopback_env()
    from cosmos_policy_ros.ros.client import GraphClient
    results = []
    with GraphProcesses(specs, log_dir, domain_id=domain) as procs:
        print(f'started {len(specs)} nodes (ROS_DOMAIN_ID={procs.domain_id}, loopback, '
              f'lockstep); logs in {log_dir}', flush=True)
        client = GraphClient('eval_driver', use_sim_time=True)
        try:
            episodes = GraphEpisodes(client, procs, cfg)
            for index in range(cfg.episodes):
                result = episodes.run(index)
                on_episode(result)
                results.append(result)
        finally:
            client.close()
    return results
