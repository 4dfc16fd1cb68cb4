"""Leader -> follower teleoperation, ROS-free: the joint mapping and the opening ceremony.

Mapping: arm joints 1:1; gripper = follower_joint_unnormalize(leader_joint_normalize(leader
gripper motor angle)) with the calibration's gripper constants.

Phases (hardware-style opening ceremony; each step can be switched off, as in sim):
MOVE_TO_START (followers interpolate to `start_pose` over `move_to_start_seconds`) ->
WAIT_FOR_GRIPPERS (hold the start pose until both leader grippers close below
`gripper_close_threshold`) -> TELEOP (follow fresh leader states; a stale side gets no
command, so its follower holds) -> after stop(): HOLDING (repeat the last commands for
`stop_hold_seconds`) -> RELEASED (no commands).
"""
import enum
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.calibration import GripperConstants
from cosmos_policy_ros.names import ARM_JOINTS, SIDES

START_POSE = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0)   # ALOHA's start arm pose [rad]


class Phase(enum.Enum):
    MOVE_TO_START = 'move_to_start'
    WAIT_FOR_GRIPPERS = 'wait_for_grippers'
    TELEOP = 'teleop'
    HOLDING = 'holding'
    RELEASED = 'released'


@dataclass(frozen=True)
class TeleopConfig:
    max_leader_age: float = 0.1          # s; older leader states are not followed
    move_to_start_seconds: float = 0.0   # 0: skip the move to the start pose
    wait_for_grippers: bool = False      # wait for both leader grippers closed before teleop
    gripper_close_threshold: float = 0.2  # normalised leader opening that counts as closed
    stop_hold_seconds: float = 1.0       # hold the last command this long after stop()
    start_pose: tuple = START_POSE

    def __post_init__(self):
        if not self.max_leader_age > 0:
            raise ValueError(f'TeleopConfig.max_leader_age must be > 0 s, got '
                             f'{self.max_leader_age}')
        for name in ('move_to_start_seconds', 'stop_hold_seconds'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'TeleopConfig.{name} must be >= 0 s, got '
                                 f'{getattr(self, name)}')
        if not 0.0 <= self.gripper_close_threshold <= 1.0:
            raise ValueError('TeleopConfig.gripper_close_threshold is a normalised opening in '
                             f'[0, 1], got {self.gripper_close_threshold}')
        if len(self.start_pose) != len(ARM_JOINTS) or not np.all(np.isfinite(self.start_pose)):
            raise ValueError(f'TeleopConfig.start_pose needs {len(ARM_JOINTS)} finite angles '
                             f'[rad] ({list(ARM_JOINTS)}), got {self.start_pose}')


def leader_to_follower(leader: np.ndarray, gripper: GripperConstants) -> np.ndarray:
    """(7,) leader [arm, gripper motor angle] -> (7,) follower command."""
    command = np.array(leader, dtype=np.float64, copy=True)
    command[len(ARM_JOINTS)] = gripper.leader_to_follower_joint(leader[len(ARM_JOINTS)])
    return command


class Teleop:
    """The phase machine. `update` gets the newest leader/follower vectors with their ages."""

    def __init__(self, config: TeleopConfig, gripper: GripperConstants):
        self.config = config
        self.gripper = gripper
        self.phase = Phase.MOVE_TO_START if config.move_to_start_seconds > 0 else (
            Phase.WAIT_FOR_GRIPPERS if config.wait_for_grippers else Phase.TELEOP)
        self._phase_start: float | None = None
        self._move_from: dict = {}
        self._last: dict = {}
        self.stale_sides: list = []

    def stop(self) -> None:
        """Safe stop: hold the last commands, then release."""
        if self.phase not in (Phase.HOLDING, Phase.RELEASED):
            self._enter(Phase.HOLDING, None)

    def _enter(self, phase: Phase, now: float | None) -> None:
        self.phase, self._phase_start = phase, now

    def _start_command(self, side: str, follower) -> np.ndarray:
        gripper = follower[len(ARM_JOINTS)] if follower is not None else \
            self.gripper.follower_joint_open
        return np.append(self.config.start_pose, gripper)

    def update(self, now: float, leaders: dict, followers: dict) -> dict:
        """leaders/followers: side -> ((7,) vector, age [s]) or None. Returns side -> (7,)."""
        if self._phase_start is None:
            self._phase_start = now
        fresh = {side: value[0] for side, value in leaders.items()
                 if value is not None and value[1] <= self.config.max_leader_age}
        self.stale_sides = [side for side in SIDES if side not in fresh]
        elapsed = now - self._phase_start
        commands = {}
        if self.phase is Phase.MOVE_TO_START:
            follower_now = {s: (v[0] if v is not None else None) for s, v in followers.items()}
            if not self._move_from:
                if any(follower_now.get(side) is None for side in SIDES):
                    return {}                  # wait until the followers report a position
                self._move_from = {side: np.array(follower_now[side]) for side in SIDES}
                self._phase_start, elapsed = now, 0.0
            fraction = min(1.0, elapsed / self.config.move_to_start_seconds)
            for side in SIDES:
                start = self._start_command(side, self._move_from[side])
                commands[side] = self._move_from[side] + fraction * (start - self._move_from[side])
            if fraction >= 1.0:
                self._enter(Phase.WAIT_FOR_GRIPPERS if self.config.wait_for_grippers
                            else Phase.TELEOP, now)
        elif self.phase is Phase.WAIT_FOR_GRIPPERS:
            for side in SIDES:
                commands[side] = self._start_command(side, self._move_from.get(side))
            closed = [side for side, leader in fresh.items()
                      if self.gripper.leader_joint_normalize(leader[len(ARM_JOINTS)])
                      < self.config.gripper_close_threshold]
            if len(closed) == len(SIDES):
                self._enter(Phase.TELEOP, now)
        elif self.phase is Phase.TELEOP:
            commands = {side: leader_to_follower(leader, self.gripper)
                        for side, leader in fresh.items()}
        elif self.phase is Phase.HOLDING:
            commands = dict(self._last)
            if elapsed >= self.config.stop_hold_seconds:
                self._enter(Phase.RELEASED, now)
                commands = {}
        self._last.update(commands)
        return commands
