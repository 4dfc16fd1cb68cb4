"""sim_robot: the MuJoCo ALOHA (cosmos_policy_ros.sim.aloha_sim) behind the hardware interfaces.

Publishes (topic names are parameters; defaults from cosmos_policy_ros.names):
- /clock (rosgraph_msgs/Clock) after every physics step (DT 0.02 s of sim time). Sim time is
  monotonic across episodes and starts at 0; run every other node with use_sim_time.
- /follower_left|right/joint_states (sensor_msgs/JointState, reliable) at `joint_state_rate`
  [Hz of sim time]: names.JOINT_STATE_NAMES; `gripper` = follower gripper motor angle derived
  from the finger, left/right_finger = finger positions [m] (right = -left); velocity, effort.
- /cam_high|cam_left_wrist|cam_right_wrist/camera/color/image_rect_raw (sensor_msgs/Image,
  rgb8 480x640, sensor-data QoS) at `camera_rate` [Hz of sim time], stamped with the sim time
  of capture. `publish_cameras: false` stops all; `disabled_cameras` (string list, runtime
  settable; [''] = none disabled) stops the named cameras (names.CAMERAS) until removed.
- names.SUCCESS_TOPIC (std_msgs/Bool) at `success_rate` [Hz of sim time]: the episode has
  reached the task's max reward (gym-aloha's success).
- names.EPISODE_TOPIC (std_msgs/String, reliable, transient local) on every reset: JSON
  {episode, task, instruction, seed, object_poses {name: [x y z qw qx qy qz]}, sim_time}.
- names.DIAGNOSTICS_TOPIC (diagnostic_msgs/DiagnosticArray) every `diagnostics_period` wall
  seconds: rejected/clamped command counts per arm, last rejection, real-time factor.

Subscribes: /follower_left|right/commands/joint_positions (sensor_msgs/JointState, reliable):
`name` ⊆ names.COMMAND_JOINTS, `position` [rad], gripper = follower gripper motor angle;
partial commands hold the other joints. A command with unknown/duplicate names, a length
mismatch or non-finite values is rejected whole (logged with the field and fix, counted, on
/diagnostics); accepted targets are clamped to the calibration limits and applied from the
next physics step (the last command is held). Commands stamped (non-zero) before the last
reset are dropped (counted as before_reset): they were meant for the previous episode.

Services: names.RESET_SERVICE (std_srvs/Trigger): reset to the next seed (`seed` first, +1 per
reset; the message is the episode JSON). names.SUCCESS_QUERY_SERVICE (std_srvs/Trigger):
success now, message JSON {reward, max_reward, episode, seed}.

Physics and rendering run in their own thread (the EGL context lives there), so services,
commands and parameter changes are answered while it runs.

`lockstep: true` (control.lockstep) makes the sim advance one 40 ms control period only when
both arms' commands stamped with its current time have arrived, and stop after
`episode_seconds` of an episode; episode k starts at sim time (k + 1) * 1000 s. Commands
stamped at another time are dropped (counted as out_of_step). While paused it re-publishes
its clock and joint states and renders the cameras of the current instant.
"""
import json
import threading
import time
import traceback

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.joint_command import JointCommandError, parse_command
from cosmos_policy_ros.ros import image, params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.stamps import from_ns, to_ns
from cosmos_policy_ros.schemas.sim_robot import SIM_ROBOT
from cosmos_policy_ros.sim.aloha_sim import DT, AlohaSim

_DT_NS = round(DT * 1e9)
_CATCH_UP = 4.0   # x realtime_factor_cap: the fastest a sim that fell behind steps


