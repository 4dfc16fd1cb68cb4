"""arm_driver nodes (separate processes) against emulated Dynamixel buses in this process: a
factory-fresh follower (configured and verified at bring-up, issue 12 item 4) whose motors take
1 s to restart after a reboot (item 3), goals at +-pi (item 1), and the usual faults."""
import math
import sys
import time

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator
from cosmos_policy_ros.procs import GraphProcesses

FOLLOWER, LEADER = 'follower_left', 'leader_left'


def ticks(rad: float) -> int:
    return round(2048 + rad * 4096 / (2 * math.pi))


@pytest.fixture
def emulators(tmp_path):
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)     # the emulator thread answers promptly
    follower = DynamixelEmulator.for_arm('aloha_vx300s', link_path=str(tmp_path / 'ttyF'),
                                         factory_fresh=True, mount_errors={3: 30},
                                         reboot_time_s=1.0)
    leader = DynamixelEmulator.for_arm('aloha_wx250s', link_path=str(tmp_path / 'ttyL'))
    with follower, leader:
        yield follower, leader
    sys.setswitchinterval(previous)


def write_calibration(tmp_path, follower, leader) -> str:
    base = yaml.safe_load(open('calibration/aloha_stationary.yaml'))
    base['arms'] = {FOLLOWER: {'port': follower.port_path, 'gripper_current_limit': 250},
                    LEADER: {'port': leader.port_path}}
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(base))
    return str(path)


def latest_status(record, arm):
    for msg in reversed(record.messages()):
        for status in msg.status:
            if status.name.endswith(arm):
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def command(pub, joint_names, positions):
    msg = JointState()
    msg.name, msg.position = list(joint_names), [float(p) for p in positions]
    pub.publish(msg)


