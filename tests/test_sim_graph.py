"""sim_robot + scripted_leader + teleop as separate processes, observed over ROS.

The tests in this module share one running graph and run in file order: clock/states/cameras,
tracking and success, runtime camera disabling, reset, then (with teleop stopped) bad commands.
"""
import json
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.ros.stamps import to_ns
from cosmos_policy_ros.sim.aloha_sim import START_ARM_POSE

TASK, SEED, CAMERA_RATE = 'transfer_cube', 0, 2.0


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    from cosmos_policy_ros.ros.client import GraphClient
    sim = {'use_sim_time': True, 'task': TASK, 'seed': SEED, 'camera_rate': CAMERA_RATE,
           'calibration': 'aloha_sim', 'realtime_factor_cap': 1.0}
    specs = [NodeSpec('sim_robot', 'sim_robot', parameters=sim),
             NodeSpec('scripted_leader', 'scripted_leader', parameters={
                 'use_sim_time': True, 'task': TASK, 'calibration': 'aloha_sim'}),
             NodeSpec('teleop', 'teleop', parameters={'use_sim_time': True,
                                                      'calibration': 'aloha_sim'})]
    client = GraphClient(name='sim_graph_test')
    rec = {
        'clock': client.subscribe('/clock', Clock),
        'episode': client.subscribe(names.EPISODE_TOPIC, String),
        'success': client.subscribe(names.SUCCESS_TOPIC, Bool),
        'diagnostics': client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray),
    }
    for arm in names.FOLLOWERS + names.LEADERS:
        rec[arm] = client.subscribe(names.joint_states_topic(arm), JointState)
    for camera in names.CAMERAS:
        rec[camera] = client.subscribe(names.camera_topic(camera), Image, maxlen=20,
                                       sensor=True)
    with GraphProcesses(specs, tmp_path_factory.mktemp('sim_graph_logs')) as processes:
        yield processes, client, rec
    client.close()


def latest_clock_ns(rec) -> int:
    return to_ns(rec['clock'].latest().clock)


def test_clock_joint_states_and_cameras(graph):
    processes, client, rec = graph
    assert client.wait_for(lambda: all(rec[c].count >= 2 for c in names.CAMERAS), 90), \
        f'cameras missing; counts {[rec[c].count for c in names.CAMERAS]}'
    processes.check_alive()
    first = latest_clock_ns(rec)
    client.wait_for(lambda: latest_clock_ns(rec) > first, 10)
    assert latest_clock_ns(rec) > first, '/clock does not advance'
    states = rec['follower_left'].messages()[-20:]
    assert all(list(m.name) == list(names.JOINT_STATE_NAMES) for m in states)
    periods = np.diff([to_ns(m.header.stamp) for m in states]) / 1e9
    assert np.median(periods) == pytest.approx(0.02), 'joint_states not at 50 Hz of sim time'
    for camera in names.CAMERAS:
        images = rec[camera].messages()
        msg = images[-1]
        assert (msg.encoding, msg.height, msg.width) == ('rgb8', 480, 640)
        assert len(msg.data) == 480 * 640 * 3
        stamps = [to_ns(m.header.stamp) for m in images]
        assert 0 < stamps[-1] <= latest_clock_ns(rec)
        assert stamps[-1] % 20_000_000 == 0, 'image not stamped with a physics step time'
        # Sensor-data QoS may drop frames; those received lie on the camera period's grid.
        assert all((t - stamps[0]) % int(1e9 / CAMERA_RATE) == 0 for t in stamps)


def test_followers_track_the_scripted_leaders_and_task_succeeds(graph):
    processes, client, rec = graph
    assert client.wait_for(lambda: rec['success'].latest() is not None
                           and rec['success'].latest().data, 120), \
        'transfer_cube seed 0 not solved through leader -> teleop -> sim'
    processes.check_alive()
    errors = []
    leaders = [(to_ns(m.header.stamp), np.array(m.position[:6]))
               for m in rec['leader_right'].messages()]
    for follower in rec['follower_right'].messages()[-100:]:
        stamp = to_ns(follower.header.stamp)
        # The follower lags the leader by the teleop/step delay and the PD response.
        past = [pos for t, pos in leaders if stamp - 200_000_000 <= t <= stamp]
        if past:
            errors.append(min(np.abs(pos - follower.position[:6]).max() for pos in past))
    assert len(errors) > 20
    assert np.median(errors) < 0.05, f'median tracking error {np.median(errors):.3f} rad'


def _set_parameter(client, node: str, name: str, strings: list) -> None:
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=strings)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
    result = client.call(f'/{node}/set_parameters', SetParameters, request)
    assert result.results[0].successful, result.results[0].reason


