"""Control tables of the ALOHA motor models, as data (Protocol 2.0, X series). ROS-free.

Source: ROBOTIS e-Manual pages of XM430-W350, XM540-W270, XL430-W250, XC430-W150 (see
shared/reference/dynamixel_notes.md). The four share addresses; XL430/XC430 report Present Load
(0.1 %) at 126 instead of Present Current and have no Current Limit register nor current-based
position mode.
"""
from dataclasses import dataclass
from enum import IntEnum


class OperatingMode(IntEnum):
    CURRENT = 0
    VELOCITY = 1
    POSITION = 3
    EXTENDED_POSITION = 4
    CURRENT_BASED_POSITION = 5
    PWM = 16


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    eeprom: bool = False
    signed: bool = False


_X_SERIES = (
    Register('Model_Number', 0, 2, eeprom=True),
    Register('Firmware_Version', 6, 1, eeprom=True),
    Register('ID', 7, 1, eeprom=True),
    Register('Baud_Rate', 8, 1, eeprom=True),
    Register('Return_Delay_Time', 9, 1, eeprom=True),
    Register('Drive_Mode', 10, 1, eeprom=True),
    Register('Operating_Mode', 11, 1, eeprom=True),
    Register('Secondary_ID', 12, 1, eeprom=True),
    Register('Homing_Offset', 20, 4, eeprom=True, signed=True),
    Register('Current_Limit', 38, 2, eeprom=True),
    Register('Velocity_Limit', 44, 4, eeprom=True),
    Register('Max_Position_Limit', 48, 4, eeprom=True),
    Register('Min_Position_Limit', 52, 4, eeprom=True),
    Register('Torque_Enable', 64, 1),
    Register('LED', 65, 1),
    Register('Status_Return_Level', 68, 1),
    Register('Hardware_Error_Status', 70, 1),
    Register('Position_D_Gain', 80, 2),
    Register('Position_I_Gain', 82, 2),
    Register('Position_P_Gain', 84, 2),
    Register('Goal_Current', 102, 2, signed=True),
    Register('Goal_Velocity', 104, 4, signed=True),
    Register('Profile_Acceleration', 108, 4),
    Register('Profile_Velocity', 112, 4),
    Register('Goal_Position', 116, 4, signed=True),
    Register('Moving', 122, 1),
    Register('Present_Current', 126, 2, signed=True),
    Register('Present_Velocity', 128, 4, signed=True),
    Register('Present_Position', 132, 4, signed=True),
    Register('Present_Input_Voltage', 144, 2),
    Register('Present_Temperature', 146, 1),
)

# Hardware Error Status bits (address 70).
HARDWARE_ERROR_BITS = {
    0: 'input voltage',
    2: 'overheating',
    3: 'motor encoder',
    4: 'electrical shock',
    5: 'overload',
}


def describe_hardware_error(bits: int) -> str:
    names = [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & (1 << bit)]
    return ', '.join(names) if names else f'unknown bits {bits:#04x}' if bits else 'none'


@dataclass(frozen=True)
class MotorModel:
    name: str
    number: int
    has_current: bool            # Present_Current + Current_Limit (else Present Load, 0.1 %)
    current_unit_ma: float       # mA per Present_Current unit (0 when has_current is False)
    default_current_limit: int   # factory Current_Limit (register units)
    modes: tuple                 # supported OperatingMode values

    def registers(self) -> dict:
        return {reg.name: reg for reg in _X_SERIES
                if self.has_current or reg.name != 'Current_Limit'}

    def register(self, name: str) -> Register:
        table = self.registers()
        if name not in table:
            raise KeyError(f'{self.name} has no register {name!r}; it has {sorted(table)}')
        return table[name]


_FULL_MODES = tuple(OperatingMode)
_NO_CURRENT_MODES = (OperatingMode.VELOCITY, OperatingMode.POSITION,
                     OperatingMode.EXTENDED_POSITION, OperatingMode.PWM)

MODELS = {model.name: model for model in (
    MotorModel('XM430-W350', 1020, True, 2.69, 1193, _FULL_MODES),
    MotorModel('XM540-W270', 1120, True, 2.69, 2047, _FULL_MODES),
    MotorModel('XL430-W250', 1060, False, 0.0, 0, _NO_CURRENT_MODES),
    MotorModel('XC430-W150', 1070, False, 0.0, 0, _NO_CURRENT_MODES),
)}
MODELS_BY_NUMBER = {model.number: model for model in MODELS.values()}

TICKS_PER_REV = 4096
CENTER_TICK = 2048
VELOCITY_UNIT_RPM = 0.229

# The block read every cycle: Present_Current .. Present_Temperature (126..146, 21 bytes).
# Hardware errors arrive in the same transaction as the ALERT bit of each status packet.
STATE_BLOCK_START = 126
STATE_BLOCK_LENGTH = 146 - 126 + 1
