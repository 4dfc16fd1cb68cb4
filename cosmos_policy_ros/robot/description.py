"""URDF of the stationary ALOHA: the two ViperX 300 6DOF followers as mounted in the sim.

Joint origins, axes and ranges are those of gym-aloha's MJCF (vx300s_left.xml/vx300s_right.xml);
tests/test_robot_model.py checks the forward kinematics of this URDF against MuJoCo's body poses.
Visuals are primitives (boxes and cylinders along each link), not the sim's meshes: the meshes
would have to be shipped and found by `package://` URIs, and primitives show the arm pose and
the end-effector paths an operator needs.

Frame names follow Interbotix (`follower_left/base_link`, ...); joint names are the arm's
JointState names under the same prefix (`follower_left/waist`), so one URDF holds both arms.
`urdf/aloha.urdf` is this module's output (`python -m cosmos_policy_ros.robot.description`).
"""
import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from cosmos_policy_ros.names import ARM_JOINTS, FOLLOWERS

ROOT_LINK = 'world'
EE_LINK = 'ee_link'          # between the fingers: the point the chunk preview traces
# Follower base poses in the world (MJCF body `vx300s_<side>`): xyz [m], yaw [rad].
MOUNTS = {'follower_left': ((-0.469, 0.5, 0.0), 0.0),
          'follower_right': ((0.469, 0.5, 0.0), 3.1416)}
FINGERS = ('left_finger', 'right_finger')
ARM_VELOCITY_LIMIT = 3.14    # rad/s, the arm motors' Velocity_Limit (sim.aloha_sim too)


@dataclass(frozen=True)
class Joint:
    name: str                # JointState name ('' = fixed)
    parent: str
    child: str
    xyz: tuple
    axis: tuple = (0.0, 0.0, 1.0)
    limits: tuple = (0.0, 0.0)
    prismatic: bool = False


# One ViperX 300s in MJCF order (each MJCF joint sits at its child body's origin).
ARM_CHAIN = (
    Joint('waist', 'base_link', 'shoulder_link', (0.0, 0.0, 0.079), (0, 0, 1),
          (-3.14158, 3.14158)),
    Joint('shoulder', 'shoulder_link', 'upper_arm_link', (0.0, 0.0, 0.04805), (0, 1, 0),
          (-1.85005, 1.25664)),
    Joint('elbow', 'upper_arm_link', 'upper_forearm_link', (0.05955, 0.0, 0.3), (0, 1, 0),
          (-1.76278, 1.6057)),
    Joint('forearm_roll', 'upper_forearm_link', 'lower_forearm_link', (0.2, 0.0, 0.0),
          (1, 0, 0), (-3.14158, 3.14158)),
    Joint('wrist_angle', 'lower_forearm_link', 'wrist_link', (0.1, 0.0, 0.0), (0, 1, 0),
          (-1.8675, 2.23402)),
    Joint('wrist_rotate', 'wrist_link', 'gripper_link', (0.069744, 0.0, 0.0), (1, 0, 0),
          (-3.14158, 3.14158)),
    Joint('', 'gripper_link', 'gripper_prop_link', (0.0485, 0.0, 0.0)),
    Joint('left_finger', 'gripper_link', 'left_finger_link', (0.0687, 0.0, 0.0), (0, 1, 0),
          (0.021, 0.057), prismatic=True),
    Joint('right_finger', 'gripper_link', 'right_finger_link', (0.0687, 0.0, 0.0), (0, 1, 0),
          (-0.057, -0.021), prismatic=True),
    Joint('', 'gripper_link', EE_LINK, (0.0687, 0.0, 0.0)),
)

# Visual primitives per link: ('box', size, center) or ('segment', end, radius) from the origin.
VISUALS = {
    'base_link': ('box', (0.12, 0.12, 0.07), (0.0, 0.0, 0.035)),
    'shoulder_link': ('segment', (0.0, 0.0, 0.048), 0.035),
    'upper_arm_link': ('segment', (0.05955, 0.0, 0.3), 0.025),
    'upper_forearm_link': ('segment', (0.2, 0.0, 0.0), 0.022),
    'lower_forearm_link': ('segment', (0.1, 0.0, 0.0), 0.02),
    'wrist_link': ('segment', (0.069744, 0.0, 0.0), 0.02),
    'gripper_link': ('box', (0.05, 0.09, 0.04), (0.0, 0.0, 0.0)),
    'gripper_prop_link': ('box', (0.01, 0.03, 0.03), (0.0, 0.0, 0.0)),
    'left_finger_link': ('box', (0.06, 0.008, 0.02), (0.03, 0.0, 0.0)),
    'right_finger_link': ('box', (0.06, 0.008, 0.02), (0.03, 0.0, 0.0)),
}
COLORS = {'follower_left': '0.25 0.45 0.85 1', 'follower_right': '0.85 0.45 0.25 1'}


