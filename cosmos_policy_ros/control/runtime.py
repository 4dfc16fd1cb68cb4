"""The arm controller's tick as a ROS-free runtime: inputs in, one command and a status out.

nodes/controller.py only converts messages and publishes. It feeds the runtime joint states,
camera stamps, chunks and the e-stop, calls `step(now)` on every tick and publishes what comes
back. The tests drive the same object over sim-time sequences (tests/test_runtime.py).

Each tick takes the executor's target (control.chunks), or holds the last safe target when
idle, e-stopped or while the watchdog is engaged (late camera/joint states, or no chunk for
`chunk_timeout`). Every target passes control.safety.SafetyGate. A chunk is rejected and
counted when it is stale, non-finite, the wrong size or has unknown names
(control.chunks.check_chunk). It is also rejected when its arm joints jump more than
`max_jump_rad` between consecutive points, or its first point lies that far from the measured
position (control.jumps), or when it arrives during an e-stop or while observations are late.

`lockstep` (control.lockstep, sim evaluation): commands are given only while a chunk runs (the
sim waits for them). A sync chunk starts at the tick of its observation stamp, and a chunk
ahead of the runtime's clock waits for it. A new episode (told by the stamp) drops the chunk
and re-seeds the gate from that episode's joint states. Chunks of another episode are
rejected.
"""
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import Calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.chunks import (
    Chunk,
    ChunkError,
    ChunkExecutor,
    StepStats,
    check_chunk,
)
from cosmos_policy_ros.control.jumps import chunk_jump
from cosmos_policy_ros.control.safety import SafetyGate, SafetyLimits
from cosmos_policy_ros.control.trigger import ControllerStatus
from cosmos_policy_ros.control.units import robot_to_command
from cosmos_policy_ros.control.watchdog import Watchdog
from cosmos_policy_ros.health import Level
from cosmos_policy_ros.schemas.controller import CONTROLLER


class State(str, Enum):
    """What the controller is doing; the value is what ControllerStatus.state carries."""
    WAITING = 'waiting'           # no joint states of both arms yet: nothing to command
    IDLE = 'idle'                 # no chunk: holding the last safe position
    RUNNING = 'running'           # executing a chunk
    HOLDING = 'holding'           # the chunk finished: holding its last action
    WATCHDOG = 'watchdog'         # inputs late: holding
    ESTOP = 'estop'               # e-stop engaged: holding until released


