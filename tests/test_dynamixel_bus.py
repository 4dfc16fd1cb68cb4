"""Bus driver, Arm and ArmSupervisor against the emulated bus: config, conversions, faults,
reboots that recover (issue 12 item 3) and messages that name the silent motor (item 6)."""
import math
import time

import numpy as np
import pytest

from cosmos_policy_ros.calibration import CalibrationError, load_calibration
from cosmos_policy_ros.hardware.arm import Arm, ArmSupervisor
from cosmos_policy_ros.hardware.arm_config import parse_arm, parse_arms
from cosmos_policy_ros.hardware.dynamixel import protocol as P
from cosmos_policy_ros.hardware.dynamixel.bus import (
    DynamixelBus,
    DynamixelCommError,
    MotorInstructionError,
    PortLostError,
)
from cosmos_policy_ros.health import Level
from cosmos_policy_ros.joint_command import JointCommandError


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
    # Reconfiguring an already configured arm writes nothing (no torque drop), reads back all.
    writes = vx300s_emulator.stats.instructions.get(3, 0)
    arm.configure()
    assert vx300s_emulator.stats.instructions.get(3, 0) == writes
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
    assert bus.read(9, 'Torque_Enable') == 1
    assert vx300s_emulator.register(9, 'Current_Limit') == 100
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
    tick = 2 * math.pi / 4096                   # within the motor's limit tick (842)
    assert sent[1] == pytest.approx(math.radians(-106), abs=tick) and sent[6] == 1.5
    arm.read()                                      # answered after the sync write is applied
    assert vx300s_emulator.motors[2].goal == round(2048 + math.radians(-106) * 4096
                                                   / (2 * math.pi))
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
    # A motor that stopped answering a sync read is named, not the whole list.
    vx300s_emulator.drop_status(3, ids=[5])
    with pytest.raises(DynamixelCommError, match=r'motor ID 5 did not answer \(IDs 1, 2, 3, 4, '
                                                 r'6, 7, 8, 9 did\)') as info:
        bus.sync_read_state(range(1, 10))
    assert info.value.ids == (5,)
    # A late answer to an earlier instruction (a 4-byte read) is not taken for motor 5's state.
    late_read = P.build_packet(5, P.READ, P.le_bytes(132, 2) + P.le_bytes(4, 2))
    for _ in range(10):
        bus._port.writePort(late_read)
        states = bus.sync_read_state(range(1, 10))
        assert states[5].position == vx300s_emulator.register(5, 'Present_Position')
        assert states[5].voltage == 120
    bus.close()


def test_silent_motor_is_named_by_the_arm(vx300s_emulator):
    supervisor = ArmSupervisor(follower_config(vx300s_emulator))
    assert supervisor.start()
    vx300s_emulator.drop_status(1000, ids=[5])
    assert supervisor.cycle() is None
    assert 'motor 5 (elbow_shadow) stopped answering' in supervisor.last_error
    assert '1, 2, 3, 4, 5' not in supervisor.last_error
    assert 'elbow_shadow' in supervisor.diagnostics().message
    vx300s_emulator.drop_status(0)
    assert supervisor.cycle() is not None and supervisor.state == 'active'
    supervisor.close()


def test_hardware_error_holds_then_recovers_after_the_cause_clears(vx300s_emulator):
    supervisor = ArmSupervisor(follower_config(vx300s_emulator), retry_period_s=0.05)
    assert supervisor.start()
    vx300s_emulator.set_hardware_error(7, 0x20, persistent=True)   # overload on wrist_angle
    assert supervisor.cycle().alerts == (7,)
    assert supervisor.state == 'fault'
    diag = supervisor.diagnostics()
    assert diag.level == Level.ERROR and 'overload' in diag.values['hardware_error_id7']
    # Hold: commands are refused and nothing is written while faulted.
    with pytest.raises(JointCommandError, match='not active; goal dropped'):
        supervisor.set_command(['waist'], [0.3])
    time.sleep(0.1)
    supervisor.cycle()                       # reboot attempt: the cause persists
    assert supervisor.state == 'fault' and vx300s_emulator.motors[1].goal == 2048
    vx300s_emulator.clear_fault_cause(7)
    time.sleep(0.1)
    supervisor.cycle()
    assert supervisor.state == 'active' and supervisor.counters['recoveries'] == 1
    assert vx300s_emulator.register(7, 'Torque_Enable') == 1
    assert supervisor.set_command(['waist'], [0.3]) == ()
    supervisor.cycle()
    time.sleep(0.05)
    assert vx300s_emulator.motors[1].goal == round(2048 + 0.3 * 4096 / (2 * math.pi))
    supervisor.close()


