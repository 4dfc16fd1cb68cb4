"""Foundation: loopback environment, parameter schema, graphs, calibration files, image
conversion."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cosmos_policy_ros import calibration as cal
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.graphs import build_graph, get_graph
from cosmos_policy_ros.params import Param, ParamError, check_values
from cosmos_policy_ros.rosenv import loopback_env

# --- loopback -----------------------------------------------------------------------------------

def test_this_test_process_is_confined_to_loopback():
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 1 <= int(os.environ['ROS_DOMAIN_ID']) <= 100


def test_loopback_env_sets_range_domain_and_humble_variable():
    env = loopback_env(42, base={'ROS_STATIC_PEERS': '10.0.0.5', 'ROS_LOCALHOST_ONLY': '0'})
    assert env['ROS_DOMAIN_ID'] == '42'
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 'ROS_STATIC_PEERS' not in env and 'ROS_LOCALHOST_ONLY' not in env
    humble = loopback_env(7, base={'ROS_DISTRO': 'humble'})
    assert humble['ROS_LOCALHOST_ONLY'] == '1'
    assert loopback_env(base={})['ROS_DOMAIN_ID'] != ''


def test_two_processes_talk_over_loopback_dds(graph_client, tmp_path):
    """A node in another process (environment from loopback_env) answers ours on this domain."""
    from std_msgs.msg import String
    script = tmp_path / 'echo.py'
    script.write_text(textwrap.dedent('''
        import rclpy
        from std_msgs.msg import String
        rclpy.init()
        node = rclpy.create_node('echo')
        pub = node.create_publisher(String, '/pong', 10)
        node.create_subscription(String, '/ping',
                                 lambda m: pub.publish(String(data=m.data + '!')), 10)
        try:
            rclpy.spin(node)
        except Exception:
            pass
    '''))
    proc = subprocess.Popen([sys.executable, str(script)], env=loopback_env())
    try:
        pongs = graph_client.subscribe('/pong', String)
        ping = graph_client.publisher('/ping', String)
        deadline = time.monotonic() + 30
        while pongs.count == 0 and time.monotonic() < deadline:
            ping.publish(String(data='hello'))
            time.sleep(0.2)
        assert pongs.latest() is not None and pongs.latest().data == 'hello!'
    finally:
        proc.terminate()
        proc.wait(10)


# --- parameters and graphs ----------------------------------------------------------------------

def test_param_check_names_the_field_and_the_problem():
    rate = Param('rate', 25.0, 'control rate [Hz]', min=1.0)
    mode = Param('mode', 'sync', 'execution mode', choices=('sync', 'async'))
    rate.check(50)
    with pytest.raises(ParamError, match="'rate': 0.5 is below the minimum"):
        rate.check(0.5)
    with pytest.raises(ParamError, match="'rate': expected float, got str"):
        rate.check('fast')
    with pytest.raises(ParamError, match="'mode': 'turbo' is not one of.*sync"):
        mode.check('turbo')
    with pytest.raises(ValueError, match=r"unknown parameter 'rat'"):
        check_values([rate, mode], {'rat': 3.0})
    with pytest.raises(TypeError, match='non-empty'):
        Param('names', [], 'list needs a typed default')


def test_param_range_and_choices_reach_the_ros_descriptor():
    from cosmos_policy_ros.ros.params import describe
    steps = describe(Param('num_steps', 10, 'denoising steps', min=1, max=100))
    assert (steps.integer_range[0].from_value, steps.integer_range[0].to_value) == (1, 100)
    age = describe(Param('max_chunk_age', 2.0, 'age [s]', min=0.01))
    assert age.floating_point_range[0].from_value == 0.01 and not age.integer_range
    assert age.floating_point_range[0].to_value > 1e300                    # no upper bound
    mode = describe(Param('mode', 'sync', 'execution', choices=('sync', 'async'),
                          read_only=True))
    assert mode.read_only and "one of ['sync', 'async']" in mode.description
    assert not mode.integer_range and not mode.floating_point_range


def test_graph_arguments_are_validated_with_suggestions():
    with pytest.raises(KeyError, match="did you mean 'record_demos'"):
        get_graph('record_demo')
    with pytest.raises(ValueError, match='unknown argument'):
        build_graph('record_demos', {'tsk': 'insertion'})
    with pytest.raises(ValueError, match="task:='stack_cups' is not one of"):
        build_graph('record_demos', {'task': 'stack_cups'})
    nodes = build_graph('record_demos', {'task': 'insertion'})
    assert {n.executable for n in nodes} >= {'sim_robot', 'scripted_leader', 'teleop', 'recorder'}
    assert all(n.parameters['use_sim_time'] is True for n in nodes)


def test_node_spec_ros_args_round_trip_values_as_yaml():
    spec = NodeSpec('teleop', 'teleop', 'robot', {'rate': 50.0, 'calibration': 'aloha_sim',
                                                 'enabled': True, 'names': ['a', 'b']})
    args = spec.ros_args()
    assert args[:3] == ['--ros-args', '-r', '__node:=teleop'] and '__ns:=/robot' in args
    assert spec.full_name == '/robot/teleop'
    assert NodeSpec('teleop', 'teleop', '/robot/').ros_args()[4] == '__ns:=/robot'
    assert 'rate:=50.0' in args and 'enabled:=true' in args and 'names:=["a", "b"]' in args
    with pytest.raises(ValueError, match='unknown executable'):
        NodeSpec('telep', 'x')


def test_cli_up_dry_run_and_bad_argument():
    cli = [sys.executable, '-m', 'cosmos_policy_ros.cli']
    ok = subprocess.run(cli + ['up', 'record_demos', 'task:=insertion', '--dry-run'],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert '/sim_robot' in ok.stdout and "'task': 'insertion'" in ok.stdout
    bad = subprocess.run(cli + ['up', 'record_demos', 'task:=fold', '--dry-run'],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "task:='fold' is not one of" in bad.stdout


# --- calibration --------------------------------------------------------------------------------

def test_gripper_presets_are_the_three_known_sets():
    presets = cal.gripper_presets()
    assert set(presets) == {'aloha1_ros1', 'aloha2_mobile', 'interbotix_ros2'}
    ib = presets['interbotix_ros2']
    assert (ib.leader_joint_open, ib.follower_joint_close) == (0.8298, 0.6197)
    # Teleop mapping: leader open/close -> follower open/close, linear in between.
    for g in presets.values():
        np.testing.assert_allclose(g.leader_to_follower_joint(
            [g.leader_joint_open, g.leader_joint_close]),
            [g.follower_joint_open, g.follower_joint_close])
        assert g.follower_position_normalize(g.follower_position_open) == pytest.approx(1.0)


def _write(tmp_path, text):
    path = tmp_path / 'robot.yaml'
    path.write_text(text)
    return str(path)


LIMITS = textwrap.dedent('''
    joint_limits:
      waist: [-3.1, 3.1]
      shoulder: [-1.8, 1.2]
      elbow: [-1.7, 1.6]
      forearm_roll: [-3.1, 3.1]
      wrist_angle: [-1.8, 2.2]
      wrist_rotate: [-3.1, 3.1]
''')


def test_calibration_errors_name_the_field_and_the_fix(tmp_path):
    with pytest.raises(cal.CalibrationError, match="did you mean 'interbotix_ros2'"):
        cal.load_calibration(_write(tmp_path, 'robot: r\ngripper_preset: interbotix_ros' + LIMITS))
    with pytest.raises(cal.CalibrationError, match=r"malformed YAML at line 3.*expected ','"):
        cal.load_calibration(_write(tmp_path, 'robot: r\ngripper_preset: [aloha1_ros1\n'))
    with pytest.raises(cal.CalibrationError, match="unknown key 'joint_limit'.*did you mean"):
        cal.load_calibration(_write(tmp_path, 'robot: r\ngripper_preset: aloha1_ros1\n'
                                              'joint_limit: {}\n'))
    with pytest.raises(cal.CalibrationError, match='joint_limits.elbow'):
        cal.load_calibration(_write(tmp_path, 'robot: r\ngripper_preset: aloha1_ros1'
                                    + LIMITS.replace('[-1.7, 1.6]', '[1.6, -1.7]')))
    with pytest.raises(cal.CalibrationError, match='exactly one of'):
        cal.load_calibration(_write(tmp_path, 'robot: r' + LIMITS))
    with pytest.raises(cal.CalibrationError, match="calibration 'no_such_robot' not found"):
        cal.load_calibration('no_such_robot')


def test_calibration_with_explicit_gripper_constants(tmp_path):
    constants = cal.get_gripper_preset('aloha1_ros1').as_dict()
    body = '\n'.join(f'  {k}: {v}' for k, v in constants.items()
                     if k not in ('name', 'description'))
    loaded = cal.load_calibration(_write(tmp_path, 'robot: r\ngripper:\n' + body + LIMITS))
    assert loaded.gripper.name == 'custom'
    assert loaded.limits_array().shape == (6, 2)
    sim = cal.load_calibration('aloha_sim')
    assert sim.gripper.name == 'aloha1_ros1' and sim.limits_array()[1, 0] < 0


# --- image conversion ---------------------------------------------------------------------------

def test_image_conversion_and_its_errors():
    from builtin_interfaces.msg import Time

    from cosmos_policy_ros.ros import image
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msg = image.to_msg(rgb, Time(sec=3, nanosec=5), 'cam_high')
    assert (msg.encoding, msg.step, msg.header.frame_id) == ('rgb8', 1920, 'cam_high')
    np.testing.assert_array_equal(image.to_rgb(msg, (480, 640)), rgb)
    msg.encoding = 'bgr8'
    np.testing.assert_array_equal(image.to_rgb(msg), rgb[:, :, ::-1])
    msg.encoding = 'mono8'
    with pytest.raises(ValueError, match="cam_x: encoding 'mono8'.*rgb8"):
        image.to_rgb(msg, source='cam_x')
    small = image.to_msg(rgb[:240, :320].copy(), Time(), 'cam_high')
    with pytest.raises(ValueError, match='240x320.*480x640 is required'):
        image.to_rgb(small, (480, 640))
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        image.to_msg(rgb.astype(np.float32), Time(), 'cam_high')
