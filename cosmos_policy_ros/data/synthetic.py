"""Synthetic episode bags with known stamps and values (tests and benchmarks; ROS-free).

Messages are serialised with the rosbags typestore (the CDR a ROS 2 publisher sends), so the
exporter and the bag readers are checked against values chosen here, not against themselves.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from cosmos_policy_ros import names
from cosmos_policy_ros.data.bag import BagWriter
from cosmos_policy_ros.data.recorder import episode_topics

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
JOINT_STATE = 'sensor_msgs/msg/JointState'
IMAGE = 'sensor_msgs/msg/Image'
BOOL = 'std_msgs/msg/Bool'
STRING = 'std_msgs/msg/String'


def serialize(msg, typename: str) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, typename))


def _header(ns: int, frame: str = ''):
    types = TYPESTORE.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(ns // 10**9), nanosec=int(ns % 10**9))
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame)


def joint_state(ns: int, joint_names, position, velocity=(), effort=()) -> bytes:
    msg = TYPESTORE.types[JOINT_STATE](
        header=_header(ns), name=list(joint_names),
        position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity, dtype=np.float64),
        effort=np.asarray(effort, dtype=np.float64))
    return serialize(msg, JOINT_STATE)


def image(ns: int, pixels: np.ndarray, encoding: str = 'rgb8', frame: str = 'cam') -> bytes:
    height, width = pixels.shape[:2]
    msg = TYPESTORE.types[IMAGE](header=_header(ns, frame), height=height, width=width,
                                 encoding=encoding, is_bigendian=0, step=width * 3,
                                 data=np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1))
    return serialize(msg, IMAGE)


def boolean(value: bool) -> bytes:
    return serialize(TYPESTORE.types[BOOL](data=bool(value)), BOOL)


def string(text: str) -> bytes:
    return serialize(TYPESTORE.types[STRING](data=text), STRING)


@dataclass(frozen=True)
class SyntheticEpisode:
    """Known signals: joint j of arm a at time t (s) = a_offset + 0.1 j + t; fingers ramp;
    camera frame k is filled with the value k (mod 256); success turns true at success_s."""
    seconds: float = 2.0
    joint_hz: float = 50.0
    command_hz: float = 25.0
    camera_hz: float = 10.0
    start_ns: int = 1_000_000_000
    camera_delay_ns: int = 0         # cameras start this much later than the joints
    success_s: float = 1.5
    cameras: tuple = names.CAMERAS
    task: str = 'transfer_cube'
    calibration: str = 'aloha_sim'

    @staticmethod
    def arm_offset(arm: str) -> float:
        return float(names.ARMS.index(arm))

    def arm_positions(self, arm: str, t: float) -> np.ndarray:
        return self.arm_offset(arm) + 0.1 * np.arange(6) + t

    def finger(self, t: float) -> float:
        return 0.02 + 0.01 * t       # m, inside the aloha1_ros1 follower range

    def gripper_angle(self, t: float) -> float:
        return -0.5 + 0.2 * t        # rad, leader motor angle

    def write(self, bag_dir: str | Path, bad_camera_encoding: str = '') -> Path:
        writer = BagWriter(bag_dir, episode_topics(self.cameras),
                           custom_data={'task': self.task, 'calibration': self.calibration,
                                        'sim': 'true'})
        messages = []
        for arm in names.ARMS:
            for k in range(int(self.seconds * self.joint_hz) + 1):
                t = k / self.joint_hz
                ns = self.start_ns + int(round(t * 1e9))
                position = np.concatenate([self.arm_positions(arm, t), [self.gripper_angle(t),
                                           self.finger(t), -self.finger(t)]])
                velocity = np.concatenate([np.ones(6), [0.2, 0.01, -0.01]])
                effort = np.arange(9) * 0.5
                messages.append((ns, names.joint_states_topic(arm), joint_state(
                    ns, names.JOINT_STATE_NAMES, position, velocity, effort)))
        for arm in names.FOLLOWERS:
            for k in range(int(self.seconds * self.command_hz) + 1):
                t = k / self.command_hz
                ns = self.start_ns + int(round(t * 1e9))
                command = np.concatenate([self.arm_positions(arm, t) + 0.5, [0.3]])
                messages.append((ns, names.joint_command_topic(arm), joint_state(
                    ns, names.COMMAND_JOINTS, command)))
        for cam in self.cameras:
            frames = int((self.seconds * 1e9 - self.camera_delay_ns) / 1e9 * self.camera_hz) + 1
            for k in range(frames):
                ns = self.start_ns + self.camera_delay_ns + int(round(k / self.camera_hz * 1e9))
                pixels = np.full((names.IMAGE_HEIGHT, names.IMAGE_WIDTH, 3), k % 256, np.uint8)
                pixels[0, 0] = (1, 2, 3)         # tells rgb8 and bgr8 apart
                encoding = bad_camera_encoding if (bad_camera_encoding and k == 1) else 'rgb8'
                messages.append((ns, names.camera_topic(cam), image(ns, pixels, encoding, cam)))
        messages.append((self.start_ns, names.EPISODE_TOPIC, string(json.dumps(
            {'episode': 0, 'task': self.task, 'seed': 7, 'state': 'running'}))))
        for t in np.arange(0.0, self.seconds + 1e-9, 0.25):
            ns = self.start_ns + int(round(t * 1e9))
            messages.append((ns, names.SUCCESS_TOPIC, boolean(t >= self.success_s)))
        for ns, topic, data in sorted(messages, key=lambda m: m[0]):
            writer.write(topic, data, ns)
        return writer.close()