def joint_name(arm: str, joint: str) -> str:
    """'follower_left', 'waist' -> 'follower_left/waist' (the URDF name of a JointState name)."""
    return f'{arm}/{joint}'


def arm_joint_names(arm: str) -> tuple:
    """URDF names of an arm's moving joints, in names.JOINT_STATE_NAMES order (no gripper)."""
    return tuple(joint_name(arm, j) for j in ARM_JOINTS + FINGERS)


def _num(values) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _segment_visual(end, radius: float) -> str:
    """A cylinder from the link origin to `end` (URDF cylinders lie along their z axis)."""
    length = math.sqrt(sum(c * c for c in end))
    pitch = math.atan2(math.hypot(end[0], end[1]), end[2])
    yaw = math.atan2(end[1], end[0])
    center = [c / 2 for c in end]
    return (f'<origin xyz="{_num(center)}" rpy="0 {pitch:.6g} {yaw:.6g}"/>'
            f'<geometry><cylinder radius="{radius:.6g}" length="{length:.6g}"/></geometry>')


def _link(name: str, visual: tuple | None, color: str) -> str:
    if visual is None:
        return f'  <link name={quoteattr(name)}/>'
    kind, first, second = visual
    if kind == 'box':
        body = (f'<origin xyz="{_num(second)}" rpy="0 0 0"/>'
                f'<geometry><box size="{_num(first)}"/></geometry>')
    else:
        body = _segment_visual(first, second)
    return (f'  <link name={quoteattr(name)}>\n    <visual>{body}'
            f'<material name={quoteattr(name + "/material")}><color rgba="{color}"/></material>'
            f'</visual>\n  </link>')


def _joint(name: str, kind: str, parent: str, child: str, xyz, rpy=(0, 0, 0), axis=None,
           limits=None) -> str:
    lines = [f'  <joint name={quoteattr(name)} type="{kind}">',
             f'    <parent link={quoteattr(parent)}/><child link={quoteattr(child)}/>',
             f'    <origin xyz="{_num(xyz)}" rpy="{_num(rpy)}"/>']
    if axis is not None:
        lines.append(f'    <axis xyz="{_num(axis)}"/>')
    if limits is not None:
        velocity = 0.1 if kind == 'prismatic' else ARM_VELOCITY_LIMIT
        lines.append(f'    <limit lower="{limits[0]:.6g}" upper="{limits[1]:.6g}" '
                     f'effort="10" velocity="{velocity:.6g}"/>')
    lines.append('  </joint>')
    return '\n'.join(lines)


def aloha_urdf() -> str:
    """The URDF text of both followers on their mounts under `world`."""
    parts = ['<?xml version="1.0"?>',
             '<!-- Generated by cosmos_policy_ros/robot/description.py; do not edit. -->',
             '<robot name="aloha_stationary">', f'  <link name="{ROOT_LINK}"/>']
    for arm in FOLLOWERS:
        color = COLORS[arm]
        parts.append(_link(f'{arm}/base_link', VISUALS['base_link'], color))
        xyz, yaw = MOUNTS[arm]
        parts.append(_joint(f'{arm}/mount', 'fixed', ROOT_LINK, f'{arm}/base_link', xyz,
                            (0, 0, yaw)))
        for joint in ARM_CHAIN:
            child = f'{arm}/{joint.child}'
            parts.append(_link(child, VISUALS.get(joint.child), color))
            parent = f'{arm}/{joint.parent}'
            if joint.name:
                kind = 'prismatic' if joint.prismatic else 'revolute'
                parts.append(_joint(joint_name(arm, joint.name), kind, parent, child,
                                    joint.xyz, axis=joint.axis, limits=joint.limits))
            else:
                parts.append(_joint(f'{child}_fixed', 'fixed', parent, child, joint.xyz))
    parts.append('</robot>')
    return '\n'.join(parts) + '\n'


def urdf_path() -> Path:
    """The shipped URDF: the source tree's urdf/ or the installed share/ copy."""
    from cosmos_policy_ros.paths import share_path
    return share_path('urdf', 'aloha.urdf')


if __name__ == '__main__':
    print(aloha_urdf(), end='')
