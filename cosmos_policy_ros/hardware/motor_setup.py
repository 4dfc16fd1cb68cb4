"""Bring-up configuration of one arm's motors from the robot file, verified. ROS-free.

    settings = desired_settings(config)        # [Setting]: what every motor must hold
    values = configure_motors(bus, config)     # write what differs, calibrate shadows, verify

As Interbotix's motor configs (aloha_vx300s.yaml / aloha_wx250s.yaml) do at bring-up:
EEPROM Return_Delay_Time 0, Drive_Mode (a shadow mirrors its primary), Secondary_ID (a shadow
follows its primary's goals; every other motor 255), Operating_Mode, Velocity_Limit,
Min/Max_Position_Limit (the arm's joint limits in ticks) and, on a follower gripper,
Current_Limit; then RAM: Profile_Velocity/Acceleration on every motor (a shadow with another
profile than its primary fights it while moving) and Goal_Current <= Current_Limit on a
current-based gripper (a change of Operating_Mode resets it to the limit of that moment).
Like Interbotix's shadow `calibrate: true`, a shadow whose Present_Position differs from its
primary's gets its Homing_Offset corrected (by measurement, with torque off).

EEPROM is written only where it differs (a configured arm keeps its torque: no drop), with
torque off on the motors written; primaries before shadows, because a shadow also executes
writes addressed to its Secondary_ID. Everything is then read back; any mismatch raises
MotorConfigError naming motor, register, expected and found, and the caller must not enable
torque.
"""
from dataclasses import dataclass

from cosmos_policy_ros.hardware.arm_config import SHADOWS, ArmConfig
from cosmos_policy_ros.hardware.dynamixel import protocol
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelBus, register
from cosmos_policy_ros.hardware.dynamixel.tables import TICKS_PER_REV, OperatingMode
from cosmos_policy_ros.names import GRIPPER

# Shadows may differ from their primary by this much [ticks] (0.7 deg) before recalibrating.
SHADOW_TOLERANCE_TICKS = 8
_EEPROM_BLOCK = (9, 56 - 9)        # Return_Delay_Time .. Min_Position_Limit
_RAM_BLOCK = (102, 116 - 102)      # Goal_Current .. Profile_Velocity


class MotorConfigError(RuntimeError):
    """A motor does not hold the configuration after writing it; torque must stay off."""


@dataclass(frozen=True)
class Setting:
    dxl_id: int
    slot: str
    register: str
    value: int

    @property
    def eeprom(self) -> bool:
        return register(self.register).address < 64


def desired_settings(config: ArmConfig) -> list:
    """Every (motor, register, value) the arm needs, EEPROM first, from the robot file."""
    eeprom, ram = [], []
    slots = config.motor_ids()
    for slot, dxl_id in slots.items():
        joint = SHADOWS.get(slot, slot)
        model = config.motor_model(slot)
        mode = config.operating_mode(joint)
        low, high = (0, TICKS_PER_REV - 1) if joint == GRIPPER else config.tick_limits(joint)
        values = {'Return_Delay_Time': 0,
                  'Drive_Mode': config.arm_model.drive_modes.get(slot, 0),
                  'Secondary_ID': slots[joint] if slot in SHADOWS else 255,
                  'Operating_Mode': int(mode), 'Velocity_Limit': config.velocity_limit,
                  'Max_Position_Limit': high, 'Min_Position_Limit': low}
        current_mode = mode == OperatingMode.CURRENT_BASED_POSITION and model.has_current
        if current_mode:
            values['Current_Limit'] = config.gripper_current_limit
        eeprom += [Setting(dxl_id, slot, name, value) for name, value in values.items()]
        ram += [Setting(dxl_id, slot, 'Profile_Velocity', config.profile_velocity),
                Setting(dxl_id, slot, 'Profile_Acceleration', config.profile_acceleration)]
        if current_mode:
            ram.append(Setting(dxl_id, slot, 'Goal_Current', config.gripper_current_limit))
    return eeprom + ram


def _values(blocks: dict, settings) -> dict:
    """{(id, register): value} decoded from sync-read blocks {id: (start, data)}."""
    out = {}
    for s in settings:
        reg = register(s.register)
        start, data = blocks[s.dxl_id]
        if start <= reg.address and reg.address + reg.size <= start + len(data):
            offset = reg.address - start
            out[(s.dxl_id, s.register)] = protocol.from_le(data[offset:offset + reg.size],
                                                           signed=reg.signed)
    return out