@pytest.mark.slow
def test_arm_drivers_stream_command_and_survive_faults(emulators, tmp_path, log_dir,
                                                       graph_client):
    follower, leader = emulators
    calibration = write_calibration(tmp_path, follower, leader)
    specs = [NodeSpec('arm_driver', 'arm_driver', namespace=f'/{arm}', parameters={
        'arm': arm, 'calibration': calibration, 'rate': 100.0, 'retry_period': 0.3,
        'diagnostics_period': 0.2}) for arm in (FOLLOWER, LEADER)]
    states = graph_client.subscribe(names.joint_states_topic(FOLLOWER), JointState)
    leader_states = graph_client.subscribe(names.joint_states_topic(LEADER), JointState)
    diagnostics = graph_client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray)
    pub = graph_client.publisher(names.joint_command_topic(FOLLOWER), JointState)
    leader_pub = graph_client.publisher(names.joint_command_topic(LEADER), JointState)
    wait = graph_client.wait_for

    def diag(arm=FOLLOWER):
        return latest_status(diagnostics, arm)[1]

    with GraphProcesses(specs, log_dir) as graph:
        assert graph_client.wait_for_messages(names.joint_states_topic(FOLLOWER), 20, 60.0), \
            graph.by_name('arm_driver').log_tail()
        graph.check_alive()
        # joint_states at rate with the Interbotix names; the rate is printed (shared CPU).
        start, count = time.monotonic(), states.count
        time.sleep(2.0)
        rate = (states.count - count) / (time.monotonic() - start)
        print(f'follower joint_states rate: {rate:.1f} Hz (target 100)')
        assert rate > 20.0
        assert tuple(states.latest().name) == names.JOINT_STATE_NAMES
        assert wait(lambda: leader_states.count > 5, 10.0)
        # The factory-fresh follower as the motors now hold it: modes, gripper current limit
        # and Goal_Current, Return_Delay_Time, shadows (Secondary_ID, Drive_Mode, homing).
        assert follower.register(9, 'Operating_Mode') == 5
        assert follower.register(9, 'Current_Limit') == 250
        assert follower.register(9, 'Goal_Current') == 250
        assert follower.register(1, 'Operating_Mode') == 3
        assert follower.register(3, 'Secondary_ID') == 2
        assert follower.register(2, 'Drive_Mode') == 1 and follower.register(3, 'Drive_Mode') == 0
        assert all(follower.register(i, 'Return_Delay_Time') == 0 for i in range(1, 10))
        assert abs(follower.register(2, 'Present_Position')
                   - follower.register(3, 'Present_Position')) <= 1
        assert follower.register(1, 'Torque_Enable') == 1
        assert leader.register(1, 'Torque_Enable') == 0

        # A command reaches the motor goals (shadow 3 follows 2); out-of-limit is clamped.
        command(pub, ['shoulder', 'elbow'], [0.3, 5.0])
        assert wait(lambda: follower.motors[2].goal == ticks(0.3), 5.0)
        assert follower.motors[3].goal == ticks(0.3)
        assert follower.motors[4].goal == 3094       # elbow URDF limit, in ticks rounded inward
        command(pub, ['waist'], [math.pi])           # +pi: tick 4096 would be refused
        assert wait(lambda: follower.motors[1].goal == 4095, 5.0)
        command(pub, ['waist'], [0.0])
        assert wait(lambda: follower.motors[1].goal == 2048, 5.0)
        assert follower.stats.rejected == []
        assert wait(lambda: abs(states.latest().position[1] - 0.3) < 0.01, 5.0)
        # Bad commands are rejected whole; leaders reject every command.
        command(pub, ['shoulder', 'bogus'], [0.1, 0.0])
        command(pub, ['waist'], [float('nan')])
        command(leader_pub, ['waist'], [0.5])
        assert wait(lambda: int(diag().get('rejected', 0)) >= 2
                    and int(diag(LEADER).get("rejected", 0)) >= 1, 5.0), (diag(), diag(LEADER))
        assert follower.motors[2].goal == ticks(0.3) and follower.motors[1].goal == 2048
        assert leader.motors[1].goal == 2048
        # A leader moved by hand shows up in its joint states.
        leader.set_position(1, 2048 + 512)
        assert wait(lambda: abs(leader_states.latest().position[0] - math.pi / 4) < 0.01, 5.0)

        # Lost status packets are retried and counted.
        follower.drop_status(2)
        follower.corrupt_status(1)
        assert wait(lambda: int(diag().get('bus_timeouts', 0)) >= 1
                    and int(diag().get('bus_corrupt', 0)) >= 1, 10.0), diag()

        # Hardware error: ERROR diagnostic naming it, hold (no new goals), then recovery.
        follower.set_hardware_error(9, 0x20, persistent=True)
        assert wait(lambda: diag().get('state') == 'fault'
                    and 'overload' in diag().get('hardware_error_id9', ''), 10.0), diag()
        status, _ = latest_status(diagnostics, FOLLOWER)
        assert status.level == b'\x02' and 'overload' in status.message
        command(pub, ['waist'], [0.2])
        time.sleep(0.5)
        assert follower.motors[1].goal == 2048
        follower.clear_fault_cause(9)
        assert wait(lambda: diag().get('state') == 'active', 10.0), diag()
        assert follower.register(9, 'Torque_Enable') == 1
        assert int(diag()['recoveries']) >= 1
        command(pub, ['waist'], [0.2])
        assert wait(lambda: follower.motors[1].goal == ticks(0.2), 5.0)

        # Port vanishes: port_lost diagnostic, no joint states; back: reconnect, streaming.
        follower.vanish()
        assert wait(lambda: diag().get('state') == 'port_lost', 10.0), diag()
        time.sleep(0.3)
        count = states.count
        time.sleep(0.5)
        assert states.count == count
        follower.restore()
        assert wait(lambda: states.count > count + 10, 15.0), diag()
        # Diagnostics come slower than joint states: wait for the array that counts it.
        assert wait(lambda: int(diag().get('reconnects', 0)) >= 1
                    and diag().get('state') == 'active', 10.0), diag()

        # Services: torque off/on and reboot.
        response = graph_client.call(names.torque_enable_service(FOLLOWER), SetBool,
                                     SetBool.Request(data=False))
        assert response.success and follower.register(1, 'Torque_Enable') == 0
        response = graph_client.call(names.torque_enable_service(FOLLOWER), SetBool,
                                     SetBool.Request(data=True))
        assert response.success and follower.register(1, 'Torque_Enable') == 1
        response = graph_client.call(names.torque_enable_service(LEADER), SetBool,
                                     SetBool.Request(data=True))
        assert not response.success and 'read-only' in response.message
        response = graph_client.call(names.reboot_service(FOLLOWER), Trigger)
        assert response.success, response.message
        assert float(response.message.split('after ')[1].split(' s')[0]) >= 1.0
        assert all(follower.register(i, 'Torque_Enable') == 1 for i in range(1, 10))
        assert wait(lambda: diag().get('state') == 'active', 5.0), diag()
        graph.check_alive()
