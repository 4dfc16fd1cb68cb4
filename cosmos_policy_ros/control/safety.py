"""The one safety gate every joint target passes before it reaches a motor (ROS-free).

Works in command units, the 14-d [left 6, left gripper, right 6, right gripper] vector with arm
joints in rad and grippers as follower gripper MOTOR angles (what the arm command interface
takes). Order of checks: finite (else hold the last safe target), joint/gripper range clamp,
then a symmetric per-tick delta clamp around the last safe target.
"""
from dataclasses import dataclass, field

import numpy as np

from cosmos_policy_ros.calibration import Calibration
from cosmos_policy_ros.joint_command import JointLimits
from cosmos_policy_ros.names import FOLLOWERS, GRIPPER_INDICES, STATE_DIM


@dataclass(frozen=True)
class SafetyLimits:
    lower: np.ndarray          # (14,) command units
    upper: np.ndarray          # (14,)
    max_step: np.ndarray       # (14,) largest change per tick, > 0

    def __post_init__(self):
        for name in ('lower', 'upper', 'max_step'):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (STATE_DIM,) or not np.all(np.isfinite(value)):
                raise ValueError(f'SafetyLimits.{name}: expected {STATE_DIM} finite numbers, '
                                 f'got shape {value.shape}')
            object.__setattr__(self, name, value)
        if np.any(self.lower >= self.upper):
            bad = np.flatnonzero(self.lower >= self.upper).tolist()
            raise ValueError(f'SafetyLimits.lower must be below upper (indices {bad})')
        if np.any(self.max_step <= 0):
            raise ValueError('SafetyLimits.max_step must be positive for every joint')

    @classmethod
    def from_calibration(cls, calibration: Calibration, max_step_rad: float,
                         max_gripper_step: float) -> 'SafetyLimits':
        """Each follower's joint_command.JointLimits (calibration joint limits, gripper
        motor range), side by side."""
        if not (max_step_rad > 0 and max_gripper_step > 0):
            raise ValueError(f'max_step_rad ({max_step_rad}) and max_gripper_step '
                             f'({max_gripper_step}) must be positive')
        arm = JointLimits.from_calibration(calibration)
        step = np.full(STATE_DIM, float(max_step_rad))
        step[list(GRIPPER_INDICES)] = float(max_gripper_step)
        return cls(lower=np.tile(arm.lower, len(FOLLOWERS)),
                   upper=np.tile(arm.upper, len(FOLLOWERS)), max_step=step)

    def scaled_step(self, factor: float) -> 'SafetyLimits':
        """Same limits with the per-tick step scaled (for a tick rate above the control rate)."""
        return SafetyLimits(self.lower, self.upper, self.max_step * factor)


@dataclass
class GateCounts:
    ticks: int = 0
    limit_clamped: int = 0        # ticks where any joint hit a range limit
    step_clamped: int = 0         # ticks where any joint hit the delta clamp
    non_finite: int = 0           # ticks where the target was not finite (held instead)


@dataclass(frozen=True)
class GateResult:
    target: np.ndarray            # what may be sent: always finite, in range, step-limited
    limit_clamped: tuple          # indices clamped to the range
    step_clamped: tuple           # indices clamped by the delta limit
    held: bool                    # the input was unusable; target is the last safe target
    reason: str = ''


@dataclass
class SafetyGate:
    limits: SafetyLimits
    counts: GateCounts = field(default_factory=GateCounts)
    last_safe: np.ndarray | None = None

    def reset(self, position) -> np.ndarray:
        """Start from a measured position (clamped into range); returns the hold target."""
        position = np.asarray(position, dtype=np.float64)
        if position.shape != (STATE_DIM,) or not np.all(np.isfinite(position)):
            raise ValueError(f'SafetyGate.reset: need {STATE_DIM} finite joint positions, got '
                             f'{position}')
        self.last_safe = np.clip(position, self.limits.lower, self.limits.upper)
        return self.last_safe.copy()

    def apply(self, target) -> GateResult:
        if self.last_safe is None:
            raise RuntimeError('SafetyGate.apply before reset(): the gate needs the current '
                               'position to limit the first step')
        self.counts.ticks += 1
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (STATE_DIM,) or not np.all(np.isfinite(target)):
            self.counts.non_finite += 1
            reason = (f'target shape {target.shape}' if target.shape != (STATE_DIM,) else
                      f'non-finite target at indices {np.flatnonzero(~np.isfinite(target))}')
            return GateResult(self.last_safe.copy(), (), (), True, reason + '; holding')
        in_range = np.clip(target, self.limits.lower, self.limits.upper)
        limit_hit = np.flatnonzero(in_range != target)
        delta = in_range - self.last_safe
        bounded = np.clip(delta, -self.limits.max_step, self.limits.max_step)
        step_hit = np.flatnonzero(bounded != delta)
        safe = self.last_safe + bounded
        self.counts.limit_clamped += int(limit_hit.size > 0)
        self.counts.step_clamped += int(step_hit.size > 0)
        self.last_safe = safe
        return GateResult(safe.copy(), tuple(limit_hit.tolist()), tuple(step_hit.tolist()), False)

    def hold(self) -> np.ndarray:
        """The last safe target (what a hold keeps commanding)."""
        if self.last_safe is None:
            raise RuntimeError('SafetyGate.hold before reset()')
        return self.last_safe.copy()