@pytest.fixture
def slow_reboot(fast_thread_switching):
    """A follower whose motors take 1 s to restart (the driver once pinged after 0.1 s)."""
    from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator
    with DynamixelEmulator.for_arm('aloha_vx300s', reboot_time_s=1.0) as emulator:
        yield emulator


def test_reboot_waits_for_slow_motors_and_verifies_holding(slow_reboot):
    emu = slow_reboot
    supervisor = ArmSupervisor(follower_config(emu), retry_period_s=0.2)
    assert supervisor.start()
    supervisor.set_command(['waist'], [0.4])
    supervisor.cycle()
    time.sleep(0.5)
    message = supervisor.reboot()
    assert 'rebooted 9 motors' in message and supervisor.state == 'active', message
    waited = float(message.split('after ')[1].split(' s')[0])
    assert waited >= 1.0
    for dxl_id in range(1, 10):                  # every motor holds, where the arm is
        assert emu.register(dxl_id, 'Torque_Enable') == 1
        assert abs(emu.motors[dxl_id].goal - emu.register(dxl_id, 'Present_Position')) <= 2
    # One motor that does not come back: the reboot fails naming it, never `active`.
    emu.reboot_times[5] = 3.0
    supervisor.reboot_timeout_s = 1.5
    with pytest.raises(RuntimeError, match=r'motor 5 \(elbow_shadow\) did not come back within'):
        supervisor.reboot()
    assert supervisor.state == 'fault'
    assert supervisor.diagnostics().level == Level.ERROR
    deadline = time.monotonic() + 5.0            # it answers again: recovered by the cycle
    while supervisor.state != 'active' and time.monotonic() < deadline:
        supervisor.cycle()
        time.sleep(0.02)
    assert supervisor.state == 'active', supervisor.last_error
    assert all(emu.register(i, 'Torque_Enable') == 1 for i in range(1, 10))
    supervisor.close()


def test_a_motor_that_restarts_by_itself_is_never_reported_active(slow_reboot):
    emu = slow_reboot
    supervisor = ArmSupervisor(follower_config(emu), retry_period_s=0.2,
                               torque_check_period_s=0.1)
    assert supervisor.start()
    emu.power_cycle(3)                           # supply dip: torque off, no ALERT bit
    deadline = time.monotonic() + 3.0
    while supervisor.state == 'active' and time.monotonic() < deadline:
        supervisor.cycle()
        time.sleep(0.02)
    assert supervisor.state == 'fault'
    assert 'motor 3 (shoulder_shadow) lost torque' in supervisor.diagnostics().message
    with pytest.raises(JointCommandError, match='not active'):
        supervisor.set_command(['waist'], [0.1])
    deadline = time.monotonic() + 5.0            # auto_recover: torque back, verified
    while supervisor.state != 'active' and time.monotonic() < deadline:
        supervisor.cycle()
        time.sleep(0.02)
    assert supervisor.state == 'active' and emu.register(3, 'Torque_Enable') == 1
    assert supervisor.counters['recoveries'] == 1
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


def test_bus_rate_loop_runs_on_deadlines_and_stops():
    """The arm driver's bus thread: steps at the rate, skips ahead when late, and stops."""
    from cosmos_policy_ros.hardware.rate_loop import RateLoop
    calls = []
    loop = RateLoop(lambda: calls.append(time.monotonic()), rate_hz=200.0, name='test-bus')
    loop.start()
    deadline = time.monotonic() + 5.0
    while len(calls) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    count = len(calls)
    assert count >= 10
    time.sleep(0.05)
    assert len(calls) == count                   # stopped: no step after stop()
    slow = RateLoop(lambda: time.sleep(0.03), rate_hz=100.0).start()
    while slow.late < 2 and time.monotonic() < deadline + 5.0:
        time.sleep(0.01)
    slow.stop()
    assert slow.late >= 2                        # more than a period late: schedule restarts
    with pytest.raises(ValueError, match='rate_hz must be > 0'):
        RateLoop(lambda: None, rate_hz=0.0)
