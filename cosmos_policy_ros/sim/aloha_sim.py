"""Bimanual ViperX ALOHA in MuJoCo (gym-aloha's joint-position scenes), ROS-free.

The initial state is owned here: arms at gym-aloha's START_ARM_POSE, objects sampled from
`np.random.RandomState(seed)` in gym-aloha's ranges (so seed N gives gym-aloha's layout N), and
the reward rules are gym-aloha's (max 4 = success), checked on unordered contact pairs.
Time advances DT = 0.02 s per step (10 physics substeps of 2 ms, as gym-aloha).

Rendering uses one mujoco.Renderer created lazily by the first `render` call: an EGL context
belongs to the thread that made it, so call `render` from one thread only.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from cosmos_policy_ros.calibration import Calibration
from cosmos_policy_ros.joint_command import JointLimits, parse_command
from cosmos_policy_ros.names import (
    ARM_JOINTS,
    CAMERAS,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    JOINT_STATE_NAMES,
    SIDES,
)
from cosmos_policy_ros.sim.tasks import get_task

DT = 0.02
# Real ALOHA arm motors run with Velocity_Limit 131 (x 0.229 rev/min = 3.14 rad/s): a far target
# is approached at that speed, not in one physics step. The sim does the same, so a stale or
# distant command cannot fling an arm into the table.
MAX_JOINT_VELOCITY = 3.14
START_ARM_POSE = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0)
START_FINGER = 0.02239           # left finger position [m] at reset (gym-aloha)
MAX_REWARD = 4
# names.CAMERAS -> camera names in gym-aloha's XML.
MUJOCO_CAMERAS = {'cam_high': 'top', 'cam_left_wrist': 'left_wrist',
                  'cam_right_wrist': 'right_wrist'}
# Free-joint objects per task, in qpos order after the 16 arm joints.
TASK_OBJECTS = {'transfer_cube': ('red_box',), 'insertion': ('red_peg', 'blue_socket')}
_OBJECT_RANGES = {   # x, y ranges [m]; z = 0.05, identity orientation (gym-aloha utils)
    'red_box': ((0.0, 0.2), (0.4, 0.6)),
    'red_peg': ((0.1, 0.2), (0.4, 0.6)),
    'blue_socket': ((-0.2, -0.1), (0.4, 0.6)),
}
_SOCKET_GEOMS = ('socket-1', 'socket-2', 'socket-3', 'socket-4')


def assets_dir() -> Path:
    from gym_aloha.constants import (
        ASSETS_DIR,  # only the asset path; no gym-aloha globals
    )
    return Path(ASSETS_DIR)


def sample_object_poses(task: str, seed: int) -> dict:
    """{object: (7,) [x, y, z, qw, qx, qy, qz]} drawn like gym-aloha's sample_*_pose(seed)."""
    rng = np.random.RandomState(seed)
    poses = {}
    for name in TASK_OBJECTS[get_task(task).name]:
        (x_lo, x_hi), (y_lo, y_hi) = _OBJECT_RANGES[name]
        position = rng.uniform([x_lo, y_lo, 0.05], [x_hi, y_hi, 0.05])
        poses[name] = np.concatenate([position, [1.0, 0.0, 0.0, 0.0]])
    return poses


def _make_renderer(model, image_size) -> mujoco.Renderer:
    """An offscreen renderer; without a display MuJoCo needs MUJOCO_GL=egl (or osmesa), and
    its own error does not say so."""
    try:
        return mujoco.Renderer(model, *image_size)
    except mujoco.FatalError as exc:
        if 'OpenGL' not in str(exc):
            raise
        raise RuntimeError(
            f'MuJoCo could not create an OpenGL context to render the cameras ({exc}). On a '
            'machine without a display set MUJOCO_GL=egl (GPU or Mesa EGL) or '
            'MUJOCO_GL=osmesa before starting (MUJOCO_GL is '
            f'{os.environ.get("MUJOCO_GL", "unset")}).') from exc


@dataclass(frozen=True)
class EpisodeInfo:
    task: str
    seed: int
    object_poses: dict          # object -> (7,) pose at reset

    def as_dict(self) -> dict:
        return {'task': self.task, 'seed': self.seed,
                'object_poses': {k: [float(v) for v in pose]
                                 for k, pose in self.object_poses.items()}}


