"""Bring-up of factory-fresh and misconfigured arms, goal limits at the edges, the gripper's
Goal_Current (issue 12, items 1, 2, 4, 5): ArmSupervisor on the real dynamixel-sdk against the
pty bus emulator."""
import math
import time

import pytest
import yaml

from cosmos_policy_ros.calibration import CalibrationError, load_calibration
from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import ARM_MODELS, DEFAULT_IDS, parse_arm, parse_arms
from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator
from cosmos_policy_ros.hardware.supervisor import ArmSupervisor
from cosmos_policy_ros.health import Level

STATIONARY = load_calibration('aloha_stationary')


def follower(emu, robot_limits=STATIONARY.joint_limits, **entry):
    return parse_arm('follower_left', {'port': emu.port_path, **entry}, '', robot_limits)


def run_cycles(supervisor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        supervisor.cycle()
        time.sleep(0.01)


def send(supervisor) -> None:
    """A cycle that writes the pending goal, then one whose read (answered in order) proves
    the emulator applied that status-less sync write."""
    supervisor.cycle()
    supervisor.cycle()


def goal_ticks(emu, joint: str) -> int:
    return emu.motors[DEFAULT_IDS[joint]].goal


def test_goals_at_plus_and_minus_pi_reach_the_motor(vx300s_emulator):
    """Limits of +-pi round to tick 4096, which Max_Position_Limit 4095 refuses silently."""
    emu = vx300s_emulator
    supervisor = ArmSupervisor(follower(emu))
    assert supervisor.start(), supervisor.last_error
    for target, tick in ((math.pi, 4095), (-math.pi, 0), (4.0, 4095), (-4.0, 0)):
        clamped = supervisor.set_command(['waist', 'forearm_roll', 'wrist_rotate'], [target] * 3)
        assert set(clamped) >= {'waist'}
        send(supervisor)
        for joint in ('waist', 'forearm_roll', 'wrist_rotate'):
            assert emu.register(DEFAULT_IDS[joint], 'Goal_Position') == tick, (joint, target)
    assert emu.stats.rejected == []               # the motors refused no goal
    # Limited joints end at the motors' own position limits, also in ticks.
    supervisor.set_command(['shoulder', 'wrist_angle'], [-9.0, 9.0])
    send(supervisor)
    assert goal_ticks(emu, 'shoulder') == emu.register(2, 'Min_Position_Limit') == 842
    assert goal_ticks(emu, 'wrist_angle') == emu.register(7, 'Max_Position_Limit') == 3504
    assert emu.stats.rejected == []
    supervisor.close()


def test_top_level_joint_limits_intersect_the_arm_limits(vx300s_emulator, tmp_path):
    data = yaml.safe_load(open('calibration/aloha_stationary.yaml'))
    data['joint_limits']['elbow'] = [-1.0, 1.2]
    data['arms'] = {'follower_left': {'port': vx300s_emulator.port_path,
                                      'joint_limits': {'elbow': [-1.5, 0.9]}},
                    'leader_left': {'port': vx300s_emulator.port_path}}
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    calibration = load_calibration(str(path))
    arms = parse_arms(calibration.arms, calibration.source, calibration.joint_limits)
    assert arms['follower_left'].limits('elbow') == (-1.0, 0.9)       # both applied
    assert arms['leader_left'].limits('elbow') == ARM_MODELS['aloha_wx250s'].joint_limits[
        'elbow']                                                         # leaders: their own
    supervisor = ArmSupervisor(arms['follower_left'])
    assert supervisor.start(), supervisor.last_error
    # The elbow motors' position limits are [-1.0, 0.9] rad in ticks, rounded inward.
    low, high = math.ceil(2048 - 1.0 * 4096 / (2 * math.pi)), math.floor(2048 + 0.9 * 4096
                                                                           / (2 * math.pi))
    for dxl_id in (4, 5):
        assert vx300s_emulator.register(dxl_id, 'Min_Position_Limit') == low
        assert vx300s_emulator.register(dxl_id, 'Max_Position_Limit') == high
    for command, expected in ((5.0, high), (-5.0, low), (0.5, round(2048 + 0.5 * 4096
                                                                     / (2 * math.pi)))):
        clamped = supervisor.set_command(['elbow'], [command])
        assert clamped == (('elbow',) if abs(command) > 1 else ())
        send(supervisor)
        assert goal_ticks(vx300s_emulator, 'elbow') == expected
    assert vx300s_emulator.stats.rejected == []
    supervisor.close()
    data['joint_limits']['elbow'] = [1.0, 1.2]                         # disjoint: an error
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match=r'arms\.follower_left: joint_limits\.elbow .* '
                                               r'top-level joint_limits\.elbow .* do not overlap'):
        parse_arms(data['arms'], str(path), load_calibration(str(path)).joint_limits)


@pytest.fixture
def fresh_arm(fast_thread_switching):
    """A factory-fresh follower (Return_Delay_Time 250, Drive_Mode 0, no Secondary_ID) whose
    shadows are mounted a little off their primaries, as real ones are."""
    with DynamixelEmulator.for_arm('aloha_vx300s', factory_fresh=True,
                                   mount_errors={3: 37, 5: -21}, overload_s=0.4) as emu:
        yield emu


