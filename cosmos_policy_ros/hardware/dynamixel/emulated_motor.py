"""The motors of the bus emulator: control table, write rules and joint physics. ROS-free.

Each EmulatedMotor holds a control table (tables.py addresses) and applies writes as the
e-Manual describes an X-series motor: EEPROM (addresses < 64) only with torque off, Goal_Position
inside Min/Max_Position_Limit in position mode, Goal_Current within +-Current_Limit,
Profile_Velocity up to Velocity_Limit (0 = no limit: the motor's no-load speed), a change of
Operating_Mode resets the goals (Goal_Current to the Current_Limit of that moment), a reboot
resets RAM. Present_Position = the shaft angle, mirrored about the centre in reverse Drive_Mode
(bit 0), plus Homing_Offset.

A Joint is one or more motors on one rigid joint: a shadow is mounted mirrored to its primary
(shaft_shadow = 4096 - shaft_primary + mount error), so the two agree only when their
Drive_Modes differ in bit 0 and the shadow's Homing_Offset absorbs the mount error. Every
torqued motor pulls the joint toward its goal: when they disagree the joint stalls between
them, the currents saturate and, after `overload_s` at the motor's maximum current, the motor
sets the overload bit and drops torque, as a real pair that fights does.
"""
import math
import time
from dataclasses import dataclass, field

from cosmos_policy_ros.hardware.dynamixel import protocol as P
from cosmos_policy_ros.hardware.dynamixel.tables import (
    CENTER_TICK,
    TICKS_PER_REV,
    VELOCITY_UNIT_RPM,
    MotorModel,
    OperatingMode,
)

TABLE_SIZE = 256
EEPROM_END = 64
READ_ONLY = set(range(0, 7)) | {70} | set(range(122, 147))
ERROR_BITS_REG = 70
OVERLOAD_BIT = 0x20
# Emulator model constants, approximate (ROBOTIS datasheets at 12 V): no-load speed [rpm] and
# stall current [Present_Current units of 2.69 mA; 0.1 % load on XL430/XC430], the present
# current per tick of position error, and the fraction of stall current that overloads.
NO_LOAD_RPM = {'XM430-W350': 46.0, 'XM540-W270': 30.0, 'XL430-W250': 57.0, 'XC430-W150': 70.0}
STALL_CURRENT = {'XM430-W350': 855.0, 'XM540-W270': 1636.0,      # 2.3 A, 4.4 A
                 'XL430-W250': 1000.0, 'XC430-W150': 1000.0}
CURRENT_PER_TICK = 10.0
OVERLOAD_FRACTION = 0.95
_TICKS_PER_S_PER_UNIT = VELOCITY_UNIT_RPM / 60.0 * TICKS_PER_REV

# Factory (ROBOTIS) EEPROM defaults that matter to an ALOHA bring-up.
FACTORY = {'Return_Delay_Time': 250, 'Drive_Mode': 0, 'Secondary_ID': 255,
           'Velocity_Limit': 265, 'Min_Position_Limit': 0,
           'Max_Position_Limit': TICKS_PER_REV - 1, 'Homing_Offset': 0}

_REGISTER_CACHE: dict = {}


def _registers(model: MotorModel) -> tuple:
    """(by name, by address) register tables of a model, built once."""
    if model.name not in _REGISTER_CACHE:
        by_name = model.registers()
        _REGISTER_CACHE[model.name] = (by_name, {r.address: r for r in by_name.values()})
    return _REGISTER_CACHE[model.name]


