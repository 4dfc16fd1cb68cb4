"""The bus emulator behaves as the ROBOTIS e-Manual describes an X-series motor, as seen by
the real dynamixel-sdk (through DynamixelBus) on a pty: the behaviours the driver fixes of
issue 12 rely on (reverse Drive_Mode, shadow fights, limits, Goal_Current, Return_Delay_Time,
EEPROM with torque off, reboot delay, profile velocity 0)."""
import time

import pytest
from dynamixel_sdk import COMM_SUCCESS, PortHandler, Protocol2PacketHandler
from polling import eventually

from cosmos_policy_ros.hardware.dynamixel import protocol as P
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelBus, MotorInstructionError
from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator


@pytest.fixture
def fresh(fast_thread_switching):
    """A factory-fresh aloha_vx300s bus (Return_Delay_Time 250, Drive_Mode 0, no shadows)."""
    with DynamixelEmulator.for_arm('aloha_vx300s', factory_fresh=True, overload_s=0.3,
                                   reboot_time_s=0.4) as emulator:
        bus = DynamixelBus(emulator.port_path)
        bus.connect()
        yield emulator, bus
        bus.close()


def test_reverse_drive_mode_mirrors_present_position(fresh):
    emu, bus = fresh
    emu.set_position(1, 2048 + 300)
    assert bus.read(1, 'Present_Position') == 2348
    bus.write(1, 'Drive_Mode', 1)                              # reverse: mirrored reading
    assert bus.read(1, 'Present_Position') == 2048 - 300
    bus.write(1, 'Homing_Offset', 25)                          # Present = actual + offset
    assert bus.read(1, 'Present_Position') == 2048 - 300 + 25


def test_mirrored_shadow_with_the_same_drive_mode_fights_until_overload(fresh):
    """The negative control of the driver's bring-up: primary and shadow with equal
    Drive_Modes pull the shoulder apart; at stall current both trip on overload."""
    emu, bus = fresh
    bus.write(3, 'Secondary_ID', 2)
    bus.set_torque([2, 3], True)
    bus.write(2, 'Goal_Position', 2048 + 196)                  # 0.3 rad; the shadow follows
    assert eventually(lambda: emu.register(2, 'Hardware_Error_Status') == 0x20, 3.0)
    assert emu.register(3, 'Hardware_Error_Status') == 0x20
    assert emu.register(2, 'Torque_Enable') == 0
    # Opposite Drive_Modes (as Interbotix configures the shoulder) track together.
    bus.reboot(2)
    bus.reboot(3)
    bus.wait_for_motors([2, 3])
    bus.write(2, 'Drive_Mode', 1)
    assert emu.register(3, 'Drive_Mode') == 1     # a shadow executes writes to its primary
    bus.write(3, 'Drive_Mode', 0)
    start = bus.read(2, 'Present_Position')
    assert bus.read(3, 'Present_Position') == start
    bus.write(2, 'Goal_Position', start + 196)
    bus.set_torque([2, 3], True)
    assert eventually(lambda: abs(emu.register(3, 'Present_Position') - (start + 196)) <= 2)
    time.sleep(0.4)                                            # longer than overload_s
    assert emu.register(2, 'Hardware_Error_Status') == 0
    assert abs(emu.register(2, 'Present_Current')) < 50


def test_goal_outside_max_position_limit_is_refused(fresh):
    emu, bus = fresh
    bus.set_torque([1], True)
    bus.sync_write('Goal_Position', {1: 4096})                 # +pi rounded: above 4095
    bus.write(1, 'LED', 1)                                     # sync write has no status
    assert emu.motors[1].goal == 2048
    assert emu.stats.rejected == [(1, 116, P.ERR_DATA_LIMIT)]
    with pytest.raises(MotorInstructionError, match='data limit error'):
        bus.write(1, 'Goal_Position', 4096)
    bus.write(1, 'Goal_Position', 4095)
    assert emu.motors[1].goal == 4095


def test_mode_switch_resets_goal_current_above_a_lowered_current_limit(fresh):
    emu, bus = fresh
    bus.write(9, 'Operating_Mode', 5)                          # current-based position
    bus.write(9, 'Current_Limit', 300)
    assert emu.register(9, 'Goal_Current') == 1193             # the limit at the switch
    with pytest.raises(MotorInstructionError, match='data limit error'):
        bus.write(9, 'Goal_Current', 400)                      # above Current_Limit
    bus.write(9, 'Goal_Current', 120)
    bus.set_torque([9], True)
    emu.obstruct(9, 2048)
    bus.write(9, 'Goal_Position', 2600)
    assert eventually(lambda: abs(emu.register(9, 'Present_Current')) == 120)


def test_return_delay_eeprom_torque_rule_and_profile_velocity(fresh):
    emu, bus = fresh
    before = emu.stats.return_delay_s
    bus.sync_read_state(range(1, 10))
    assert emu.stats.return_delay_s - before == pytest.approx(9 * 250 * 2e-6)
    bus.set_torque([4], True)
    with pytest.raises(MotorInstructionError, match='EEPROM write needs torque off'):
        bus.write(4, 'Return_Delay_Time', 0)
    bus.set_torque([4], False)
    bus.write(4, 'Return_Delay_Time', 0)
    before = emu.stats.return_delay_s
    bus.sync_read_state([4])
    assert emu.stats.return_delay_s == before
    # Profile_Velocity: at most Velocity_Limit; 0 means no limit (full speed), e-Manual.
    with pytest.raises(MotorInstructionError, match='data limit error'):
        bus.write(1, 'Profile_Velocity', emu.register(1, 'Velocity_Limit') + 1)
    bus.write(1, 'Velocity_Limit', 10)
    bus.set_torque([1], True)
    bus.write(1, 'Goal_Position', 3048)
    time.sleep(0.2)
    moved = emu.register(1, 'Present_Position') - 2048
    assert moved > 100          # Velocity_Limit 10 would allow 0.3 ticks in 0.2 s


def test_reboot_makes_the_motor_silent_for_a_while(fresh):
    emu, bus = fresh
    bus.set_torque([6], True)
    ph = Protocol2PacketHandler()
    port = PortHandler(emu.port_path)
    bus.close()
    assert port.openPort()
    try:
        assert ph.reboot(port, 6) == (COMM_SUCCESS, 0)
        assert ph.ping(port, 6)[1] != COMM_SUCCESS             # restarting: no answer
        assert eventually(lambda: ph.ping(port, 6)[1] == COMM_SUCCESS, 2.0)
        assert ph.read1ByteTxRx(port, 6, 64) == (0, COMM_SUCCESS, 0)   # RAM reset: torque off
    finally:
        port.closePort()
