"""The ALOHA URDF (cosmos_policy_ros.robot): it parses, the shipped file is the generator's
output, and its forward kinematics matches MuJoCo's body poses in the sim scene."""
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from cosmos_policy_ros.names import ARM_JOINTS, FOLLOWERS, STATE_DIM
from cosmos_policy_ros.robot.description import (
    EE_LINK,
    FINGERS,
    aloha_urdf,
    arm_joint_names,
    urdf_path,
)
from cosmos_policy_ros.robot.kinematics import Kinematics, ee_paths
from cosmos_policy_ros.sim.aloha_sim import assets_dir

MJCF_PREFIX = {'follower_left': 'vx300s_left', 'follower_right': 'vx300s_right'}


@pytest.fixture(scope='module')
def kinematics():
    return Kinematics.from_urdf(urdf_path().read_text())


@pytest.fixture(scope='module')
def mujoco_scene():
    model = mujoco.MjModel.from_xml_path(str(assets_dir() / 'bimanual_viperx_transfer_cube.xml'))
    return model, mujoco.MjData(model)


def test_shipped_urdf_is_the_generated_one_and_parses():
    text = urdf_path().read_text()
    assert text == aloha_urdf(), 'urdf/aloha.urdf is stale: python -m ' \
        'cosmos_policy_ros.robot.description > urdf/aloha.urdf'
    robot = ET.fromstring(text)
    links = {link.get('name') for link in robot.findall('link')}
    joints = {joint.get('name'): joint for joint in robot.findall('joint')}
    for arm in FOLLOWERS:
        for name in arm_joint_names(arm):
            assert joints[name].get('type') in ('revolute', 'prismatic')
            limit = joints[name].find('limit')
            assert float(limit.get('lower')) < float(limit.get('upper'))
        assert f'{arm}/{EE_LINK}' in links
    # Every joint names existing links, and every link but the root hangs off one joint.
    children = [j.find('child').get('link') for j in joints.values()]
    assert sorted(children) == sorted(links - {'world'})
    assert all(j.find('parent').get('link') in links for j in joints.values())


def _random_configuration(model, rng) -> dict:
    """{URDF joint: angle} drawn inside the MJCF ranges for all 16 arm/finger joints."""
    values = {}
    for arm, prefix in MJCF_PREFIX.items():
        for name in ARM_JOINTS + FINGERS:
            low, high = model.joint(f'{prefix}/{name}').range
            values[f'{arm}/{name}'] = rng.uniform(low, high)
    return values


def test_forward_kinematics_matches_mujoco_body_poses(kinematics, mujoco_scene):
    model, data = mujoco_scene
    rng = np.random.default_rng(0)
    configurations = [_random_configuration(model, rng) for _ in range(8)]
    batch = {name: np.array([c[name] for c in configurations]) for name in configurations[0]}
    poses = kinematics.link_poses(batch)
    compared = 0
    for index, configuration in enumerate(configurations):
        data.qpos[:] = model.qpos0
        for name, value in configuration.items():
            arm, joint = name.split('/')
            data.qpos[model.joint(f'{MJCF_PREFIX[arm]}/{joint}').qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        for body in range(model.nbody):
            name = model.body(body).name
            arm = next((a for a, p in MJCF_PREFIX.items() if name.startswith(p)), None)
            if arm is None:
                continue
            link = name.replace(MJCF_PREFIX[arm], arm, 1)
            link = f'{arm}/base_link' if link == arm else link
            if link.endswith('camera_focus'):
                continue     # a camera target, not a link of the robot
            np.testing.assert_allclose(poses[link][index, :3, 3], data.xpos[body], atol=1e-6,
                                       err_msg=f'{link} position, configuration {index}')
            np.testing.assert_allclose(poses[link][index, :3, :3],
                                       data.xmat[body].reshape(3, 3), atol=1e-6,
                                       err_msg=f'{link} orientation, configuration {index}')
            compared += 1
    assert compared == 8 * 2 * 10     # the 10 bodies of both arms in every configuration


def test_ee_paths_of_a_chunk_follow_the_gripper(kinematics, mujoco_scene):
    model, data = mujoco_scene
    rng = np.random.default_rng(1)
    chunk = np.zeros((50, STATE_DIM))
    chunk[:, :6] = np.linspace(-0.4, 0.4, 50)[:, None] * rng.uniform(0.5, 1.0, 6)
    chunk[:, 7:13] = np.linspace(0.3, -0.3, 50)[:, None] * rng.uniform(0.5, 1.0, 6)
    paths = ee_paths(kinematics, chunk)
    assert set(paths) == set(FOLLOWERS)
    assert all(p.shape == (50, 3) for p in paths.values())
    for step in (0, 25, 49):
        data.qpos[:] = model.qpos0
        for arm, offset in (('follower_left', 0), ('follower_right', 7)):
            for j, joint in enumerate(ARM_JOINTS):
                adr = model.joint(f'{MJCF_PREFIX[arm]}/{joint}').qposadr[0]
                data.qpos[adr] = chunk[step, offset + j]
        mujoco.mj_kinematics(model, data)
        for arm, prefix in MJCF_PREFIX.items():
            gripper = model.body(f'{prefix}/gripper_link').id
            expected = data.xpos[gripper] + data.xmat[gripper].reshape(3, 3) @ [0.0687, 0, 0]
            np.testing.assert_allclose(paths[arm][step], expected, atol=1e-6)
    with pytest.raises(ValueError, match=r'chunk must be \(N, 14\)'):
        ee_paths(kinematics, np.zeros((50, 7)))