def test_factory_fresh_arm_is_configured_once_and_never_fights(fresh_arm):
    emu = fresh_arm
    supervisor = ArmSupervisor(follower(emu), retry_period_s=0.1)
    assert supervisor.start(), supervisor.last_error
    assert supervisor.state == 'active'
    drive = ARM_MODELS['aloha_vx300s'].drive_modes
    for slot, dxl_id in DEFAULT_IDS.items():
        assert emu.register(dxl_id, 'Return_Delay_Time') == 0
        assert emu.register(dxl_id, 'Drive_Mode') == drive.get(slot, 0), slot
        assert emu.register(dxl_id, 'Velocity_Limit') == 131
        assert emu.register(dxl_id, 'Torque_Enable') == 1
    assert (emu.register(3, 'Secondary_ID'), emu.register(5, 'Secondary_ID')) == (2, 4)
    assert emu.register(1, 'Secondary_ID') == 255
    for primary, shadow in ((2, 3), (4, 5)):                 # homing calibrated: same reading
        assert abs(emu.register(primary, 'Present_Position')
                   - emu.register(shadow, 'Present_Position')) <= 1
    delay = emu.stats.return_delay_s
    supervisor.cycle()
    assert emu.stats.return_delay_s == delay                  # status packets without delay
    # A 0.3 rad shoulder move (and an elbow move): primary and shadow move together.
    supervisor.set_command(['shoulder', 'elbow'], [0.3, -0.4])          # accepted: no raise
    run_cycles(supervisor, 1.0)                               # > overload_s
    assert supervisor.state == 'active'
    for primary, shadow, target in ((2, 3, 0.3), (4, 5, -0.4)):
        present = emu.register(primary, 'Present_Position')
        assert abs(present - round(2048 + target * 4096 / (2 * math.pi))) <= 3
        assert abs(emu.register(shadow, 'Present_Position') - present) <= 1
        for dxl_id in (primary, shadow):
            assert emu.register(dxl_id, 'Hardware_Error_Status') == 0
            assert abs(emu.register(dxl_id, 'Present_Current')) < 100     # no fight
    supervisor.close()
    # Brought up again: nothing to write in EEPROM, torque on, holding.
    writes = emu.stats.eeprom_writes
    again = ArmSupervisor(follower(emu))
    assert again.start(), again.last_error
    assert emu.stats.eeprom_writes == writes and again.state == 'active'
    again.close()


def test_misconfigured_shadow_is_fixed_and_a_failed_verify_keeps_torque_off(fresh_arm):
    emu = fresh_arm
    # An Interbotix-configured arm whose shoulder shadow was flipped by hand: fixed.
    arm = Arm(follower(emu))
    arm.connect()
    arm.bus.write(3, 'Drive_Mode', 1)
    arm.bus.write(9, 'Return_Delay_Time', 100)
    arm.configure()
    assert emu.register(3, 'Drive_Mode') == 0 and emu.register(9, 'Return_Delay_Time') == 0
    arm.close()
    # A motor that does not keep the value: no torque anywhere, the error names all of it.
    emu.ignore_writes(4, 'Drive_Mode')
    emu.motors[4].set('Drive_Mode', 0)
    supervisor = ArmSupervisor(follower(emu), retry_period_s=0.1)
    assert not supervisor.start()
    assert supervisor.state == 'unconfigured'
    assert 'motor 4 (elbow) Drive_Mode: expected 1, found 0' in supervisor.last_error
    assert 'torque stays off' in supervisor.last_error
    assert all(emu.register(i, 'Torque_Enable') == 0 for i in DEFAULT_IDS.values())
    diag = supervisor.diagnostics()
    assert diag.level == Level.ERROR and 'motor 4 (elbow) Drive_Mode' in diag.message
    run_cycles(supervisor, 0.3)                               # retried, still refused
    assert supervisor.state == 'unconfigured'
    assert all(emu.register(i, 'Torque_Enable') == 0 for i in DEFAULT_IDS.values())


def test_gripper_goal_current_is_not_above_its_current_limit(fresh_arm):
    """Switching the gripper to current-based position resets Goal_Current to the Current_Limit
    of that moment (1193); the driver writes it down to gripper_current_limit."""
    emu = fresh_arm
    supervisor = ArmSupervisor(follower(emu, gripper_current_limit=300))
    assert supervisor.start(), supervisor.last_error
    assert emu.register(9, 'Operating_Mode') == 5 and emu.register(9, 'Current_Limit') == 300
    assert emu.register(9, 'Goal_Current') == 300
    emu.obstruct(9, 2048)                                     # an object in the gripper
    supervisor.set_command(['gripper'], [1.0])
    run_cycles(supervisor, 0.3)
    assert abs(emu.register(9, 'Present_Current')) == 300
    # A reboot resets RAM; the recovered gripper is limited again.
    supervisor.reboot()
    assert emu.register(9, 'Goal_Current') == 300 and supervisor.state == 'active'
    supervisor.close()


def test_profile_velocity_above_velocity_limit_is_refused_by_name(vx300s_emulator):
    with pytest.raises(CalibrationError, match=r'arms\.follower_left\.profile_velocity: 200 '
                                               r'exceeds velocity_limit 131'):
        follower(vx300s_emulator, profile_velocity=200)
