"""Bus driver, Arm and ArmSupervisor against the emulated bus: config, conversions, faults."""
import math
import time

import numpy as np
import pytest

from cosmos_policy_ros.calibration import CalibrationError, load_calibration
from cosmos_policy_ros.hardware.arm import Arm, ArmSupervisor
from cosmos_policy_ros.hardware.arm_config import parse_arm, parse_arms
from cosmos_policy_ros.hardware.dynamixel.bus import (DynamixelBus, DynamixelCommError,
                                                      MotorInstructionError, PortLostError)


def follower_config(emu, **extra):
    return parse_arm('follower_left', {'port': emu.port_path, **extra})


def test_configure_writes_modes_and_current_limit_with_read_back(vx300s_emulator):
    arm = Arm(follower_config(vx300s_emulator, gripper_current_limit=250))
    settings = arm.connect()
    assert settings[(9, 'Operating_Mode')] == 5 and settings[(9, 'Current_Limit')] == 250
    assert settings[(1, 'Operating_Mode')] == 3 and settings[(1, 'Velocity_Limit')] == 131
    assert settings[(3, 'Secondary_ID')] == 2 and settings[(5, 'Secondary_ID')] == 4
    assert vx300s_emulator.register(9, 'Current_Limit') == 250          # the motor holds it
    # The current limit takes effect: the gripper against an object saturates at it.
    arm.set_torque(True)
    vx300s_emulator.obstruct(9, 2048)
    arm.write_goal(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    time.sleep(0.3)
    assert abs(vx300s_emulator.register(9, 'Present_Current')) == 250
    # Reconfiguring an already configured arm writes nothing to EEPROM (no torque drop).
    writes = vx300s_emulator.stats.instructions.get(3, 0)
    arm.configure()
    assert vx300s_emulator.stats.instructions.get(3, 0) - writes == 2 * len(arm.joint_ids)  # RAM
    assert vx300s_emulator.register(1, 'Torque_Enable') == 1
    arm.close()
    assert vx300s_emulator.register(1, 'Torque_Enable') == 0


def test_eeprom_write_with_torque_on_is_an_instruction_error(vx300s_emulator):
    bus = DynamixelBus(vx300s_emulator.port_path)
    bus.connect()
    bus.write(9, 'Torque_Enable', 1)
    with pytest.raises(MotorInstructionError, match='access error'):
        bus.write(9, 'Current_Limit', 100)
    with bus.torque_disabled([9]):
        bus.write(9, 'Current_Limit', 100, verify=True)
    assert bus.read(9, 'Torque_Enable') == 1 and vx300s_emulator.register(9, 'Current_Limit') == 100
    bus.close()


def test_ticks_radians_and_gripper_linkage(vx300s_emulator):
    config = follower_config(vx300s_emulator, joint_offsets={'shoulder': 0.1})
    assert config.ticks_to_rad('waist', 2048) == 0.0
    assert config.ticks_to_rad('waist', 3072) == pytest.approx(math.pi / 2)
    assert config.rad_to_ticks('waist', -math.pi / 2) == 1024
    assert config.rad_to_ticks('shoulder', 0.0) == round(2048 + 0.1 * 4096 / (2 * math.pi))
    for rad in (-1.2, 0.0, 0.7):
        assert config.ticks_to_rad('shoulder', config.rad_to_ticks('shoulder', rad)) == \
            pytest.approx(rad, abs=2 * math.pi / 4096)
    # Interbotix linkage (horn 0.0275, arm 0.035): 0 rad -> sqrt(L^2 - r^2), increasing.
    assert config.finger_position(0.0) == pytest.approx(math.sqrt(0.035 ** 2 - 0.0275 ** 2))
    assert config.finger_position(1.0) > config.finger_position(0.5)
    arm = Arm(config)
    arm.connect()
    vx300s_emulator.set_position(9, 2048 + 512)
    state = arm.read()
    assert state.position[6] == pytest.approx(math.pi / 4, abs=1e-3)
    assert state.position[7] == pytest.approx(config.finger_position(math.pi / 4), abs=1e-4)
    assert state.position[8] == -state.position[7]
    arm.close()


def test_goals_are_clamped_and_non_finite_refused(vx300s_emulator):
    arm = Arm(follower_config(vx300s_emulator, joint_limits={'gripper': [-0.5, 1.5]}))
    arm.connect()
    arm.set_torque(True)
    sent = arm.write_goal([0.0, -9.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    assert sent[1] == pytest.approx(math.radians(-106)) and sent[6] == 1.5
    time.sleep(0.05)
    assert vx300s_emulator.motors[2].goal == round(2048 + math.radians(-106) * 4096 / (2 * math.pi))
    with pytest.raises(ValueError, match='non-finite'):
        arm.write_goal([0, float('inf'), 0, 0, 0, 0, 0])
    arm.close()


def test_lost_and_corrupt_packets_are_retried_and_counted(vx300s_emulator):
    bus = DynamixelBus(vx300s_emulator.port_path, num_retry=2)
    bus.connect()
    vx300s_emulator.drop_status(1)
    vx300s_emulator.corrupt_status(1, ids=[5])
    states = bus.sync_read_state(range(1, 10))
    assert sorted(states) == list(range(1, 10))
    assert bus.stats.timeouts == 1 and bus.stats.corrupt == 1 and bus.stats.retries == 2
    vx300s_emulator.drop_status(3, ids=[4])
    with pytest.raises(DynamixelCommError, match='after 3 tries'):
        bus.read(4, 'Present_Position')
    assert bus.stats.failures == 1
    bus.close()


def test_hardware_error_holds_then_recovers_after_the_cause_clears(vx300s_emulator):
    supervisor = ArmSupervisor(follower_config(vx300s_emulator), retry_period_s=0.05)
    assert supervisor.start()
    vx300s_emulator.set_hardware_error(7, 0x20, persistent=True)   # overload on wrist_angle
    assert supervisor.cycle().alerts == (7,)
    assert supervisor.state == 'fault'
    diag = supervisor.diagnostics()
    assert diag.level == 'ERROR' and 'overload' in diag.values['hardware_error_id7']
    # Hold: commands are refused and nothing is written while faulted.
    assert not supervisor.set_command(['waist'], [0.3]).accepted
    time.sleep(0.1)
    supervisor.cycle()                       # reboot attempt: the cause persists
    assert supervisor.state == 'fault' and vx300s_emulator.motors[1].goal == 2048
    vx300s_emulator.clear_fault_cause(7)
    time.sleep(0.1)
    supervisor.cycle()
    assert supervisor.state == 'active' and supervisor.counters['recoveries'] == 1
    assert vx300s_emulator.register(7, 'Torque_Enable') == 1
    assert supervisor.set_command(['waist'], [0.3]).accepted
    supervisor.cycle()
    time.sleep(0.05)
    assert vx300s_emulator.motors[1].goal == round(2048 + 0.3 * 4096 / (2 * math.pi))
    supervisor.close()


def test_port_vanishing_raises_connection_error_and_reconnects(vx300s_emulator):
    bus = DynamixelBus(vx300s_emulator.port_path)
    bus.connect()
    vx300s_emulator.vanish()
    with pytest.raises(PortLostError) as info:
        bus.read(1, 'Present_Position')
    assert isinstance(info.value, ConnectionError)
    supervisor = ArmSupervisor(follower_config(vx300s_emulator), retry_period_s=0.05)
    assert not supervisor.start() and supervisor.state == 'port_lost'
    assert 'does not exist' in supervisor.diagnostics().message
    vx300s_emulator.restore()
    time.sleep(0.1)
    assert supervisor.cycle() is None and supervisor.state == 'active'    # reconnected
    assert supervisor.cycle() is not None
    supervisor.close()


def test_bad_input_wrong_id_missing_port_unknown_key(vx300s_emulator, tmp_path):
    config = follower_config(vx300s_emulator, ids={'gripper': 42})
    with pytest.raises(DynamixelCommError, match=r'motor ID 42 does not answer on .*ttyDXL'):
        Arm(config).connect()
    leader_ids = parse_arm('leader_left', {'port': vx300s_emulator.port_path})   # wrong models
    with pytest.raises(RuntimeError, match=r'ID 1 \(waist\) is model 1120 \(XM540-W270\), '
                                           r'expected XM430-W350'):
        Arm(leader_ids).connect()
    with pytest.raises(PortLostError, match='/dev/ttyDXL_nowhere does not exist'):
        DynamixelBus('/dev/ttyDXL_nowhere').connect()
    with pytest.raises(CalibrationError, match=r"unknown key 'current_limit'.*allowed keys"):
        parse_arm('follower_left', {'port': 'ttyDXL_follower_left', 'current_limit': 300})
    with pytest.raises(CalibrationError, match=r"arms\.follower_left\.ids\.gripper"):
        parse_arm('follower_left', {'port': 'x', 'ids': {'gripper': 300}})
    with pytest.raises(CalibrationError, match="unknown key 'follower_middle'"):
        parse_arms({'follower_middle': {'port': 'x'}})
    yaml_path = tmp_path / 'robot.yaml'
    yaml_path.write_text(open('calibration/aloha_stationary.yaml').read().replace(
        '    gripper_current_limit: 300\n', '    gripper_curent_limit: 300\n', 1))
    with pytest.raises(CalibrationError, match="did you mean 'gripper_current_limit'"):
        parse_arms(load_calibration(str(yaml_path)).arms, str(yaml_path))
    example = parse_arms(load_calibration('aloha_stationary').arms)
    assert example['leader_left'].port_path == '/dev/ttyDXL_leader_left'
    assert not example['leader_left'].is_follower