@dataclass
class EmulatedMotor:
    dxl_id: int
    model: MotorModel
    table: bytearray = field(default_factory=lambda: bytearray(TABLE_SIZE))
    shaft: float = float(CENTER_TICK)  # raw shaft angle [ticks], before Drive_Mode/Homing
    velocity: float = 0.0              # present-frame ticks/s
    temperature: float = 30.0
    current: float = 0.0
    obstacle: float | None = None      # a present position the motor cannot pass (grasp)
    fault_persistent: bool = False     # a reboot clears the error only after clear_fault_cause
    unresponsive_until: float = 0.0
    stalled_s: float = 0.0             # time at the overload current while not moving
    ignored: set = field(default_factory=set)   # register names whose writes do not stick

    def __post_init__(self):
        self._by_name, self._by_address = _registers(self.model)
        self._frame()
        self.set('Model_Number', self.model.number)
        self.set('Firmware_Version', 46)
        self.set('ID', self.dxl_id)
        self.set('Baud_Rate', 3)
        self.set('Operating_Mode', OperatingMode.POSITION)
        if self.model.has_current:
            self.set('Current_Limit', self.model.default_current_limit)
        for name, value in FACTORY.items():
            self.set(name, value)
        self.reset_ram()

    # --- control table ------------------------------------------------------------------
    def get(self, name: str) -> int:
        reg = self._by_name[name]
        return int.from_bytes(self.table[reg.address:reg.address + reg.size], 'little',
                              signed=reg.signed)

    def set(self, name: str, value: int) -> None:
        reg = self._by_name[name]
        self.table[reg.address:reg.address + reg.size] = P.le_bytes(int(value), reg.size)
        if reg.address in (10, 20):
            self._frame()

    def _frame(self) -> None:
        """Cache the Drive_Mode direction and Homing_Offset (read on every physics step)."""
        self._reverse = bool(self.table[10] & 1)
        self._homing = int.from_bytes(self.table[20:24], 'little', signed=True)

    @property
    def goal(self) -> int:
        return self.get('Goal_Position')

    @property
    def error_bits(self) -> int:
        return self.table[ERROR_BITS_REG]

    @property
    def torque_on(self) -> bool:
        return bool(self.table[64]) and not self.error_bits

    @property
    def reverse(self) -> bool:
        return self._reverse

    @property
    def position(self) -> float:
        """Present position [ticks] (Drive_Mode direction and Homing_Offset applied)."""
        return self.to_present(self.shaft)

    def to_present(self, shaft: float) -> float:
        return (TICKS_PER_REV - shaft if self._reverse else shaft) + self._homing

    def to_shaft(self, present: float) -> float:
        raw = present - self._homing
        return TICKS_PER_REV - raw if self._reverse else raw

    def current_cap(self) -> float:
        """Largest |present current|: the stall current, and in current-based position mode
        the smaller of Goal_Current and Current_Limit (e-Manual)."""
        stall = self.max_current()
        if self.model.has_current and \
                self.get('Operating_Mode') == OperatingMode.CURRENT_BASED_POSITION:
            return float(min(stall, self.get('Current_Limit'), abs(self.get('Goal_Current'))))
        return stall

    def max_current(self) -> float:
        return STALL_CURRENT[self.model.name]

    def speed_ticks_s(self) -> float:
        """Profile_Velocity, or the no-load speed when it is 0 (e-Manual: 0 = no limit)."""
        profile = self.get('Profile_Velocity')
        if profile:
            return profile * _TICKS_PER_S_PER_UNIT
        return NO_LOAD_RPM[self.model.name] / 60.0 * TICKS_PER_REV

    def reset_ram(self) -> None:
        """Power-on RAM: torque off, goal = present position, Goal_Current = Current_Limit."""
        self.table[64] = 0
        self.set('Status_Return_Level', 2)
        self.set('Position_P_Gain', 800)
        self.set('Profile_Velocity', 0)
        self.set('Profile_Acceleration', 0)
        self._reset_goals()
        self.velocity, self.stalled_s = 0.0, 0.0
        self.publish()

    def _reset_goals(self) -> None:
        self.set('Goal_Position', int(round(self.position)))
        self.set('Goal_Velocity', 0)
        if self.model.has_current:
            self.set('Goal_Current', self.get('Current_Limit'))

    def write(self, address: int, data: bytes) -> int:
        """Apply a write as the motor would; returns the status error number (0 = done)."""
        reg = self._by_address.get(address)
        if reg is None or address in READ_ONLY:
            return P.ERR_ACCESS
        if len(data) != reg.size:
            return P.ERR_DATA_LENGTH
        if address < EEPROM_END and self.table[64]:
            return P.ERR_ACCESS
        value = P.from_le(data, signed=reg.signed)
        error = self._check(reg.name, value)
        if error or reg.name in self.ignored:
            return error
        mode_change = reg.name == 'Operating_Mode' and value != self.get('Operating_Mode')
        self.table[address:address + reg.size] = data     # Drive_Mode/Homing: a new reading
        self._frame()
        if mode_change:
            self._reset_goals()
        return 0

    def _check(self, name: str, value: int) -> int:
        if name == 'Operating_Mode' and value not in self.model.modes:
            return P.ERR_DATA_RANGE
        if name == 'Torque_Enable' and value and self.error_bits:
            return P.ERR_RESULT_FAIL            # torque stays off until a reboot
        if name == 'Current_Limit' and not 0 <= value <= self.model.default_current_limit:
            return P.ERR_DATA_RANGE
        if name == 'Goal_Current' and abs(value) > self.get('Current_Limit'):
            return P.ERR_DATA_LIMIT
        if name == 'Profile_Velocity' and value > self.get('Velocity_Limit'):
            return P.ERR_DATA_LIMIT
        if name == 'Goal_Position' and self.get('Operating_Mode') == OperatingMode.POSITION:
            if not self.get('Min_Position_Limit') <= value <= self.get('Max_Position_Limit'):
                return P.ERR_DATA_LIMIT
        return 0

    def reboot(self, busy_s: float) -> None:
        """REBOOT (or a power dip): clears the error unless its cause persists, resets RAM,
        and answers nothing for `busy_s`."""
        if not self.fault_persistent:
            self.table[ERROR_BITS_REG] = 0
        self.reset_ram()
        self.unresponsive_until = time.monotonic() + busy_s

    def trip(self, bits: int) -> None:
        self.table[ERROR_BITS_REG] |= bits
        self.table[64] = 0

    def publish(self) -> None:
        """Copy the physical state into the Present_* registers (before they are read)."""
        self.set('Present_Position', int(round(self.position)))
        self.set('Present_Velocity', int(round(self.velocity / _TICKS_PER_S_PER_UNIT)))
        self.set('Present_Current', int(round(self.current)))
        self.set('Present_Input_Voltage', 120)
        self.set('Present_Temperature', int(round(self.temperature)))
        self.table[122] = int(abs(self.goal - self.position) > 2)


