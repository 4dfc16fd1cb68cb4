"""Robot units (policy vectors) <-> command units (what the arm command interface takes).

Robot units follow the ALOHA convention: arm joints in rad, grippers normalised (0 closed,
1 open). Commands carry the follower gripper MOTOR angle; the mapping is the calibration's
gripper constants (cosmos_policy_ros.calibration), never a local copy.
"""
import numpy as np

from cosmos_policy_ros.calibration import GripperConstants
from cosmos_policy_ros.control.safety import GRIPPER_INDICES


def robot_to_command(vectors, gripper: GripperConstants) -> np.ndarray:
    """(..., 14) robot units -> command units (gripper normalised -> follower motor angle)."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    for index in GRIPPER_INDICES:
        out[..., index] = gripper.follower_joint_unnormalize(out[..., index])
    return out


def command_to_robot(vectors, gripper: GripperConstants) -> np.ndarray:
    """(..., 14) command units -> robot units (follower motor angle -> normalised)."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    for index in GRIPPER_INDICES:
        out[..., index] = gripper.follower_joint_normalize(out[..., index])
    return out
