"""Scripted expert for the sim tasks: end-effector waypoints -> joint trajectories, ROS-free.

The waypoint scripts follow the original ALOHA sim experts (grasp, lift, meet, hand-over for
transfer_cube; grasp peg and socket, meet, insert for insertion), timed in 50 Hz steps and a
function of the episode's initial object poses. Waypoints are poses of the mocap frames that
gym-aloha's end-effector scenes weld to the gripper links; each 50 Hz step the gripper-link
target (mocap pose composed with the weld's relative pose) is solved by damped-least-squares IK
on the joint-control scene. (Rolling the mocap scene out dynamically, as the original did,
lags and drops the cube with MuJoCo 3.) The gripper channel is the commanded normalised
opening (0 closed, 1 open).
"""
from dataclasses import dataclass

import mujoco
import numpy as np

from cosmos_policy_ros.calibration import Calibration, GripperConstants
from cosmos_policy_ros.names import ARM_JOINTS, COMMAND_JOINTS, SIDES
from cosmos_policy_ros.sim.aloha_sim import DT, START_ARM_POSE, AlohaSim, assets_dir
from cosmos_policy_ros.sim.tasks import get_task

STEPS = 400                     # 8 s at 50 Hz, as the original scripts
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def axis_angle(axis, degrees: float) -> np.ndarray:
    """Unit quaternion [w, x, y, z] rotating `degrees` about `axis`."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    half = np.radians(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis])


@dataclass(frozen=True)
class Waypoint:
    step: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float              # normalised opening: 0 closed, 1 open


def _start(side: str) -> Waypoint:
    """Placeholder for the start pose; plan() replaces it with the start pose's mocap frame."""
    return Waypoint(0, np.zeros(3), IDENTITY, 0.0)


def transfer_cube_waypoints(object_poses: dict) -> dict:
    """Right arm grasps the cube and lifts it to the meeting point; the left arm takes it."""
    box = np.asarray(object_poses['red_box'][:3])
    meet = np.array([0.0, 0.5, 0.25])
    pick = axis_angle([0, 1, 0], -60)
    handover = axis_angle([1, 0, 0], 90)
    left = [_start('left'),
            Waypoint(100, meet + [-0.1, 0, -0.02], handover, 1),   # approach meeting point
            Waypoint(260, meet + [0.02, 0, -0.02], handover, 1),   # reach the cube
            Waypoint(310, meet + [0.02, 0, -0.02], handover, 0),   # close
            Waypoint(360, meet + [-0.1, 0, -0.02], IDENTITY, 0),   # pull away
            Waypoint(400, meet + [-0.1, 0, -0.02], IDENTITY, 0)]
    right = [_start('right'),
             Waypoint(90, box + [0, 0, 0.08], pick, 1),            # above the cube
             Waypoint(130, box + [0, 0, -0.015], pick, 1),         # down
             Waypoint(170, box + [0, 0, -0.015], pick, 0),         # grasp
             Waypoint(200, meet + [0.05, 0, 0], pick, 0),          # lift towards meeting point
             Waypoint(220, meet, pick, 0),
             Waypoint(310, meet, pick, 1),                         # release to the left arm
             Waypoint(360, meet + [0.1, 0, 0], pick, 1),           # retreat
             Waypoint(400, meet + [0.1, 0, 0], pick, 1)]
    return {'left': left, 'right': right}


def insertion_waypoints(object_poses: dict) -> dict:
    """Left arm grasps the socket, right arm the peg; both meet and the peg goes in."""
    peg = np.asarray(object_poses['red_peg'][:3])
    socket = np.asarray(object_poses['blue_socket'][:3])
    meet = np.array([0.0, 0.5, 0.15])
    lift_right = 0.00715
    # The original's final offsets (±0.05 m) stop the peg's end exactly at the pin's end in
    # this model, so success hinged on grazing contact; going 1 cm deeper inserts reliably.
    insert = 0.04
    pick_left, pick_right = axis_angle([0, 1, 0], 60), axis_angle([0, 1, 0], -60)

    def arm(side, target, quat, meet_offset):
        return [_start(side),
                Waypoint(120, target + [0, 0, 0.08], quat, 1),     # above the object
                Waypoint(170, target + [0, 0, -0.03], quat, 1),    # down
                Waypoint(220, target + [0, 0, -0.03], quat, 0),    # grasp
                Waypoint(285, meet + meet_offset(0.1), quat, 0),   # approach meeting point
                Waypoint(340, meet + meet_offset(insert), quat, 0),  # insert
                Waypoint(400, meet + meet_offset(insert), quat, 0)]

    return {'left': arm('left', socket, pick_left, lambda dx: np.array([-dx, 0, 0])),
            'right': arm('right', peg, pick_right, lambda dx: np.array([dx, 0, lift_right]))}