class Joint:
    """Motors on one rigid joint: shaft_m = sign_m * q + offset_m (q = the first motor's
    shaft). A single motor is a joint of one."""

    def __init__(self, primary: EmulatedMotor):
        self.motors = [(primary, 1.0, 0.0)]
        self.q = primary.shaft

    def add_mirrored(self, shadow: EmulatedMotor, mount_error: float = 0.0) -> None:
        self.motors.append((shadow, -1.0, TICKS_PER_REV + mount_error))
        shadow.shaft = TICKS_PER_REV + mount_error - self.q

    def set_present(self, motor: EmulatedMotor, present: float) -> None:
        """Move the joint by hand so that `motor` reads `present`."""
        sign, offset = next((s, o) for m, s, o in self.motors if m is motor)
        self.q = (motor.to_shaft(present) - offset) / sign
        for m, s, o in self.motors:
            m.shaft = s * self.q + o
            if not m.table[64]:
                m.set('Goal_Position', int(round(m.position)))
            m.publish()

    def _target_q(self, motor, sign, offset) -> float:
        goal = float(motor.goal)
        if motor.obstacle is not None and (min(motor.position, goal) <= motor.obstacle
                                           <= max(motor.position, goal)):
            goal = motor.obstacle              # the path to the goal crosses the obstacle
        return (motor.to_shaft(goal) - offset) / sign

    def advance(self, dt: float, overload_s: float, max_step_s: float = 0.01) -> None:
        """Integrate `dt` seconds in steps of at most `max_step_s`."""
        steps = max(1, math.ceil(dt / max_step_s))
        for _ in range(steps if dt > 0 else 0):
            self._step(dt / steps, overload_s)

    def _step(self, dt: float, overload_s: float) -> None:
        torqued = [(m, s, o) for m, s, o in self.motors if m.torque_on]
        dq = 0.0
        if torqued:
            target = sum(self._target_q(*t) for t in torqued) / len(torqued)
            max_step = min(m.speed_ticks_s() for m, _, _ in torqued) * dt
            dq = max(-max_step, min(max_step, target - self.q))
            self.q += dq
        for motor, sign, offset in self.motors:
            before = motor.position
            motor.shaft = sign * self.q + offset
            motor.velocity = (motor.position - before) / dt
            self._load(motor, dt, overload_s, moving=abs(dq) > 1e-6)

    @staticmethod
    def _load(motor: EmulatedMotor, dt: float, overload_s: float, moving: bool) -> None:
        if motor.torque_on:
            cap = motor.current_cap()
            error = motor.goal - motor.position
            motor.current = max(-cap, min(cap, CURRENT_PER_TICK * error))
        else:
            motor.current = 0.0
        at_max = abs(motor.current) >= OVERLOAD_FRACTION * motor.max_current()
        motor.stalled_s = motor.stalled_s + dt if at_max and not moving else 0.0
        if motor.stalled_s >= overload_s:
            motor.trip(OVERLOAD_BIT)
            motor.stalled_s = 0.0
        ambient = 30.0 + 40.0 * abs(motor.current) / motor.max_current()
        motor.temperature += (ambient - motor.temperature) * min(1.0, dt / 30.0)
