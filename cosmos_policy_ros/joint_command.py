"""The per-arm joint-position command: one validator and one clamp for every consumer.

A command is (names, positions): `names` ⊆ names.COMMAND_JOINTS (6 arm joints + 'gripper'),
`positions` in rad, the gripper as the follower gripper MOTOR angle. A malformed command is
rejected whole with JointCommandError naming the field and the fix; an accepted one is clamped
to the arm's limits (JointLimits). Used by the sim (sim/aloha_sim.py, nodes/sim_robot.py), the
arm driver (hardware/arm.py, hardware/supervisor.py), teleop (control/teleop.py) and the
controller's safety gate limits (control/safety.py).
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.calibration import Calibration
from cosmos_policy_ros.names import COMMAND_JOINTS


class JointCommandError(ValueError):
    """A joint command that must not be applied."""


def parse_command(names: Sequence[str], positions: Sequence[float], source: str = 'command',
                  complete: bool = False) -> dict:
    """{joint: position} of a command; raise JointCommandError for empty, unknown, repeated
    or (with `complete`) missing names, a length mismatch or non-finite values."""
    names = [str(name) for name in names]
    if not names:
        raise JointCommandError(f'{source}: name is empty; list the joints to move, a subset '
                                f'of {list(COMMAND_JOINTS)}')
    unknown = [name for name in names if name not in COMMAND_JOINTS]
    if unknown and not complete:
        raise JointCommandError(f'{source}: name has unknown joint(s) {unknown}; use names from '
                                f'{list(COMMAND_JOINTS)} (fingers are driven via "gripper")')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise JointCommandError(f'{source}: name repeats {duplicates}; give each joint once')
    if len(positions) != len(names):
        raise JointCommandError(f'{source}: position has {len(positions)} values but name has '
                                f'{len(names)}; give one position [rad] per name')
    missing = [joint for joint in COMMAND_JOINTS if joint not in names]
    if complete and missing:
        raise JointCommandError(f'{source}: name lacks {missing}; publish all of '
                                f'{list(COMMAND_JOINTS)}')
    command = {name: float(value) for name, value in zip(names, positions)
               if name in COMMAND_JOINTS}
    bad = [f'{name}={value}' for name, value in command.items() if not np.isfinite(value)]
    if bad:
        raise JointCommandError(f'{source}: position has non-finite value(s) {bad}; send finite '
                                'angles in rad')
    return command


def command_vector(names: Sequence[str], positions: Sequence[float],
                   source: str = 'joint_states') -> np.ndarray:
    """(7,) positions in COMMAND_JOINTS order from a message naming every joint (other names,
    e.g. the fingers of joint_states, are ignored)."""
    command = parse_command(names, positions, source, complete=True)
    return np.array([command[joint] for joint in COMMAND_JOINTS], dtype=np.float64)


@dataclass(frozen=True)
class JointLimits:
    """Lower/upper bounds of one arm in COMMAND_JOINTS order (arm joints + gripper motor)."""
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        for name in ('lower', 'upper'):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (len(COMMAND_JOINTS),) or not np.all(np.isfinite(value)):
                raise ValueError(f'JointLimits.{name}: expected {len(COMMAND_JOINTS)} finite '
                                 f'numbers {list(COMMAND_JOINTS)}, got {value}')
            object.__setattr__(self, name, value)

    @classmethod
    def from_calibration(cls, calibration: Calibration) -> 'JointLimits':
        arm = calibration.limits_array()
        grip_lo, grip_hi = calibration.gripper.follower_joint_range()
        return cls(lower=np.append(arm[:, 0], grip_lo), upper=np.append(arm[:, 1], grip_hi))

    def clamp(self, vector, source: str = 'goal') -> tuple:
        """(clamped (7,) vector, names of the clamped joints); JointCommandError when the
        vector has the wrong size or a non-finite value."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (len(COMMAND_JOINTS),):
            raise JointCommandError(f'{source}: must have {len(COMMAND_JOINTS)} values '
                                    f'{list(COMMAND_JOINTS)}, got shape {vector.shape}')
        bad = [joint for joint, value in zip(COMMAND_JOINTS, vector) if not np.isfinite(value)]
        if bad:
            raise JointCommandError(f'{source}: non-finite value for {bad}')
        clamped = np.clip(vector, self.lower, self.upper)
        return clamped, tuple(j for j, a, b in zip(COMMAND_JOINTS, vector, clamped) if a != b)

    def apply(self, current, command: dict) -> tuple:
        """(7,) targets = `current` with the commanded joints set and clamped; returns
        (targets, names of the clamped joints)."""
        targets = np.array(current, dtype=np.float64, copy=True)
        clamped = []
        for name, value in command.items():
            index = COMMAND_JOINTS.index(name)
            targets[index] = min(max(value, self.lower[index]), self.upper[index])
            if targets[index] != value:
                clamped.append(name)
        return targets, clamped