WAYPOINTS = {'transfer_cube': transfer_cube_waypoints, 'insertion': insertion_waypoints}


def interpolate(waypoints: list, step: int) -> tuple:
    """Piecewise-linear (xyz, quat, gripper) at `step` (quaternion lerp; MuJoCo normalises)."""
    steps = [w.step for w in waypoints]
    xyz = np.array([np.interp(step, steps, [w.xyz[i] for w in waypoints]) for i in range(3)])
    quat = np.array([np.interp(step, steps, [w.quat[i] for w in waypoints]) for i in range(4)])
    return xyz, quat, float(np.interp(step, steps, [w.gripper for w in waypoints]))


@dataclass(frozen=True)
class ExpertTrajectory:
    """Joint targets per 50 Hz step: arm (T, 6) and normalised gripper opening (T,) per side."""
    arm: dict
    gripper: dict
    dt: float = DT

    def __post_init__(self):
        for side in SIDES:
            if self.arm[side].shape != (len(self), len(ARM_JOINTS)):
                raise ValueError(f'ExpertTrajectory.arm[{side!r}]: shape '
                                 f'{self.arm[side].shape}, expected ({len(self)}, 6)')

    def __len__(self) -> int:
        return len(self.gripper['left'])

    @property
    def duration(self) -> float:
        return len(self) * self.dt

    def step_at(self, seconds: float) -> int:
        """Step index at `seconds` from the trajectory start (held at the ends)."""
        return int(np.clip(np.floor(seconds / self.dt + 1e-9), 0, len(self) - 1))

    def leader_position(self, side: str, step: int, gripper: GripperConstants) -> np.ndarray:
        """(9,) leader joint_states position: arm, gripper motor angle, fingers [m]."""
        opening = self.gripper[side][step]
        finger = float(gripper.leader_position_unnormalize(opening))
        return np.concatenate([self.arm[side][step],
                               [gripper.leader_joint_unnormalize(opening), finger, -finger]])

    def follower_command(self, side: str, step: int, gripper: GripperConstants) -> np.ndarray:
        """(7,) follower command in COMMAND_JOINTS order (what teleop produces)."""
        opening = self.gripper[side][step]
        return np.append(self.arm[side][step], gripper.follower_joint_unnormalize(opening))


# forearm_roll and wrist_rotate turn about nearly parallel axes while the wrist is straight: an
# unweighted solver can spin them by +-pi in opposite directions (three equivalent postures,
# chosen chaotically by the object's position), which makes demonstrations multimodal. The
# solver therefore moves them 4x more reluctantly than the other joints and, in the null space
# of the task, pulls them back to 0.
JOINT_WEIGHTS = np.array([1.0, 1.0, 1.0, 4.0, 1.0, 4.0])
# Null-space posture: roll and rotate towards 0, the wrist towards bending down (the natural
# branch for the downward grasps; from the start pose's -0.3 rad the solver could otherwise
# settle on the mirrored branch with roll and rotate at +-pi).
POSTURE = np.array([0.0, 0.0, 0.0, 0.0, 0.6, 0.0])
POSTURE_GAIN = np.array([0.0, 0.0, 0.0, 0.1, 0.05, 0.1])
# Joint targets change by at most this per 50 Hz step (2.5 rad/s, below the motors' 3.14 rad/s
# limit), so the followers can track the script and recorded actions stay smooth.
MAX_JOINT_STEP = 0.05


class _ArmIK:
    """Weighted damped-least-squares IK of one arm's gripper link (kinematics only), with a
    null-space pull towards START_ARM_POSE."""

    def __init__(self, model, side: str):
        self.model = model
        self.data = mujoco.MjData(model)
        self.body = model.body(f'vx300s_{side}/gripper_link').id
        joints = [model.joint(f'vx300s_{side}/{j}') for j in ARM_JOINTS]
        self.qpos = np.array([j.qposadr[0] for j in joints])
        self.dofs = np.array([j.dofadr[0] for j in joints])
        self.range = np.array([j.range for j in joints])

    def pose(self, q) -> tuple:
        self.data.qpos[self.qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)       # Jacobians need cdof/subtree com
        return self.data.xpos[self.body].copy(), self.data.xquat[self.body].copy()

    def solve(self, q, xyz, quat, iterations: int = 20, damping: float = 1e-3,
              refine: int = 10) -> np.ndarray:
        """`iterations` steps with the posture pull, then up to `refine` plain steps: the
        damped null-space term leaks a little into the task, the refinement removes it."""
        q = np.array(q, dtype=np.float64)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        inverse, rotation = np.zeros(4), np.zeros(3)
        for iteration in range(iterations + refine):
            posture = POSTURE_GAIN if iteration < iterations else 0.0 * POSTURE_GAIN
            position, current = self.pose(q)
            mujoco.mju_negQuat(inverse, current)
            error_quat = np.zeros(4)
            mujoco.mju_mulQuat(error_quat, quat, inverse)
            mujoco.mju_quat2Vel(rotation, error_quat, 1.0)
            error = np.concatenate([xyz - position, rotation])
            if np.linalg.norm(error) < 1e-4 and iteration >= iterations:
                break
            mujoco.mj_jacBody(self.model, self.data, jacp, jacr, self.body)
            jac = np.vstack([jacp[:, self.dofs], jacr[:, self.dofs]])
            weighted_t = jac.T / JOINT_WEIGHTS[:, None]              # W^-1 J^T
            pseudo = weighted_t @ np.linalg.inv(jac @ weighted_t + damping * np.eye(6))
            null = np.eye(len(q)) - pseudo @ jac
            step = pseudo @ error + null @ (posture * (POSTURE - q))
            q = np.clip(q + step, self.range[:, 0], self.range[:, 1])
        return q