@dataclass(frozen=True)
class RuntimeConfig:
    """The controller's settings: the node parameters of the same names (schemas.controller,
    where their defaults and ranges are declared)."""
    mode: str
    execute_steps: int
    ensemble: bool
    ensemble_decay: float
    chunk_smoothing: int
    blend_steps: int
    output_rate: float
    max_step_rad: float
    max_gripper_step: float
    max_chunk_age: float
    max_jump_rad: float
    observation_timeout: float
    chunk_timeout: float
    startup_grace: float
    lockstep: bool

    @classmethod
    def from_params(cls, params) -> 'RuntimeConfig':
        """From a node's declared parameters (any object with these attributes)."""
        return cls(**{name: getattr(params, name) for name in cls.__dataclass_fields__})

    @classmethod
    def defaults(cls, **changes) -> 'RuntimeConfig':
        """The schema's defaults, with `changes`."""
        unknown = set(changes) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f'RuntimeConfig has no {sorted(unknown)}; known: '
                            f'{sorted(cls.__dataclass_fields__)}')
        values = {param.name: param.default for param in CONTROLLER}
        return cls(**{name: changes.get(name, values[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Tick:
    command: np.ndarray | None    # (14,) command units to send; None: send nothing
    status: ControllerStatus | None   # to publish; None: nothing (an instant commanded already)
    events: tuple = ()            # (Level, text) worth a log line, e.g. the watchdog engaging


@dataclass(frozen=True)
class Health:
    level: Level
    message: str
    values: dict


class ControllerRuntime:
    """Not thread-safe: the node calls it under one lock."""

    def __init__(self, config: RuntimeConfig, calibration: Calibration):
        self.config = config
        self.gripper = calibration.gripper
        ticks_per_action = config.output_rate / names.CONTROL_HZ
        limits = SafetyLimits.from_calibration(calibration, config.max_step_rad,
                                               config.max_gripper_step)
        self.gate = SafetyGate(limits.scaled_step(1.0 / ticks_per_action))
        self.executor = ChunkExecutor(mode=config.mode, blend_steps=config.blend_steps,
                                      interpolate=ticks_per_action > 1.0,
                                      execute_steps=config.execute_steps,
                                      ensemble=config.ensemble,
                                      ensemble_decay=config.ensemble_decay,
                                      smoothing=config.chunk_smoothing)
        watched = {source: config.observation_timeout
                   for source in names.CAMERAS + names.FOLLOWERS}
        watched['chunk'] = config.chunk_timeout
        self.watchdog = Watchdog(watched, grace=config.startup_grace)
        self.raw_steps, self.sent_steps = StepStats(), StepStats()
        self.estop = False
        self.measured = {}                    # follower arm -> (7,) command-unit position
        self.measured_stamp = {}              # follower arm -> stamp [s] of that position
        self.counts = {'chunks_accepted': 0, 'chunks_rejected': 0, 'jumps_rejected': 0,
                       'holds': 0, 'watchdog_engagements': 0, 'estops': 0}
        self.max_chunk_jump = 0.0             # largest jump seen in a received chunk [rad]
        self.last_reject = ''
        self.last_chunk_stamp = -1.0
        self.state, self.reason = State.WAITING, 'no joint states yet'
        self.intervals = deque(maxlen=1000)   # tick intervals [s]
        self.last_tick = None
        self.episode = None                   # lockstep: episode index
        self.deferred = None                  # lockstep: a chunk ahead of the clock
        self.commanded_at = None              # time of the last command given

    # -- inputs -----------------------------------------------------------------------------
    def joint_state(self, arm: str, position, stamp: float) -> None:
        """A follower's measured position (7 values, names.COMMAND_JOINTS order)."""
        if self.config.lockstep and self.episode is not None and \
                lockstep.episode_of(stamp) != self.episode:
            return                            # from another episode: never seeds the gate
        self.measured[arm] = np.asarray(position, dtype=np.float64)
        self.measured_stamp[arm] = stamp
        self.watchdog.feed(arm, stamp)

    def camera(self, camera: str, stamp: float) -> None:
        self.watchdog.feed(camera, stamp)

    def set_estop(self, engaged: bool) -> tuple:
        """Engage or release the e-stop; takes effect on the next tick. Returns events."""
        events = ()
        if engaged and not self.estop:
            self.counts['estops'] += 1
            self.executor.clear()
            events = ((Level.WARN, 'E-STOP: holding position until released'),)
        elif not engaged and self.estop:
            events = ((Level.OK, 'e-stop released: waiting for a new chunk'),)
        self.estop = bool(engaged)
        return events

    def submit(self, chunk: Chunk, now: float) -> Tick | None:
        """Check a chunk and queue it (sync) or switch to it (async). Returns the tick run
        at once in lockstep (the sim waits at the chunk's stamp), else None; a lockstep chunk
        ahead of the clock waits for it. A rejected chunk raises ChunkError with every reason
        (and is counted: status, /diagnostics)."""
        if self.config.lockstep:
            self._lockstep_episode(now)
            if chunk.stamp > now:
                self.deferred = chunk         # the clock has not reached its stamp yet
                return None
        return self._accept(chunk, now)

    # -- the tick ---------------------------------------------------------------------------
    def step(self, now: float) -> Tick:
        """One tick at time `now`: the command to send (None: none) and the status."""
        if self.config.lockstep:
            self._lockstep_episode(now)
            if self.deferred is not None and self.deferred.stamp <= now:
                chunk, self.deferred = self.deferred, None
                try:
                    return self._accept(chunk, now)
                except ChunkError as exc:
                    tick = self._tick(now)
                    return replace(tick, events=((Level.ERROR, f'chunk rejected: {exc}'),
                                                 *tick.events))
        return self._tick(now)

    def status(self, now: float) -> ControllerStatus:
        running = self.state in (State.RUNNING, State.HOLDING)
        return ControllerStatus(
            remaining=self.executor.remaining(now) if running else 0,
            last_chunk_stamp=self.last_chunk_stamp, state=self.state.value,
            reason=self.reason, stamp=now, counts=self.summary())

    def summary(self) -> dict:
        counts = self.gate.counts
        joint_max = (self.sent_steps.joint_max if self.sent_steps.joint_max is not None
                     else np.zeros(names.STATE_DIM))
        period = 1.0 / self.config.output_rate
        jitter = (np.abs(np.array(self.intervals) - period) if self.intervals
                  else np.zeros(1))
        return {**self.counts, 'ticks': counts.ticks, 'limit_clamped': counts.limit_clamped,
                'step_clamped': counts.step_clamped, 'non_finite_held': counts.non_finite,
                'max_step': self.sent_steps.max_step,
                'max_arm_step': float(joint_max[list(names.ARM_JOINT_INDICES)].max()),
                'max_gripper_step': float(joint_max[list(names.GRIPPER_INDICES)].max()),
                'max_boundary_step': self.sent_steps.max_boundary_step,
                'max_raw_boundary_step': self.raw_steps.max_boundary_step,
                'boundaries': self.raw_steps.boundaries,
                'max_chunk_jump': self.max_chunk_jump,
                'jitter_p50': float(np.percentile(jitter, 50)),
                'jitter_p99': float(np.percentile(jitter, 99)),
                'last_reject': self.last_reject}

    def health(self) -> Health:
        """Diagnostics: ERROR while e-stopped, WARN while the watchdog holds or once a chunk
        was rejected, else OK."""
        level = {State.ESTOP: Level.ERROR, State.WATCHDOG: Level.WARN}.get(self.state,
                                                                          Level.OK)
        if self.counts['chunks_rejected'] and level == Level.OK:
            level = Level.WARN
        message = self.state.value + (f': {self.reason}' if self.reason else '')
        return Health(level, message, self.summary())

    # -- internals --------------------------------------------------------------------------
    def _accept(self, chunk: Chunk, now: float) -> Tick | None:
        self.last_chunk_stamp = max(self.last_chunk_stamp, chunk.stamp)
        try:
            positions = self._checked(chunk, now)
        except ChunkError as exc:
            self.counts['chunks_rejected'] += 1
            self.last_reject = str(exc)
            raise
        self.executor.submit(positions, chunk.stamp, now)
        self.watchdog.feed('chunk', now)
        self.counts['chunks_accepted'] += 1
        return self._tick(now) if self.config.lockstep else None

    def _checked(self, chunk: Chunk, now: float) -> np.ndarray:
        """The chunk's (points, 14) command-unit positions if it may run; else ChunkError."""
        positions = robot_to_command(check_chunk(chunk, now, self.config.max_chunk_age).positions,
                                     self.gripper)
        reasons = self._jump_reasons(positions, chunk.stamp, now)
        if not reasons and self.estop:
            reasons.append('e-stop engaged')
        # A chunk is refused while observations are late; a watchdog engaged only by the chunk
        # timeout is what this very chunk ends.
        if not reasons and set(self.watchdog.late) - {'chunk'}:
            reasons.append(f'watchdog engaged ({"; ".join(self.watchdog.reasons)})')
        if not reasons and self.config.lockstep and \
                lockstep.episode_of(chunk.stamp) != lockstep.episode_of(now):
            reasons.append('observation from a previous episode')
        if reasons:
            raise ChunkError(reasons)
        return positions

    def _jump_reasons(self, positions: np.ndarray, stamp: float, now: float) -> list:
        """Reasons to reject a chunk (command units) whose arm joints jump too far. A sync
        chunk starts at its first point; an async one at the point due now (stamp-aligned)."""
        measured = (np.concatenate([self.measured[arm] for arm in names.FOLLOWERS])
                    if len(self.measured) == len(names.FOLLOWERS) else None)
        start = 0
        if self.config.mode == 'async':
            due = round((now - stamp) * names.CONTROL_HZ)
            start = int(np.clip(due, 0, len(positions) - 1))
        jump = chunk_jump(positions, measured, start)
        self.max_chunk_jump = max(self.max_chunk_jump, jump.largest)
        if not self.config.max_jump_rad:
            return []                         # the check is off (the largest jump is kept)
        reason = jump.reason(self.config.max_jump_rad)
        if reason:
            self.counts['jumps_rejected'] += 1
            return [reason]
        return []

    def _lockstep_episode(self, now: float) -> None:
        """A new lockstep episode (sim reset): drop chunks, re-seed the gate from its states."""
        episode = lockstep.episode_of(now)
        if episode == self.episode:
            return
        self.episode = episode
        self.executor.clear()
        self.gate.last_safe = None
        self.deferred = None
        start = lockstep.episode_start(episode)
        self.measured = {arm: position for arm, position in self.measured.items()
                         if self.measured_stamp.get(arm, -1.0) >= start}

    def _tick(self, now: float) -> Tick:
        if self.config.lockstep and self.commanded_at == now:
            return Tick(None, None)       # lockstep: this instant is commanded already
        if self.last_tick is not None and now > self.last_tick:
            self.intervals.append(now - self.last_tick)
        self.last_tick = now
        if self.gate.last_safe is None:
            if len(self.measured) < len(names.FOLLOWERS):
                return Tick(None, self.status(now))
            self.gate.reset(np.concatenate([self.measured[arm] for arm in names.FOLLOWERS]))
        command, boundary, events = self._target(now)
        if self.config.lockstep and self.state != State.RUNNING:
            return Tick(None, self.status(now), events)   # the sim stays at this instant
        self.raw_steps.add(command, boundary)
        result = self.gate.apply(command)
        if result.held:
            self.reason = f'target rejected by the safety gate: {result.reason}'
        self.sent_steps.add(result.target, boundary)
        self.commanded_at = now
        return Tick(result.target, self.status(now), events)

    def _target(self, now: float) -> tuple:
        """(14-d desired command, boundary flag, events); a hold is the last safe target."""
        events = ()
        engaged_before = self.watchdog.engaged
        if self.watchdog.check(now) and not engaged_before:
            self.counts['watchdog_engagements'] += 1
            self.executor.clear()
            events = ((Level.WARN, f'watchdog: holding ({"; ".join(self.watchdog.reasons)})'),)
        if self.estop:
            return self._hold(State.ESTOP, 'e-stop engaged (publish false on '
                              f'{names.ESTOP_TOPIC} to release)') + (events,)
        if self.watchdog.engaged:
            return self._hold(State.WATCHDOG, '; '.join(self.watchdog.reasons)) + (events,)
        target = self.executor.target(now)
        if target is None:
            return self._hold(State.IDLE, 'waiting for a chunk') + (events,)
        self.state = State.HOLDING if target.holding else State.RUNNING
        self.reason = 'chunk finished; holding its last action' if target.holding else ''
        return target.position, target.boundary, events

    def _hold(self, state: State, reason: str) -> tuple:
        self.state, self.reason = state, reason
        if state != State.IDLE:
            self.counts['holds'] += 1
        return self.gate.hold(), False
