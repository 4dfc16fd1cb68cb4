"""Forward kinematics of a URDF (revolute, prismatic and fixed joints), batched, ROS-free.

`Kinematics.from_urdf(text)` reads the joint tree; `link_poses({joint: (B,) positions})` gives
every link's (B, 4, 4) pose in the root frame. `ee_paths(chunk)` turns 14-d action chunks
(names.VECTOR_NAMES order) into the end-effector path of each arm, for the chunk preview.
"""
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.names import ARM_JOINTS, FOLLOWERS, STATE_DIM
from cosmos_policy_ros.robot.description import EE_LINK, joint_name, urdf_path


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF rpy (fixed axes x, y, z) -> 3x3 rotation Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(B,) angles about a unit axis -> (B, 3, 3) rotations (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    kind: str                 # revolute | continuous | prismatic | fixed
    parent: str
    child: str
    origin: np.ndarray        # (4, 4)
    axis: np.ndarray          # (3,) unit


def _parse_joint(element) -> UrdfJoint:
    name = element.get('name')
    kind = element.get('type')
    if kind not in ('revolute', 'continuous', 'prismatic', 'fixed'):
        raise ValueError(f'URDF joint {name!r}: type {kind!r} is not supported '
                         '(revolute, continuous, prismatic, fixed)')
    origin = np.eye(4)
    found = element.find('origin')
    if found is not None:
        origin[:3, 3] = [float(v) for v in found.get('xyz', '0 0 0').split()]
        origin[:3, :3] = rpy_matrix(*[float(v) for v in found.get('rpy', '0 0 0').split()])
    axis_element = element.find('axis')
    axis = np.array([float(v) for v in axis_element.get('xyz').split()]
                    if axis_element is not None else [1.0, 0.0, 0.0])
    return UrdfJoint(name, kind, element.find('parent').get('link'),
                     element.find('child').get('link'), origin, axis / np.linalg.norm(axis))


class Kinematics:
    def __init__(self, root: str, joints: list):
        self.root = root
        self.joints = joints          # parents before children
        self.moving = tuple(j.name for j in joints if j.kind != 'fixed')

    @classmethod
    def from_urdf(cls, text: str) -> 'Kinematics':
        robot = ET.fromstring(text)
        links = [link.get('name') for link in robot.findall('link')]
        joints = [_parse_joint(j) for j in robot.findall('joint')]
        children = {j.child for j in joints}
        roots = [link for link in links if link not in children]
        if len(roots) != 1:
            raise ValueError(f'URDF must have one root link, found {roots}')
        by_parent: dict = {}
        for joint in joints:
            by_parent.setdefault(joint.parent, []).append(joint)
        ordered, frontier = [], [roots[0]]
        while frontier:
            for joint in by_parent.get(frontier.pop(), []):
                ordered.append(joint)
                frontier.append(joint.child)
        return cls(roots[0], ordered)

    def joint_transforms(self, positions: dict) -> dict:
        """{joint: (B, 4, 4) parent->child transform} for moving joints positions[name]."""
        unknown = set(positions) - set(self.moving)
        if unknown:
            raise ValueError(f'unknown joint(s) {sorted(unknown)}; known: {list(self.moving)}')
        batch = {np.shape(np.atleast_1d(v))[0] for v in positions.values()} or {1}
        if len(batch) != 1:
            raise ValueError(f'joint position batches differ in length: {sorted(batch)}')
        size = batch.pop()
        out = {}
        for joint in self.joints:
            transform = np.broadcast_to(joint.origin, (size, 4, 4)).copy()
            if joint.kind != 'fixed':
                q = np.atleast_1d(np.asarray(positions.get(joint.name, np.zeros(size)),
                                             dtype=float))
                motion = np.broadcast_to(np.eye(4), (size, 4, 4)).copy()
                if joint.kind == 'prismatic':
                    motion[:, :3, 3] = q[:, None] * joint.axis
                else:
                    motion[:, :3, :3] = axis_rotation(joint.axis, q)
                transform = transform @ motion
            out[joint.name] = transform
        return out

    def link_poses(self, positions: dict) -> dict:
        """{link: (B, 4, 4) pose in the root frame}; joints not given sit at 0."""
        transforms = self.joint_transforms(positions)
        size = next(iter(transforms.values())).shape[0] if transforms else 1
        poses = {self.root: np.broadcast_to(np.eye(4), (size, 4, 4))}
        for joint in self.joints:
            poses[joint.child] = poses[joint.parent] @ transforms[joint.name]
        return poses


def aloha_kinematics() -> Kinematics:
    """The shipped ALOHA model (urdf/aloha.urdf)."""
    return Kinematics.from_urdf(urdf_path().read_text())


def chunk_positions(chunk) -> dict:
    """(N, 14) actions in names.VECTOR_NAMES order -> {URDF arm joint: (N,)} (grippers left
    out: the preview traces the end effector, which they do not move)."""
    chunk = np.asarray(chunk, dtype=float)
    if chunk.ndim != 2 or chunk.shape[1] != STATE_DIM:
        raise ValueError(f'chunk must be (N, {STATE_DIM}), got {chunk.shape}')
    per_arm = len(ARM_JOINTS) + 1
    return {joint_name(arm, joint): chunk[:, index * per_arm + j]
            for index, arm in enumerate(FOLLOWERS) for j, joint in enumerate(ARM_JOINTS)}


def ee_paths(kinematics: Kinematics, chunk) -> dict:
    """{follower arm: (N, 3) end-effector positions [m] in the world} of an action chunk."""
    poses = kinematics.link_poses(chunk_positions(chunk))
    return {arm: poses[f'{arm}/{EE_LINK}'][:, :3, 3] for arm in FOLLOWERS}