def _weld_offsets(task: str) -> dict:
    """side -> (relpos, relquat) of the gripper link relative to its mocap body.

    gym-aloha's end-effector scene welds each gripper link to a mocap body; the waypoints
    are poses of that mocap frame, so the gripper link target is mocap ∘ relpose.
    """
    model = mujoco.MjModel.from_xml_path(
        str(assets_dir() / f'bimanual_viperx_end_effector_{task}.xml'))
    offsets = {}
    for i in range(model.neq):
        side = 'left' if model.body(int(model.eq_obj1id[i])).name == 'mocap_left' else 'right'
        offsets[side] = (model.eq_data[i, 3:6].copy(), model.eq_data[i, 6:10].copy())
    return offsets


def _start_waypoint(ik: _ArmIK, relpos, relquat) -> Waypoint:
    """The mocap pose that puts the gripper link exactly where START_ARM_POSE has it."""
    position, quat = ik.pose(START_ARM_POSE)
    mocap_quat, inverse, offset = np.zeros(4), np.zeros(4), np.zeros(3)
    mujoco.mju_negQuat(inverse, relquat)
    mujoco.mju_mulQuat(mocap_quat, quat, inverse)
    mujoco.mju_rotVecQuat(offset, relpos, mocap_quat)
    return Waypoint(0, position - offset, mocap_quat, 0.0)


def plan(task: str, object_poses: dict, calibration: Calibration,
         steps: int = STEPS) -> ExpertTrajectory:
    """Joint targets that follow the task's waypoints: entry k solves IK for step k.

    Starts from START_ARM_POSE (the first waypoint is the start pose's own gripper frame).
    """
    task = get_task(task).name
    model = mujoco.MjModel.from_xml_path(str(assets_dir() / get_task(task).scene_xml))
    waypoints = WAYPOINTS[task](object_poses)
    arm, opening = {}, {}
    for side, (relpos, relquat) in _weld_offsets(task).items():
        ik = _ArmIK(model, side)
        script = [_start_waypoint(ik, relpos, relquat)] + waypoints[side][1:]
        q = np.array(START_ARM_POSE)
        arm[side] = np.empty((steps, len(ARM_JOINTS)))
        opening[side] = np.empty(steps)
        for step in range(steps):
            xyz, quat, grip = interpolate(script, step)
            quat = quat / np.linalg.norm(quat)
            target_quat, offset = np.zeros(4), np.zeros(3)
            mujoco.mju_mulQuat(target_quat, quat, relquat)
            mujoco.mju_rotVecQuat(offset, relpos, quat)
            solved = ik.solve(q, xyz + offset, target_quat)
            q = q + np.clip(solved - q, -MAX_JOINT_STEP, MAX_JOINT_STEP)
            arm[side][step], opening[side][step] = q, grip
    return ExpertTrajectory(arm=arm, gripper=opening)


@dataclass(frozen=True)
class ExpertResult:
    task: str
    seed: int
    success: bool
    max_reward: int


def run_episode(task: str, seed: int, calibration: Calibration) -> ExpertResult:
    """Plan for seed's layout, replay the follower commands in AlohaSim (no rendering)."""
    sim = AlohaSim(task, calibration)
    info = sim.reset(seed)
    trajectory = plan(task, info.object_poses, calibration)
    for step in range(len(trajectory)):
        for side in SIDES:
            sim.command(side, COMMAND_JOINTS,
                        trajectory.follower_command(side, step, calibration.gripper))
        sim.step()
    return ExpertResult(task, seed, sim.success(), sim.max_reward)
