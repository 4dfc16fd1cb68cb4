"""Robot units (policy vectors) <-> command units (what the arm command interface takes).

Robot units follow the ALOHA convention: arm joints in rad, grippers normalised (0 closed,
1 open). Commands carry the follower gripper MOTOR angle; the mapping is the calibration's
gripper constants (cosmos_policy_ros.calibration), never a local copy.
"""
import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import GripperConstants


def robot_to_command(vectors, gripper: GripperConstants) -> np.ndarray:
    """(..., 14) robot units -> command units (gripper normalised -> follower motor angle)."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    for index in names.GRIPPER_INDICES:
        out[..., index] = gripper.follower_joint_unnormalize(out[..., index])
    return out


def command_to_robot(vectors, gripper: GripperConstants) -> np.ndarray:
    """(..., 14) command units -> robot units (follower motor angle -> normalised)."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    for index in names.GRIPPER_INDICES:
        out[..., index] = gripper.follower_joint_normalize(out[..., index])
    return out


def proprio_from_positions(positions: dict, gripper: GripperConstants) -> np.ndarray:
    """The policy's 14-d proprio from the followers' joint_states positions
    ({follower arm: values in names.JOINT_STATE_NAMES order}): arm joints [rad] and the gripper
    normalised from the left finger position (the ALOHA observation convention)."""
    finger = names.JOINT_STATE_NAMES.index('left_finger')
    vector = []
    for arm in names.FOLLOWERS:
        position = np.asarray(positions[arm], dtype=np.float64)
        vector += list(position[:len(names.ARM_JOINTS)])
        vector.append(float(gripper.follower_position_normalize(position[finger])))
    return np.asarray(vector, dtype=np.float64)