def read_settings(bus: DynamixelBus, settings) -> dict:
    """Current {(id, register): value} of `settings`, in two sync reads."""
    ids = sorted({s.dxl_id for s in settings})
    values = {}
    for start, length in (_EEPROM_BLOCK, _RAM_BLOCK):
        replies = bus.sync_read(ids, start, length)
        values.update(_values({i: (start, data) for i, (data, _) in replies.items()}, settings))
    return values


def _describe(setting: Setting, found) -> str:
    return (f'motor {setting.dxl_id} ({setting.slot}) {setting.register}: expected '
            f'{setting.value}, found {found}')


def _write_differing(bus: DynamixelBus, settings, refused: dict) -> None:
    found = read_settings(bus, settings)
    wrong = [s for s in settings if found.get((s.dxl_id, s.register)) != s.value]
    bus.set_torque(sorted({s.dxl_id for s in wrong if s.eeprom}), False)
    for s in wrong:
        try:
            bus.write(s.dxl_id, s.register, s.value)
        except RuntimeError as exc:      # refused by the motor: reported with the others
            refused[(s.dxl_id, s.register)] = str(exc).split(': ', 1)[-1]


def configure_motors(bus: DynamixelBus, config: ArmConfig, where: str = '') -> dict:
    """Write what differs (EEPROM with torque off on those motors), calibrate the shadows,
    then RAM (a mode switch resets Goal_Current), verify everything; returns
    {(id, register): value}. Raises MotorConfigError."""
    settings = desired_settings(config)
    shadows = set(config.shadow_ids())
    refused: dict = {}
    # A write to a primary also reaches its shadow (Secondary_ID): primaries first, then the
    # shadows' own values, each group compared with what it holds just before.
    for stage in (True, False):
        if not stage:
            calibrate_shadows(bus, config)
        for shadow_group in (False, True):
            _write_differing(bus, [s for s in settings if s.eeprom == stage
                                   and (s.dxl_id in shadows) == shadow_group], refused)
    after = read_settings(bus, settings)
    bad = []
    for s in settings:
        key = (s.dxl_id, s.register)
        if after.get(key) != s.value:
            bad.append(_describe(s, after.get(key))
                       + (f' (the motor refused it: {refused[key]})' if key in refused else ''))
    bad += shadow_mismatches(bus, config)
    if bad:
        raise MotorConfigError(f'{where}configuration did not take, torque stays off: '
                               + '; '.join(bad) + '. Check the motor IDs/models in the robot '
                               'file, or reset the motor in Dynamixel Wizard')
    return after


def _shadow_pairs(config: ArmConfig) -> list:
    slots = config.motor_ids()
    return [(shadow, slots[shadow], primary, slots[primary])
            for shadow, primary in SHADOWS.items() if shadow in slots]


def shadow_mismatches(bus: DynamixelBus, config: ArmConfig) -> list:
    """'shadow ... Present_Position: expected P, found S' for shadows off their primary."""
    bad = []
    for shadow, shadow_id, primary, primary_id in _shadow_pairs(config):
        p, s = (bus.read(i, 'Present_Position') for i in (primary_id, shadow_id))
        if abs(p - s) > SHADOW_TOLERANCE_TICKS:
            bad.append(f'motor {shadow_id} ({shadow}) Present_Position: expected {p} (as '
                       f'{primary} ID {primary_id}, +-{SHADOW_TOLERANCE_TICKS}), found {s}')
    return bad


def calibrate_shadows(bus: DynamixelBus, config: ArmConfig) -> None:
    """Give each shadow the Homing_Offset that makes it read its primary's position."""
    for _, shadow_id, _, primary_id in _shadow_pairs(config):
        primary = bus.read(primary_id, 'Present_Position')
        diff = primary - bus.read(shadow_id, 'Present_Position')
        if abs(diff) <= SHADOW_TOLERANCE_TICKS:
            continue
        offset = bus.read(shadow_id, 'Homing_Offset')
        bus.set_torque([shadow_id], False)
        # e-Manual: Present_Position = actual position + Homing_Offset; if a firmware applies
        # the offset before the reverse direction instead, the other sign is the right one.
        for candidate in (offset + diff, offset - diff):
            bus.write(shadow_id, 'Homing_Offset', candidate)
            if abs(primary - bus.read(shadow_id, 'Present_Position')) <= \
                    SHADOW_TOLERANCE_TICKS:
                break
