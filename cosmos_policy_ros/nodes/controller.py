"""controller: walks action chunks at 25 Hz and commands both follower arms through one gate.

Subscribes: the chunk topic (trajectory_msgs/JointTrajectory, policy or planner by graph),
both follower joint_states (start position + watchdog), the three cameras as raw CDR bytes
(only the header stamp is read, so the watchdog costs no image copies), names.ESTOP_TOPIC
(std_msgs/Bool, latched true until a false arrives).
Publishes: /follower_*/commands/joint_positions (sensor_msgs/JointState, reliable) every tick,
names.CONTROLLER_STATUS_TOPIC (JSON: remaining actions, last chunk stamp, state, counts) every
tick, /diagnostics periodically.

Each tick takes the executor's target (control.chunks), or holds the last safe target when
idle, e-stopped or while the watchdog is engaged (late camera/joint states, or no chunk for
`chunk_timeout`); every target passes control.safety.SafetyGate. A chunk that is stale,
non-finite, the wrong size, has unknown names or arrives during a hold is rejected and counted.

`lockstep: true` (control.lockstep, sim evaluation): commands are published only while a
chunk runs (the sim waits for them), a sync chunk starts at the tick of its observation stamp
(a chunk ahead of this node's clock waits for it), a new episode (told by the stamp) drops the
chunk and re-seeds the gate from that episode's joint states, and chunks of another episode
are rejected.
"""
import struct
import threading
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.chunks import ChunkExecutor, StepStats, check_chunk
from cosmos_policy_ros.control.safety import GRIPPER_INDICES, SafetyGate, SafetyLimits
from cosmos_policy_ros.control.trigger import ControllerStatus
from cosmos_policy_ros.control.units import robot_to_command
from cosmos_policy_ros.control.watchdog import Watchdog
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.stamps import from_ns
from cosmos_policy_ros.ros.trajectory import from_msg
from cosmos_policy_ros.schemas.controller import CONTROLLER


def header_stamp_of_cdr(data: bytes) -> float:
    """Header stamp [s] of a serialized message whose first field is std_msgs/Header."""
    little = data[1] == 1                     # CDR encapsulation: 0x0001 little-endian
    sec, nanosec = struct.unpack('<iI' if little else '>iI', data[4:12])
    return sec + nanosec * 1e-9