def test_disabled_cameras_stop_until_removed(graph):
    _processes, client, rec = graph
    _set_parameter(client, 'sim_robot', 'disabled_cameras', ['cam_left_wrist'])
    high = rec['cam_high'].count       # frames rendered before the change may still arrive:
    assert client.wait_for(lambda: rec['cam_high'].count >= high + 2, 60)   # let them land
    wrist, high = rec['cam_left_wrist'].count, rec['cam_high'].count
    assert client.wait_for(lambda: rec['cam_high'].count >= high + 2, 60)
    assert rec['cam_left_wrist'].count == wrist
    _set_parameter(client, 'sim_robot', 'disabled_cameras', [''])
    assert client.wait_for(lambda: rec['cam_left_wrist'].count > wrist, 60)


def test_reset_service_starts_the_next_seed(graph):
    _processes, client, rec = graph
    response = client.call(names.RESET_SERVICE, Trigger, timeout=30)
    assert response.success
    episode = json.loads(response.message)
    assert (episode['episode'], episode['seed'], episode['task']) == (1, SEED + 1, TASK)
    assert client.wait_for(lambda: json.loads(rec['episode'].latest().data)['seed'] == SEED + 1,
                           10)
    reset_ns = round(episode['sim_time'] * 1e9)
    assert client.wait_for(lambda: to_ns(rec['follower_left'].latest().header.stamp)
                           > reset_ns, 10)
    after = [m for m in rec['follower_left'].messages() if to_ns(m.header.stamp) > reset_ns]
    np.testing.assert_allclose(after[0].position[:6], START_ARM_POSE, atol=0.05)
    query = client.call(names.SUCCESS_QUERY_SERVICE, Trigger)
    assert json.loads(query.message)['seed'] == SEED + 1


def test_bad_commands_are_rejected_and_do_not_move_the_arm(graph):
    processes, client, rec = graph
    assert client.call('/teleop/stop', Trigger).success     # hold 1 s, then release
    time.sleep(3.0)
    publisher = client.publisher(names.joint_command_topic('follower_left'), JointState)
    before = rec['follower_left'].latest().position[0]
    nan = float('nan')
    for bad in (JointState(name=['waist', 'elbowx'], position=[before + 0.5, 0.0]),
                JointState(name=['waist', 'elbow'], position=[nan, 0.5]),
                JointState(name=['waist', 'elbow'], position=[before + 0.5])):
        publisher.publish(bad)
    clock = latest_clock_ns(rec)
    client.wait_for(lambda: latest_clock_ns(rec) > clock + 500_000_000, 30)
    assert rec['follower_left'].latest().position[0] == pytest.approx(before, abs=1e-3)

    def report() -> dict:
        for array in reversed(rec['diagnostics'].messages()):
            for status in array.status:
                if status.name.endswith(names.joint_command_topic('follower_left')):
                    return {kv.key: kv.value for kv in status.values}
        return {'rejected': '0'}
    assert client.wait_for(lambda: report()['rejected'] == '3', 10), report()
    assert 'position has 1 values but name has 2' in report()['last_error']
    # The error log is throttled (2 s): the first rejection is in it, with field and fix.
    assert "name has unknown joint(s) ['elbowx']; use names from" in \
        processes.by_name('sim_robot').log_tail(200)
    # The same interface accepts a good command (positive control).
    publisher.publish(JointState(name=['waist'], position=[before + 0.3]))
    assert client.wait_for(
        lambda: abs(rec['follower_left'].latest().position[0] - (before + 0.3)) < 0.02, 60)
    processes.check_alive()


def test_bad_configuration_exits_non_zero_naming_the_field(tmp_path, log_dir):
    unknown_preset = tmp_path / 'unknown_preset.yaml'
    unknown_preset.write_text('robot: x\ngripper_preset: aloha3\njoint_limits: {}\n')
    malformed = tmp_path / 'malformed.yaml'
    malformed.write_text('robot: x\ngripper_preset: [aloha1_ros1\n')
    cases = {
        'sim_unknown_task': (NodeSpec('sim_robot', 'sim_unknown_task',
                                      parameters={'task': 'transfer_cub'}), "'task'"),
        'sim_unknown_preset': (NodeSpec('sim_robot', 'sim_unknown_preset',
                                        parameters={'calibration': str(unknown_preset)}),
                               "gripper_preset: unknown gripper preset 'aloha3'"),
        'teleop_malformed': (NodeSpec('teleop', 'teleop_malformed',
                                      parameters={'calibration': str(malformed)}),
                             'malformed YAML at line'),
        'leader_unknown_task': (NodeSpec('scripted_leader', 'leader_unknown_task',
                                         parameters={'task': 'folding'}), "'task'"),
    }
    with GraphProcesses([spec for spec, _ in cases.values()], log_dir) as processes:
        for name, (_, field) in cases.items():
            process = processes.by_name(name)
            code = process.wait(90)
            assert code not in (None, 0), f'{name} did not exit non-zero'
            assert field in process.log_tail(60), process.log_tail(60)