@dataclass(frozen=True)
class ArmState:
    """One arm in names.JOINT_STATE_NAMES order (gripper = follower motor angle)."""
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class AlohaSim:
    def __init__(self, task: str, calibration: Calibration,
                 image_size: tuple = (IMAGE_HEIGHT, IMAGE_WIDTH),
                 max_joint_velocity: float = MAX_JOINT_VELOCITY):
        if not max_joint_velocity > 0:
            raise ValueError(f'max_joint_velocity must be > 0 rad/s, got {max_joint_velocity}')
        self.max_joint_step = max_joint_velocity * DT
        self.task = get_task(task)
        self.calibration = calibration
        self.gripper = calibration.gripper
        self.limits = JointLimits.from_calibration(calibration)
        self.image_size = tuple(image_size)
        self.model = mujoco.MjModel.from_xml_path(str(assets_dir() / self.task.scene_xml))
        self.data = mujoco.MjData(self.model)
        self.substeps = round(DT / self.model.opt.timestep)
        self._renderer = None
        model = self.model
        finger_names = ('left_finger', 'right_finger')
        self._qpos = {}
        self._dof = {}
        self._actuator = {}
        actuator_of_joint = {int(model.actuator_trnid[i, 0]): i for i in range(model.nu)}
        for side in SIDES:
            joints = [model.joint(f'vx300s_{side}/{name}') for name in ARM_JOINTS + finger_names]
            self._qpos[side] = np.array([j.qposadr[0] for j in joints])
            self._dof[side] = np.array([j.dofadr[0] for j in joints])
            self._actuator[side] = np.array([actuator_of_joint[j.id] for j in joints])
        self._object_qpos = {name: int(model.joint(f'{name}_joint').qposadr[0])
                             for name in TASK_OBJECTS[self.task.name]}
        self._geom_names = [model.geom(i).name for i in range(model.ngeom)]
        self._targets = {}
        self._arm_ctrl = {}      # velocity-limited arm setpoints actually sent to MuJoCo
        self.episode: EpisodeInfo | None = None
        self.reward = 0
        self.max_reward = 0

    # -- episode ----------------------------------------------------------------------------
    def reset(self, seed: int) -> EpisodeInfo:
        poses = sample_object_poses(self.task.name, seed)
        mujoco.mj_resetData(self.model, self.data)
        start_gripper = float(self.gripper.follower_joint_unnormalize(
            self.gripper.follower_position_normalize(START_FINGER)))
        for side in SIDES:
            self.data.qpos[self._qpos[side]] = START_ARM_POSE + (START_FINGER, -START_FINGER)
            self._targets[side] = np.array(START_ARM_POSE + (start_gripper,))
            self._arm_ctrl[side] = np.array(START_ARM_POSE)
            self._write_ctrl(side)
        for name, pose in poses.items():
            self.data.qpos[self._object_qpos[name]:self._object_qpos[name] + 7] = pose
        mujoco.mj_forward(self.model, self.data)
        self.reward = self.max_reward = 0
        self.episode = EpisodeInfo(self.task.name, int(seed), poses)
        return self.episode

    @property
    def time(self) -> float:
        """Sim time since the last reset [s]."""
        return float(self.data.time)

    # -- control ----------------------------------------------------------------------------
    def command(self, side: str, names, positions, source: str = 'command') -> list:
        """Validate, clamp and hold a (partial) joint command for `side` from the next step.

        Raises JointCommandError (nothing applied) on bad input; returns the clamped names.
        """
        command = parse_command(names, positions, source)
        self._targets[side], clamped = self.limits.apply(self._targets[side], command)
        self._write_ctrl(side)
        return clamped

    def targets(self, side: str) -> np.ndarray:
        """(7,) held targets in COMMAND_JOINTS order."""
        return self._targets[side].copy()

    def _write_ctrl(self, side: str) -> None:
        target = self._targets[side]
        finger = float(self.gripper.follower_position_unnormalize(
            self.gripper.follower_joint_normalize(target[len(ARM_JOINTS)])))
        ctrl = np.concatenate([self._arm_ctrl[side], [finger, -finger]])
        self.data.ctrl[self._actuator[side]] = ctrl   # MuJoCo clamps to each ctrlrange

    def _advance_arm_setpoints(self) -> None:
        for side in SIDES:
            error = self._targets[side][:len(ARM_JOINTS)] - self._arm_ctrl[side]
            self._arm_ctrl[side] += np.clip(error, -self.max_joint_step, self.max_joint_step)
            self._write_ctrl(side)

    def step(self) -> int:
        """Advance DT with the held targets; returns the reward (0..4)."""
        if self.episode is None:
            raise RuntimeError('AlohaSim.step before reset(seed)')
        self._advance_arm_setpoints()
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.reward = self._compute_reward()
        self.max_reward = max(self.max_reward, self.reward)
        return self.reward

    def success(self) -> bool:
        """gym-aloha's success: the episode reached the task's max reward."""
        return self.max_reward >= MAX_REWARD

    # -- observation ------------------------------------------------------------------------
    def arm_state(self, side: str) -> ArmState:
        qpos = self.data.qpos[self._qpos[side]]
        qvel = self.data.qvel[self._dof[side]]
        effort = self.data.qfrc_actuator[self._dof[side]]
        g = self.gripper
        gripper = g.follower_joint_unnormalize(g.follower_position_normalize(qpos[6]))
        scale = (g.follower_joint_open - g.follower_joint_close) / (
            g.follower_position_open - g.follower_position_close)
        n = len(ARM_JOINTS)
        position = np.concatenate([qpos[:n], [gripper], qpos[n:]])
        velocity = np.concatenate([qvel[:n], [qvel[n] * scale], qvel[n:]])
        effort = np.concatenate([effort[:n], [effort[n]], effort[n:]])
        assert len(position) == len(JOINT_STATE_NAMES)
        return ArmState(position, velocity, effort)

    def object_poses(self) -> dict:
        return {name: self.data.qpos[adr:adr + 7].copy()
                for name, adr in self._object_qpos.items()}

    def render(self, cameras=CAMERAS) -> dict:
        """{camera: HxWx3 uint8 RGB} for names from names.CAMERAS."""
        unknown = [c for c in cameras if c not in MUJOCO_CAMERAS]
        if unknown:
            raise ValueError(f'unknown camera(s) {unknown}; known: {list(MUJOCO_CAMERAS)}')
        if self._renderer is None:
            self._renderer = _make_renderer(self.model, self.image_size)
        images = {}
        for camera in cameras:
            self._renderer.update_scene(self.data, camera=MUJOCO_CAMERAS[camera])
            images[camera] = self._renderer.render().copy()
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- reward (gym-aloha's rules) --------------------------------------------------------
    def _contacts(self) -> set:
        names = self._geom_names
        contact = self.data.contact
        return {frozenset((names[a], names[b]))
                for a, b in zip(contact.geom1[:self.data.ncon], contact.geom2[:self.data.ncon])}

    def _compute_reward(self) -> int:
        pairs = self._contacts()

        def touching(a: str, others) -> bool:
            return any(frozenset((a, b)) in pairs for b in others)

        left_finger, right_finger = ('vx300s_left/10_left_gripper_finger',
                                     'vx300s_right/10_right_gripper_finger')
        if self.task.name == 'transfer_cube':
            right = touching('red_box', [right_finger])
            left = touching('red_box', [left_finger])
            on_table = touching('red_box', ['table'])
            if left:
                return 4 if not on_table else 3
            if right:
                return 2 if not on_table else 1
            return 0
        right = touching('red_peg', [right_finger])
        left = touching(left_finger, _SOCKET_GEOMS)
        peg_on_table = touching('red_peg', ['table'])
        socket_on_table = touching('table', _SOCKET_GEOMS)
        lifted = not peg_on_table and not socket_on_table
        if touching('red_peg', ['pin']):
            return 4
        if touching('red_peg', _SOCKET_GEOMS) and lifted:
            return 3
        if left and right:
            return 2 if lifted else 1
        return 0