class Controller(Node):
    def __init__(self):
        super().__init__('controller')
        self.params = params.declare(self, CONTROLLER)
        p = self.params
        calibration = load_calibration(p.calibration)
        self.gripper = calibration.gripper
        ticks_per_action = p.output_rate / names.CONTROL_HZ
        limits = SafetyLimits.from_calibration(calibration, p.max_step_rad, p.max_gripper_step)
        self.gate = SafetyGate(limits.scaled_step(1.0 / ticks_per_action))
        self.executor_ = ChunkExecutor(mode=p.mode, blend_steps=p.blend_steps,
                                       interpolate=ticks_per_action > 1.0)
        watched = {source: p.observation_timeout for source in names.CAMERAS + names.FOLLOWERS}
        watched['chunk'] = p.chunk_timeout
        self.watchdog = Watchdog(watched, grace=p.startup_grace)
        self.raw_steps, self.sent_steps = StepStats(), StepStats()
        self.lock = threading.Lock()
        self.estop = False
        self.measured = {}                    # arm -> (7,) command-unit position
        self.counts = {'chunks_accepted': 0, 'chunks_rejected': 0, 'holds': 0,
                       'watchdog_engagements': 0, 'estops': 0}
        self.last_reject = ''
        self.last_chunk_stamp = -1.0
        self.state, self.reason = 'waiting', 'no joint states yet'
        self.intervals = deque(maxlen=1000)   # node-clock tick intervals [s]
        self.last_tick = None
        self.measured_stamp = {}              # arm -> stamp [s] of the measured position
        self.episode = None                   # lockstep episode index
        self.deferred = None                  # lockstep: a chunk ahead of this node's clock
        self.commanded_at = None              # time of the last published command
        self.sim_now = None                   # lockstep: the newest /clock instant

        reliable = QoSProfile(depth=10)
        self.command_pubs = {arm: self.create_publisher(JointState,
                                                        names.joint_command_topic(arm),
                                                        reliable)
                             for arm in names.FOLLOWERS}
        self.status_pub = self.create_publisher(String, names.CONTROLLER_STATUS_TOPIC, reliable)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                              reliable)
        inputs = ReentrantCallbackGroup()
        # Chunks are handled one at a time, in arrival order (never an older one after a newer).
        self.create_subscription(JointTrajectory, p.chunk_topic, self.on_chunk, reliable,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        for arm in names.FOLLOWERS:
            self.create_subscription(JointState, names.joint_states_topic(arm),
                                     lambda msg, arm=arm: self.on_joint_state(arm, msg),
                                     QoSProfile(depth=20), callback_group=inputs)
        for camera in names.CAMERAS:
            self.create_subscription(Image, names.camera_topic(camera),
                                     lambda data, cam=camera: self.on_camera(cam, data),
                                     qos_profile_sensor_data, callback_group=inputs, raw=True)
        # E-stop in its own group so it is handled even while a tick runs.
        self.create_subscription(Bool, names.ESTOP_TOPIC, self.on_estop, reliable,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if p.lockstep:
            # Tick on every new sim instant (a timer could skip the instant the sim waits at).
            self.create_subscription(ClockMsg, '/clock', self.on_clock, QoSProfile(depth=10),
                                     callback_group=MutuallyExclusiveCallbackGroup())
        else:
            self.create_timer(1.0 / p.output_rate, self.tick,
                              callback_group=MutuallyExclusiveCallbackGroup(),
                              clock=steady if p.steady_timer else None)
        self.create_timer(p.diagnostics_period, self.publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        self.get_logger().info(f'controller: {p.mode} mode on {p.chunk_topic}, '
                               f'{p.output_rate} Hz, max step {p.max_step_rad} rad/tick')

    def now(self) -> float:
        if self.params.lockstep:
            return self.sim_now if self.sim_now is not None else 0.0
        return self.get_clock().now().nanoseconds * 1e-9

    def on_clock(self, msg: ClockMsg) -> None:
        """Lockstep: tick on every clock message. A repeated instant (the paused sim's
        heartbeat) ticks again without commanding twice: it re-sends the status and picks up
        joint states that arrived after the first tick."""
        now = msg.clock.sec + msg.clock.nanosec * 1e-9
        with self.lock:
            if self.sim_now is not None and now < self.sim_now:
                return
            self.sim_now = now
        self.tick()

    # -- inputs -----------------------------------------------------------------------------
    def on_joint_state(self, arm: str, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        if not all(name in index for name in names.COMMAND_JOINTS):
            self.get_logger().error(f'{names.joint_states_topic(arm)} lacks '
                                    f'{list(names.COMMAND_JOINTS)}', throttle_duration_sec=5.0)
            return
        position = np.array([msg.position[index[n]] for n in names.COMMAND_JOINTS])
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            if self.params.lockstep and self.episode is not None and \
                    lockstep.episode_of(stamp) != self.episode:
                return                        # from another episode: never seeds the gate
            self.measured[arm] = position
            self.measured_stamp[arm] = stamp
            self.watchdog.feed(arm, stamp)

    def on_camera(self, camera: str, data: bytes) -> None:
        with self.lock:
            self.watchdog.feed(camera, header_stamp_of_cdr(data))

    def on_estop(self, msg: Bool) -> None:
        with self.lock:
            if msg.data and not self.estop:
                self.counts['estops'] += 1
                self.executor_.clear()
                self.get_logger().warning('E-STOP: holding position until released')
            elif not msg.data and self.estop:
                self.get_logger().info('e-stop released: waiting for a new chunk')
            self.estop = bool(msg.data)

    def on_chunk(self, msg: JointTrajectory) -> None:
        chunk = from_msg(msg, source=self.params.chunk_topic)
        with self.lock:
            now = self.now()
            if self.params.lockstep:
                self.lockstep_episode(now)
            if self.params.lockstep and chunk.stamp > now:
                self.deferred = chunk         # the clock has not reached its stamp yet
                return
            self.accept_chunk(chunk, now)

    def accept_chunk(self, chunk, now: float) -> None:
        """Check and submit a chunk (call with the lock held)."""
        self.last_chunk_stamp = max(self.last_chunk_stamp, chunk.stamp)
        check = check_chunk(chunk, now, self.params.max_chunk_age)
        reasons = list(check.reasons)
        if check.ok and self.estop:
            reasons.append('e-stop engaged')
        # A chunk is refused while observations are late; a watchdog engaged only by
        # the chunk timeout is what this very chunk ends.
        if check.ok and set(self.watchdog.late) - {'chunk'}:
            reasons.append(f'watchdog engaged ({"; ".join(self.watchdog.reasons)})')
        if check.ok and self.params.lockstep and \
                lockstep.episode_of(chunk.stamp) != lockstep.episode_of(now):
            reasons.append('observation from a previous episode')
        if reasons:
            self.counts['chunks_rejected'] += 1
            self.last_reject = '; '.join(reasons)
            self.get_logger().error(f'chunk rejected: {self.last_reject}',
                                    throttle_duration_sec=1.0)
            return
        positions = robot_to_command(check.chunk.positions, self.gripper)
        self.executor_.submit(positions, chunk.stamp, now)
        self.watchdog.feed('chunk', now)
        self.counts['chunks_accepted'] += 1
        if self.params.lockstep:
            self.tick_locked(now)         # the sim waits at the observation's instant

    # -- the 25 Hz loop ---------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            now = self.now()
            if self.params.lockstep:
                self.lockstep_episode(now)
                if self.deferred is not None and self.deferred.stamp <= now:
                    chunk, self.deferred = self.deferred, None
                    self.accept_chunk(chunk, now)
            self.tick_locked(now)

    def lockstep_episode(self, now: float) -> None:
        """A new lockstep episode (sim reset): drop chunks, re-seed the gate from its states."""
        episode = lockstep.episode_of(now)
        if episode == self.episode:
            return
        self.episode = episode
        self.executor_.clear()
        self.gate.last_safe = None
        self.deferred = None
        start = lockstep.episode_start(episode)
        self.measured = {a: p for a, p in self.measured.items()
                         if self.measured_stamp.get(a, -1.0) >= start}

    def tick_locked(self, now: float) -> None:
        if self.params.lockstep and self.commanded_at == now:
            return                            # this instant is commanded already
        if self.last_tick is not None and now > self.last_tick:
            self.intervals.append(now - self.last_tick)
        self.last_tick = now
        if self.gate.last_safe is None:
            if len(self.measured) < len(names.FOLLOWERS):
                return self.publish_status(now)
            self.gate.reset(np.concatenate([self.measured[a] for a in names.FOLLOWERS]))
        command, boundary = self.choose_target(now)
        if self.params.lockstep and self.state != 'running':
            return self.publish_status(now)   # no command: the sim stays at this instant
        self.raw_steps.add(command, boundary)
        result = self.gate.apply(command)
        if result.held:
            self.reason = f'target rejected by the safety gate: {result.reason}'
        self.sent_steps.add(result.target, boundary)
        self.publish_commands(result.target, now)
        self.commanded_at = now
        self.publish_status(now)

    def choose_target(self, now: float) -> tuple:
        """(14-d desired command, boundary flag); a hold is the last safe target."""
        engaged_before = self.watchdog.engaged
        if self.watchdog.check(now) and not engaged_before:
            self.counts['watchdog_engagements'] += 1
            self.executor_.clear()
            self.get_logger().warning(f'watchdog: holding ({"; ".join(self.watchdog.reasons)})')
        if self.estop:
            return self.hold('estop', 'e-stop engaged (publish false on '
                             f'{names.ESTOP_TOPIC} to release)')
        if self.watchdog.engaged:
            return self.hold('watchdog', '; '.join(self.watchdog.reasons))
        target = self.executor_.target(now)
        if target is None:
            return self.hold('idle', 'waiting for a chunk')
        self.state = 'holding' if target.holding else 'running'
        self.reason = 'chunk finished; holding its last action' if target.holding else ''
        return target.position, target.boundary

    def hold(self, state: str, reason: str) -> tuple:
        self.state, self.reason = state, reason
        if state != 'idle':
            self.counts['holds'] += 1
        return self.gate.hold(), False

    def publish_commands(self, target: np.ndarray, now: float) -> None:
        stamp = from_ns(round(now * 1e9))
        for offset, arm in zip((0, 7), names.FOLLOWERS):
            msg = JointState(name=list(names.COMMAND_JOINTS),
                             position=target[offset:offset + 7].tolist())
            msg.header.stamp = stamp
            self.command_pubs[arm].publish(msg)

    def publish_status(self, now: float) -> None:
        status = ControllerStatus(
            remaining=self.executor_.remaining(now) if self.state in ('running', 'holding')
            else 0,
            last_chunk_stamp=self.last_chunk_stamp, state=self.state, reason=self.reason,
            stamp=now, counts=self.summary())
        self.status_pub.publish(String(data=status.to_json()))

    def summary(self) -> dict:
        counts = self.gate.counts
        joint_max = (self.sent_steps.joint_max if self.sent_steps.joint_max is not None
                     else np.zeros(names.STATE_DIM))
        period = 1.0 / self.params.output_rate
        jitter = (np.abs(np.array(self.intervals) - period) if self.intervals
                  else np.zeros(1))
        return {**self.counts, 'ticks': counts.ticks, 'limit_clamped': counts.limit_clamped,
                'step_clamped': counts.step_clamped, 'non_finite_held': counts.non_finite,
                'max_step': self.sent_steps.max_step,
                'max_arm_step': float(np.delete(joint_max, GRIPPER_INDICES).max()),
                'max_gripper_step': float(joint_max[list(GRIPPER_INDICES)].max()),
                'max_boundary_step': self.sent_steps.max_boundary_step,
                'max_raw_boundary_step': self.raw_steps.max_boundary_step,
                'boundaries': self.raw_steps.boundaries,
                'jitter_p50': float(np.percentile(jitter, 50)),
                'jitter_p99': float(np.percentile(jitter, 99)),
                'last_reject': self.last_reject}

    def publish_diagnostics(self) -> None:
        with self.lock:
            summary, state, reason = self.summary(), self.state, self.reason
            now = self.now()
        level = {'estop': DiagnosticStatus.ERROR, 'watchdog': DiagnosticStatus.WARN}.get(
            state, DiagnosticStatus.OK)
        if summary['chunks_rejected'] and level == DiagnosticStatus.OK:
            level = DiagnosticStatus.WARN
        status = DiagnosticStatus(level=level, name=f'{self.get_name()}: arm controller',
                                  hardware_id='follower_left+follower_right',
                                  message=f'{state}' + (f': {reason}' if reason else ''))
        status.values = [KeyValue(key=key, value=str(value)) for key, value in summary.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = from_ns(round(now * 1e9))
        self.diag_pub.publish(array)


def main(args=None) -> None:
    run(Controller, args=args)
