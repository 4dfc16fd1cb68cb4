"""The per-arm joint-position command interface, ROS-free (shared by the sim and arm drivers).

A command is (names, positions): `names` ⊆ names.COMMAND_JOINTS (6 arm joints + 'gripper'),
`positions` in rad, the gripper as the follower gripper MOTOR angle. Partial commands are
allowed. A malformed command is rejected whole (JointCommandError naming the field and the
fix); an accepted one is clamped to the calibration's joint limits and gripper range.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.calibration import Calibration
from cosmos_policy_ros.names import COMMAND_JOINTS


class JointCommandError(ValueError):
    """A joint command that must not be applied."""


def validate_command(names: Sequence[str], positions: Sequence[float],
                     source: str = 'command') -> dict:
    """Return {joint: position}; raise JointCommandError for bad names, lengths or values."""
    names = [str(name) for name in names]
    if not names:
        raise JointCommandError(f'{source}: name is empty; list the joints to move, a subset '
                                f'of {list(COMMAND_JOINTS)}')
    unknown = [name for name in names if name not in COMMAND_JOINTS]
    if unknown:
        raise JointCommandError(f'{source}: name has unknown joint(s) {unknown}; use names from '
                                f'{list(COMMAND_JOINTS)} (fingers are driven via "gripper")')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise JointCommandError(f'{source}: name repeats {duplicates}; give each joint once')
    if len(positions) != len(names):
        raise JointCommandError(f'{source}: position has {len(positions)} values but name has '
                                f'{len(names)}; give one position [rad] per name')
    values = np.asarray(positions, dtype=np.float64)
    bad = [f'{names[i]}={values[i]}' for i in np.flatnonzero(~np.isfinite(values))]
    if bad:
        raise JointCommandError(f'{source}: position has non-finite value(s) {bad}; send finite '
                                'angles in rad')
    return dict(zip(names, values.tolist()))


@dataclass(frozen=True)
class CommandLimits:
    """Lower/upper bounds in COMMAND_JOINTS order (arm limits + gripper motor range)."""
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_calibration(cls, calibration: Calibration) -> 'CommandLimits':
        arm = calibration.limits_array()
        grip_lo, grip_hi = calibration.gripper.follower_joint_range()
        return cls(lower=np.append(arm[:, 0], grip_lo), upper=np.append(arm[:, 1], grip_hi))

    def apply(self, current: np.ndarray, command: dict) -> tuple:
        """New (7,) targets = `current` with the commanded joints set and clamped.

        Returns (targets, names of the joints that were clamped).
        """
        targets = np.array(current, dtype=np.float64, copy=True)
        clamped = []
        for name, value in command.items():
            index = COMMAND_JOINTS.index(name)
            limited = min(max(value, self.lower[index]), self.upper[index])
            if limited != value:
                clamped.append(name)
            targets[index] = limited
        return targets, clamped