class _Rate:
    """Due-check for a rate in sim time (ns), on the grid of multiples of the period, so stamps
    are k * period whatever time the clock started at (and a late step never shifts the grid)."""

    def __init__(self):
        self.next_ns = None

    def due(self, now_ns: int, hz: float) -> bool:
        period = round(1e9 / hz)
        if self.next_ns is None:
            self.next_ns = -(-now_ns // period) * period
        if now_ns < self.next_ns:
            return False
        self.next_ns = (now_ns // period + 1) * period
        return True


class SimRobot(Node):
    def __init__(self):
        super().__init__('sim_robot')
        self.params = params.declare(self, SIM_ROBOT, on_change=None)
        p = self.params
        for key, count in (('joint_states_topics', 2), ('command_topics', 2),
                           ('camera_topics', len(names.CAMERAS))):
            if len(getattr(p, key)) != count:
                raise ValueError(f'parameter {key!r}: needs {count} topics, got '
                                 f'{getattr(p, key)}')
        self.sim = AlohaSim(p.task, load_calibration(p.calibration))
        self.failed = False
        self._seed = p.seed
        self._episode = -1
        self._clock_ns = 0
        self._sim_lock = threading.Lock()         # AlohaSim is used by one thread at a time
        self._pending_lock = threading.Lock()     # validated commands waiting for a step
        self._pending = {side: {} for side in names.SIDES}
        self._reset_ns = 0
        self._stats = {side: {'rejected': 0, 'clamped': 0, 'accepted': 0, 'before_reset': 0,
                              'out_of_step': 0, 'last_error': ''}
                       for side in names.SIDES}
        self._rtf = 0.0
        # Lockstep state, guarded by _tick: the commands for the current instant, the episode's
        # start, and the instant whose cameras were rendered last (with their images).
        self._lockstep = p.lockstep
        self._tick = threading.Condition()
        self._tick_commands = {}
        self._episode_start_ns = 0
        self._rendered = (None, {})
        self._success_ns = None                   # sim time the episode first succeeded

        reliable = QoSProfile(depth=10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._clock_pub = self.create_publisher(ClockMsg, '/clock', reliable)
        self._state_pubs = {side: self.create_publisher(JointState, topic, reliable)
                            for side, topic in zip(names.SIDES, p.joint_states_topics)}
        self._image_pubs = {cam: self.create_publisher(Image, topic, qos_profile_sensor_data)
                            for cam, topic in zip(names.CAMERAS, p.camera_topics)}
        self._success_pub = self.create_publisher(Bool, names.SUCCESS_TOPIC, reliable)
        self._episode_pub = self.create_publisher(String, names.EPISODE_TOPIC, latched)
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                               reliable)
        # One exclusive group per arm: that arm's commands apply in arrival order (a reentrant
        # group could run two at once and let the older one win); the two arms run in parallel.
        for side, topic in zip(names.SIDES, p.command_topics):
            self.create_subscription(JointState, topic,
                                     lambda msg, side=side, topic=topic:
                                     self._on_command(side, topic, msg),
                                     QoSProfile(depth=10),
                                     callback_group=MutuallyExclusiveCallbackGroup())
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, names.RESET_SERVICE, self._on_reset,
                            callback_group=services)
        self.create_service(Trigger, names.SUCCESS_QUERY_SERVICE, self._on_success_query,
                            callback_group=services)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

        with self._sim_lock:
            self._reset_locked()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._physics_loop, name='sim_physics',
                                        daemon=True)
        self._thread.start()
        self.get_logger().info(f'sim_robot: task {p.task}, first seed {p.seed}, cameras '
                               f'{"on" if p.publish_cameras else "off"} at {p.camera_rate} Hz')

    # -- commands ---------------------------------------------------------------------------
    def _on_command(self, side: str, topic: str, msg: JointState) -> None:
        try:
            command = parse_command(msg.name, msg.position, source=topic)
        except JointCommandError as exc:
            stats = self._stats[side]
            stats['rejected'] += 1
            stats['last_error'] = str(exc)
            self.get_logger().error(f'rejected: {exc}', throttle_duration_sec=2.0)
            return
        stamp_ns = to_ns(msg.header.stamp)
        if self._lockstep:
            with self._tick:
                if stamp_ns != self._clock_ns:
                    self._stats[side]['out_of_step'] += 1
                    return
                self._tick_commands[side] = command
                self._tick.notify_all()
            return
        with self._pending_lock:
            if stamp_ns and stamp_ns < self._reset_ns:
                self._stats[side]['before_reset'] += 1     # meant for the previous episode
                return
            self._pending[side].update(command)

    def _apply_pending_locked(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {side: {} for side in names.SIDES}
        for side, command in pending.items():
            if command:
                clamped = self.sim.command(side, list(command), list(command.values()))
                self._stats[side]['accepted'] += 1
                self._stats[side]['clamped'] += bool(clamped)

    # -- episodes ---------------------------------------------------------------------------
    def _reset_locked(self) -> dict:
        info = self.sim.reset(self._seed)
        self._seed += 1
        self._episode += 1
        if self._lockstep:
            with self._tick:
                self._clock_ns = round(lockstep.episode_start(self._episode) * 1e9)
                self._episode_start_ns = self._clock_ns
                self._tick_commands = {}
                self._tick.notify_all()
            self._clock_pub.publish(ClockMsg(clock=from_ns(self._clock_ns)))
        with self._pending_lock:
            self._pending = {side: {} for side in names.SIDES}
            self._reset_ns = self._clock_ns
        self._success_ns = None
        episode = {'episode': self._episode, **info.as_dict(),
                   'instruction': self.sim.task.instruction,
                   'sim_time': self._clock_ns / 1e9}
        self._episode_pub.publish(String(data=json.dumps(episode)))
        self._publish_states(from_ns(self._clock_ns))
        return episode

    def _on_reset(self, request, response):
        with self._sim_lock:
            episode = self._reset_locked()
        self.get_logger().info(f'reset: episode {episode["episode"]}, seed {episode["seed"]}')
        response.success, response.message = True, json.dumps(episode)
        return response

    def _on_success_query(self, request, response):
        with self._sim_lock:
            report = {'reward': self.sim.reward, 'max_reward': self.sim.max_reward,
                      'episode': self._episode, 'seed': self.sim.episode.seed,
                      'sim_time': self._clock_ns / 1e9,
                      'episode_time': (self._clock_ns - self._reset_ns) / 1e9,
                      'success_time': None if self._success_ns is None else
                      (self._success_ns - self._reset_ns) / 1e9}
            response.success = self.sim.success()
        response.message = json.dumps(report)
        return response

    # -- physics thread ---------------------------------------------------------------------
    def _physics_loop(self) -> None:
        try:
            self._run_lockstep() if self._lockstep else self._run_physics()
        except Exception:  # noqa: BLE001 - report, then end the node non-zero
            if self._stop.is_set() or not self.context.ok():
                return          # shutting down: publishers are already gone
            self.failed = True
            self.get_logger().fatal(f'physics thread failed:\n{traceback.format_exc()}')
            rclpy.try_shutdown(context=self.context)
        finally:
            self.sim.close()

    def _run_physics(self) -> None:
        states, cameras, success = _Rate(), _Rate(), _Rate()
        wall0, sim0 = time.monotonic(), self._clock_ns
        rtf_wall, rtf_sim = wall0, sim0
        while not self._stop.is_set():
            p = self.params
            images = {}
            with self._sim_lock:
                self._apply_pending_locked()
                self.sim.step()
                self._clock_ns += _DT_NS
                now_ns = self._clock_ns
                stamp = from_ns(now_ns)
                self._clock_pub.publish(ClockMsg(clock=stamp))
                if states.due(now_ns, p.joint_state_rate):
                    self._publish_states(stamp)
                if p.publish_cameras and cameras.due(now_ns, p.camera_rate):
                    wanted = [c for c in names.CAMERAS if c not in p.disabled_cameras]
                    images = self.sim.render(wanted) if wanted else {}
                succeeded = self.sim.success()
                if succeeded and self._success_ns is None:
                    self._success_ns = now_ns
            for camera, rgb in images.items():
                self._image_pubs[camera].publish(
                    image.to_msg(rgb, stamp, f'{camera}_color_optical_frame'))
            if success.due(now_ns, p.success_rate):
                self._success_pub.publish(Bool(data=succeeded))
            wall = time.monotonic()
            if wall - rtf_wall >= 1.0:
                self._rtf = (now_ns - rtf_sim) / 1e9 / (wall - rtf_wall)
                rtf_wall, rtf_sim = wall, now_ns
            if p.realtime_factor_cap > 0:
                ahead = wall0 + (now_ns - sim0) / 1e9 / p.realtime_factor_cap - wall
                if ahead > 0:
                    self._stop.wait(ahead)
                else:
                    if ahead < -0.5:    # fell far behind (rendering): do not race to catch up
                        wall0, sim0 = wall, now_ns
                    # Behind after a slow render: catch up at most _CATCH_UP x the cap, so each
                    # step's /clock reaches the sim-time timers of other processes on its own (a
                    # burst inside one scheduling slice reads as one jump, and a 25 Hz
                    # controller then skips the ticks in it: CI saw 14 Hz so).
                    self._stop.wait(_DT_NS / 1e9 / p.realtime_factor_cap / _CATCH_UP)

    # -- lockstep (control.lockstep) --------------------------------------------------------
    def _run_lockstep(self) -> None:
        steps = round(1e9 / names.CONTROL_HZ) // _DT_NS
        cameras, success = _Rate(), _Rate()
        idle_since, heartbeat = time.monotonic(), time.monotonic()
        while not self._stop.is_set():
            with self._tick:
                ready = self._tick.wait_for(self._lockstep_ready, timeout=0.05)
                now_ns, commands = self._clock_ns, dict(self._tick_commands)
            if self._stop.is_set():
                return
            if not ready:
                idle = time.monotonic() - idle_since
                rendered_ns, images = self._rendered
                if self.params.publish_cameras and rendered_ns != now_ns and (
                        idle > 0.1 or now_ns == self._episode_start_ns):
                    self._publish_cameras(now_ns, render=True)
                if time.monotonic() - heartbeat > 0.5:     # heal lost messages, late joiners
                    heartbeat = time.monotonic()
                    stamp = from_ns(now_ns)
                    self._clock_pub.publish(ClockMsg(clock=stamp))
                    self._publish_states(stamp)
                    if self._rendered[0] == now_ns:
                        self._publish_cameras(now_ns, render=False)
                continue
            with self._sim_lock:
                with self._tick:
                    if self._clock_ns != now_ns:            # a reset came in between
                        continue
                for side, command in commands.items():
                    clamped = self.sim.command(side, list(command), list(command.values()))
                    self._stats[side]['accepted'] += 1
                    self._stats[side]['clamped'] += bool(clamped)
                for _ in range(steps):
                    self.sim.step()
                succeeded = self.sim.success()
                with self._tick:
                    self._clock_ns = now_ns + steps * _DT_NS
                    if succeeded and self._success_ns is None:
                        self._success_ns = self._clock_ns
                    self._tick_commands = {}
                    now_ns = self._clock_ns
                stamp = from_ns(now_ns)
                self._clock_pub.publish(ClockMsg(clock=stamp))
                self._publish_states(stamp)
            if self.params.publish_cameras and cameras.due(now_ns, self.params.camera_rate):
                self._publish_cameras(now_ns, render=True)
            if success.due(now_ns, self.params.success_rate):
                self._success_pub.publish(Bool(data=succeeded))
            idle_since = heartbeat = time.monotonic()

    def _lockstep_ready(self) -> bool:
        """Both arms commanded at the current instant, inside the episode's time limit."""
        if self._stop.is_set():
            return True
        limit = self.params.episode_seconds
        if limit > 0 and self._clock_ns - self._episode_start_ns >= round(limit * 1e9):
            return False
        return all(side in self._tick_commands for side in names.SIDES)

    def _publish_cameras(self, now_ns: int, render: bool) -> None:
        """Lockstep: render the instant's cameras (physics thread only) or re-send them."""
        if render:
            wanted = [c for c in names.CAMERAS if c not in self.params.disabled_cameras]
            with self._sim_lock:
                if self._clock_ns != now_ns:
                    return
                images = self.sim.render(wanted) if wanted else {}
            self._rendered = (now_ns, images)
        rendered_ns, images = self._rendered
        for camera, rgb in images.items():
            self._image_pubs[camera].publish(
                image.to_msg(rgb, from_ns(rendered_ns), f'{camera}_color_optical_frame'))

    def _publish_states(self, stamp) -> None:
        for side, publisher in self._state_pubs.items():
            state = self.sim.arm_state(side)
            msg = JointState(name=list(names.JOINT_STATE_NAMES),
                             position=state.position.tolist(),
                             velocity=state.velocity.tolist(), effort=state.effort.tolist())
            msg.header.stamp = stamp
            publisher.publish(msg)

    # -- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = from_ns(self._clock_ns)
        for side, topic in zip(names.SIDES, self.params.command_topics):
            stats = dict(self._stats[side])
            status = DiagnosticStatus(name=f'{self.get_name()}: {topic}',
                                      hardware_id=f'sim follower_{side}')
            status.level = DiagnosticStatus.WARN if stats['rejected'] else DiagnosticStatus.OK
            status.message = (f'{stats["rejected"]} command(s) rejected'
                              if stats['rejected'] else 'commands ok')
            status.values = [KeyValue(key=k, value=str(v)) for k, v in stats.items()]
            status.values.append(KeyValue(key='real_time_factor', value=f'{self._rtf:.3f}'))
            array.status.append(status)
        self._diag_pub.publish(array)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


def main(args=None) -> None:
    nodes = []

    def build():
        nodes.append(SimRobot())
        return nodes[-1]

    run(build, args=args)
    if nodes and nodes[0].failed:
        raise SystemExit(1)
