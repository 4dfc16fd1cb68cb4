"""One ALOHA arm on its Dynamixel bus, and the supervisor that keeps it safe. ROS-free.

    arm = Arm(config)                 # config: hardware.arm_config.ArmConfig
    arm.connect()                     # open port, ping + model check, modes/limits (read-back)
    arm.set_torque(True); state = arm.read()          # ArmState, Interbotix joint_states layout
    arm.write_goal(np.array([...7 rad...]))           # clamped to limits, returns what was sent
    arm.reboot([9]); arm.close()

    supervisor = ArmSupervisor(config, auto_recover=True, retry_period_s=1.0)
    supervisor.start()                 # configure + activate; never raises
    supervisor.set_command(names, positions) -> CommandResult
    state = supervisor.cycle()         # read, fault handling, write the newest goal; never raises
    supervisor.diagnostics() -> Diagnostics(level, message, values)

Faults: a lost status packet is retried by the bus and counted; a motor hardware error
(ALERT bit) puts the arm in `fault`: no goals are sent, the cause is reported, and with
auto_recover the faulted motors are rebooted every retry period until the error clears, then
torque returns with the goal at the present position. A lost port puts it in `port_lost`: the
motors keep their last goal, and the supervisor reconnects every retry period.
Leaders are read-only: torque stays off and commands are rejected.
"""
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from cosmos_policy_ros.hardware.arm_config import SHADOWS, ArmConfig
from cosmos_policy_ros.hardware.dynamixel.bus import (DynamixelBus, DynamixelCommError,
                                                      MotorHardwareError, PortLostError)
from cosmos_policy_ros.hardware.dynamixel.tables import (MODELS_BY_NUMBER, VELOCITY_UNIT_RPM,
                                                         describe_hardware_error)
from cosmos_policy_ros.names import COMMAND_JOINTS, GRIPPER

_RPM_TO_RAD_S = 2 * math.pi / 60.0


@dataclass(frozen=True)
class ArmState:
    position: np.ndarray      # (9,) JOINT_STATE_NAMES: rad, gripper motor rad, fingers m
    velocity: np.ndarray      # (9,) rad/s, m/s
    effort: np.ndarray        # (9,) mA (Present Load 0.1 % on XL430/XC430), fingers 0
    temperatures: dict        # slot -> deg C (shadows included)
    alerts: tuple             # IDs whose status packet had the ALERT bit
    stamp: float              # time.time() after the read


@dataclass(frozen=True)
class CommandResult:
    accepted: bool
    reason: str = ''
    clamped: tuple = ()       # joints whose value was clamped to a limit


@dataclass(frozen=True)
class Diagnostics:
    level: str                # 'OK' | 'WARN' | 'ERROR'
    message: str
    values: dict = field(default_factory=dict)


class Arm:
    def __init__(self, config: ArmConfig, bus: DynamixelBus | None = None):
        self.config = config
        self.bus = bus or DynamixelBus(config.port_path, config.baudrate, config.num_retry)
        self.slots = config.motor_ids()                    # slot -> id
        self.slot_of = {dxl_id: slot for slot, dxl_id in self.slots.items()}
        self.ids = list(self.slots.values())
        self.joint_ids = config.joint_ids()
        self.limits = np.array([config.limits(j) for j in COMMAND_JOINTS], dtype=np.float64)

    def __str__(self) -> str:
        return f'arm {self.config.name} ({self.config.port_path})'

    # --- setup ------------------------------------------------------------------------
    def connect(self) -> dict:
        self.bus.connect()
        self.verify_motors()
        return self.configure()

    def verify_motors(self) -> None:
        for slot, dxl_id in self.slots.items():
            number = self.bus.ping(dxl_id)
            expected = self.config.motor_model(slot)
            if number != expected.number:
                found = MODELS_BY_NUMBER.get(number)
                raise RuntimeError(
                    f'{self}: motor ID {dxl_id} ({slot}) is model {number} '
                    f'({found.name if found else "unknown"}), expected {expected.name} for '
                    f'{self.config.model}; fix arms.{self.config.name}.ids or .model')

    def desired_settings(self) -> list:
        """(id, register, value) the arm needs, EEPROM and RAM."""
        settings = []
        for slot, dxl_id in self.slots.items():
            joint = SHADOWS.get(slot, slot)
            settings.append((dxl_id, 'Operating_Mode', int(self.config.operating_mode(joint))))
            if slot in SHADOWS:
                settings.append((dxl_id, 'Secondary_ID', self.slots[joint]))
            if joint != GRIPPER:
                settings.append((dxl_id, 'Velocity_Limit', self.config.velocity_limit))
            elif self.config.is_follower and self.config.motor_model(slot).has_current:
                settings.append((dxl_id, 'Current_Limit', self.config.gripper_current_limit))
        return settings

    def configure(self) -> dict:
        """Write what differs (torque off only for the motors that need an EEPROM write),
        verify every value by read-back, and return {(id, register): value}."""
        wrong = [(i, name, value) for i, name, value in self.desired_settings()
                 if self.bus.read(i, name) != value]
        if wrong:
            with self.bus.torque_disabled(sorted({i for i, _, _ in wrong})):
                for dxl_id, name, value in wrong:
                    self.bus.write(dxl_id, name, value, verify=True)
        for dxl_id in self.joint_ids:
            self.bus.write(dxl_id, 'Profile_Velocity', self.config.profile_velocity, verify=True)
            self.bus.write(dxl_id, 'Profile_Acceleration', self.config.profile_acceleration,
                           verify=True)
        return {(i, name): self.bus.read(i, name) for i, name, _ in self.desired_settings()}

    def set_torque(self, enabled: bool, ids=None) -> None:
        if enabled and not self.config.is_follower:
            raise RuntimeError(f'{self}: leader arms are read-only; torque stays off')
        self.bus.set_torque(self.ids if ids is None else ids, enabled)

    # --- streaming --------------------------------------------------------------------
    def read(self) -> ArmState:
        motors = self.bus.sync_read_state(self.ids)
        stamp = time.time()
        position, velocity, effort = np.zeros(9), np.zeros(9), np.zeros(9)
        for k, joint in enumerate(COMMAND_JOINTS):
            state = motors[self.slots[joint]]
            model = self.config.motor_model(joint)
            position[k] = self.config.ticks_to_rad(joint, state.position)
            velocity[k] = state.velocity * VELOCITY_UNIT_RPM * _RPM_TO_RAD_S
            effort[k] = state.current * (model.current_unit_ma if model.has_current else 0.1)
        angle, rate = position[6], velocity[6]
        finger = self.config.finger_position(angle)
        slope = (self.config.finger_position(angle + 1e-4) - finger) / 1e-4
        position[7:] = finger, -finger
        velocity[7:] = slope * rate, -slope * rate
        temperatures = {self.slot_of[i]: s.temperature for i, s in motors.items()}
        alerts = tuple(i for i, s in motors.items() if s.alert)
        return ArmState(position, velocity, effort, temperatures, alerts, stamp)

    def read_hardware_errors(self, ids=None) -> dict:
        """{id: Hardware_Error_Status bits} of the given (default: all) motors, nonzero only."""
        errors = {i: self.bus.read(i, 'Hardware_Error_Status') for i in (ids or self.ids)}
        return {i: bits for i, bits in errors.items() if bits}

    def clamp(self, goal: np.ndarray) -> tuple:
        """(clamped goal, names of clamped joints); raises ValueError on non-finite input."""
        goal = np.asarray(goal, dtype=np.float64)
        if goal.shape != (len(COMMAND_JOINTS),):
            raise ValueError(f'{self}: goal must have {len(COMMAND_JOINTS)} values '
                             f'{list(COMMAND_JOINTS)}, got shape {goal.shape}')
        bad = [j for j, v in zip(COMMAND_JOINTS, goal) if not np.isfinite(v)]
        if bad:
            raise ValueError(f'{self}: non-finite goal for {bad}')
        clamped = np.clip(goal, self.limits[:, 0], self.limits[:, 1])
        names = tuple(j for j, a, b in zip(COMMAND_JOINTS, goal, clamped) if a != b)
        return clamped, names

    def write_goal(self, goal) -> np.ndarray:
        """Sync-write goal positions (7, rad) to the primaries; returns the clamped goal sent."""
        if not self.config.is_follower:
            raise RuntimeError(f'{self}: leader arms are read-only; goals are not accepted')
        clamped, _ = self.clamp(goal)
        ticks = {self.slots[j]: self.config.rad_to_ticks(j, v)
                 for j, v in zip(COMMAND_JOINTS, clamped)}
        self.bus.sync_write('Goal_Position', ticks)
        return clamped

    def reboot(self, ids=None) -> None:
        for dxl_id in ids or self.ids:
            self.bus.reboot(dxl_id)

    def close(self, torque_off: bool = True) -> None:
        try:
            if torque_off and self.bus.is_connected:
                self.bus.set_torque(self.ids, False)
        except (DynamixelCommError, RuntimeError):
            pass          # closing anyway; the motors keep their last state
        finally:
            self.bus.close()


def _hardware_error_text(arm: Arm, errors: dict) -> str:
    return '; '.join(f'ID {i} ({arm.slot_of.get(i, "?")}): {describe_hardware_error(bits)}'
                     for i, bits in sorted(errors.items()))


class ArmSupervisor:
    """Explicit states: unconfigured -> inactive <-> active, fault, port_lost."""

    def __init__(self, config: ArmConfig, auto_recover: bool = True,
                 retry_period_s: float = 1.0, torque_off_on_close: bool = True,
                 bus: DynamixelBus | None = None):
        self.config = config
        self.arm = Arm(config, bus)
        self.auto_recover = auto_recover
        self.retry_period_s = retry_period_s
        self.torque_off_on_close = torque_off_on_close
        self.state = 'unconfigured'
        self.want_active = False
        self.last_error = ''
        self.hardware_errors: dict = {}
        self.last_state: ArmState | None = None
        self.goal: np.ndarray | None = None       # last goal sent (rad)
        self._pending: np.ndarray | None = None
        self._next_retry = 0.0
        self._lock = threading.RLock()
        self.counters = dict(cycles=0, failed_cycles=0, commands=0, rejected=0, clamped=0,
                             faults=0, recoveries=0, reconnects=0)
        self.cycle_s = 0.0
        self._reported_trouble = (0, 0)
        self._reported_bytes = (0, 0)

    # --- lifecycle --------------------------------------------------------------------
    def start(self, activate: bool = True) -> bool:
        """Configure and (followers) activate; False with `last_error` set if it failed."""
        with self._lock:
            self.want_active = activate
            return self._configure()

    def _configure(self) -> bool:
        self._next_retry = time.monotonic() + self.retry_period_s
        try:
            self.arm.connect()
            self.state = 'inactive'
            self.last_error = ''
            if self.want_active:
                self._activate()
            return True
        except PortLostError as exc:
            self.state, self.last_error = 'port_lost', str(exc)
        except (ConnectionError, RuntimeError) as exc:
            self.state, self.last_error = 'unconfigured', str(exc)
        self.arm.bus.close()
        return False

    def _activate(self) -> None:
        state = self.arm.read()
        if state.alerts:
            raise MotorHardwareError(f'{self.arm}: hardware error on {list(state.alerts)}',
                                     dict.fromkeys(state.alerts, 0))
        if self.config.is_follower:
            self.goal = state.position[:7].copy()     # hold where it is
            self.arm.write_goal(self.goal)
            self.arm.set_torque(True)
        self._pending = None
        self.state = 'active'

    def set_torque(self, enabled: bool) -> str:
        """Service: torque on (activate) / off (deactivate). Returns a message; raises
        RuntimeError with the reason when it cannot be done."""
        with self._lock:
            if enabled and not self.config.is_follower:
                raise RuntimeError(f'{self.arm}: leader arms are read-only; torque stays off')
            if self.state in ('unconfigured', 'port_lost'):
                raise RuntimeError(f'{self.arm}: not connected ({self.last_error})')
            self.want_active = enabled
            if enabled:
                self._activate()
                return 'torque on, holding the present position'
            self.arm.set_torque(False)
            self._pending = None
            if self.state == 'active':
                self.state = 'inactive'
            return 'torque off'

    def reboot(self) -> str:
        """Service: reboot every motor, then re-configure and restore the torque state."""
        with self._lock:
            if self.state in ('unconfigured', 'port_lost'):
                raise RuntimeError(f'{self.arm}: not connected ({self.last_error})')
            self.arm.reboot()
            self.hardware_errors = self.arm.read_hardware_errors()
            if self.hardware_errors:
                self.state = 'fault'
                raise RuntimeError(f'{self.arm}: still in hardware error after reboot: '
                                   f'{_hardware_error_text(self.arm, self.hardware_errors)}')
            self.arm.configure()
            self.state = 'inactive'
            if self.want_active:
                self._activate()
            return f'rebooted {len(self.arm.ids)} motors'

    def close(self) -> None:
        with self._lock:
            self.arm.close(torque_off=self.torque_off_on_close or not self.config.is_follower)
            self.state = 'unconfigured'

    # --- commands ---------------------------------------------------------------------
    def set_command(self, names, positions) -> CommandResult:
        """Validate a joint command (names ⊆ COMMAND_JOINTS, rad), clamp, keep as pending."""
        with self._lock:
            self.counters['commands'] += 1
            result = self._check_command(list(names), list(positions))
            if not result.accepted:
                self.counters['rejected'] += 1
            elif result.clamped:
                self.counters['clamped'] += 1
            return result

    def _check_command(self, names: list, positions: list) -> CommandResult:
        if not self.config.is_follower:
            return CommandResult(False, f'{self.arm}: leader arms are read-only')
        if len(names) != len(positions) or not names:
            return CommandResult(False, f'name ({len(names)}) and position ({len(positions)}) '
                                        'must be non-empty and of equal length')
        unknown = [n for n in names if n not in COMMAND_JOINTS]
        if unknown or len(set(names)) != len(names):
            return CommandResult(False, f'unknown or repeated joint names {unknown or names}; '
                                        f'use names from {list(COMMAND_JOINTS)}')
        bad = [n for n, p in zip(names, positions) if not math.isfinite(p)]
        if bad:
            return CommandResult(False, f'non-finite position for {bad}')
        if self.state != 'active':
            return CommandResult(False, f'{self.arm} is {self.state}, not active; goal dropped')
        base = self._pending if self._pending is not None else self.goal
        goal = base.copy()
        for name, value in zip(names, positions):
            goal[COMMAND_JOINTS.index(name)] = value
        goal, clamped = self.arm.clamp(goal)
        self._pending = goal
        return CommandResult(True, 'clamped to limits: ' + ', '.join(clamped) if clamped else '',
                             clamped)

    # --- the loop ---------------------------------------------------------------------
    def cycle(self) -> ArmState | None:
        """One read (+ write) cycle; returns the state read, None if nothing could be read."""
        with self._lock:
            start = time.monotonic()
            self.counters['cycles'] += 1
            if self.state in ('unconfigured', 'port_lost'):
                if start >= self._next_retry:
                    if self._configure():
                        self.counters['reconnects'] += 1
                return None
            try:
                state = self._read_and_write()
            except PortLostError as exc:
                self.state, self.last_error = 'port_lost', str(exc)
                self._pending = None
                self._next_retry = start + self.retry_period_s
                return None
            except (DynamixelCommError, RuntimeError) as exc:
                self.counters['failed_cycles'] += 1
                self.last_error = str(exc)
                return None
            finally:
                self.cycle_s = time.monotonic() - start
            return state

    def _read_and_write(self) -> ArmState:
        state = self.arm.read()
        self.last_state = state
        if state.alerts or self.state == 'fault':
            self._handle_fault(state)
            return state
        if self.state == 'active' and self._pending is not None:
            self.goal = self.arm.write_goal(self._pending)
            self._pending = None
        return state

    def _handle_fault(self, state: ArmState) -> None:
        """Hold: drop goals; report; reboot the faulted motors when allowed."""
        self._pending = None
        errors = self.arm.read_hardware_errors(state.alerts) if state.alerts else {}
        if errors and self.state != 'fault':
            self.counters['faults'] += 1
            self._next_retry = time.monotonic() + self.retry_period_s
        self.hardware_errors = errors
        if errors:
            self.state = 'fault'
            self.last_error = _hardware_error_text(self.arm, errors)
            if not self.auto_recover or time.monotonic() < self._next_retry:
                return
            self._next_retry = time.monotonic() + self.retry_period_s
            self.arm.reboot(errors)
            if self.arm.read_hardware_errors(errors):
                return                      # cause not cleared yet; retry next period
        self.arm.configure()
        self.state = 'inactive'
        if self.want_active:
            self._activate()
        self.counters['recoveries'] += 1
        self.hardware_errors, self.last_error = {}, ''

    # --- reporting --------------------------------------------------------------------
    def diagnostics(self) -> Diagnostics:
        with self._lock:
            stats = self.arm.bus.stats
            values = {'state': self.state, 'role': self.config.role, 'model': self.config.model,
                      'port': self.config.port_path, 'cycle_ms': round(self.cycle_s * 1e3, 3),
                      **{f'bus_{k}': v for k, v in stats.as_dict().items()},
                      **self.counters}
            # Bus bytes per cycle since the previous report (config traffic excluded after it).
            total = stats.tx_bytes + stats.rx_bytes
            cycles = self.counters['cycles'] - self._reported_bytes[1]
            values['bus_bytes_per_cycle'] = round((total - self._reported_bytes[0])
                                                  / max(1, cycles), 1)
            self._reported_bytes = (total, self.counters['cycles'])
            if self.last_state is not None:
                for slot, temp in self.last_state.temperatures.items():
                    values[f'temperature_{slot}'] = temp
            for dxl_id, bits in self.hardware_errors.items():
                values[f'hardware_error_id{dxl_id}'] = (
                    f'{self.arm.slot_of.get(dxl_id, "?")}: {describe_hardware_error(bits)}')
            if self.state in ('fault', 'port_lost', 'unconfigured'):
                return Diagnostics('ERROR', f'{self.state}: {self.last_error}', values)
            hot = [s for s, t in values.items() if s.startswith('temperature_') and t >= 70]
            if hot:
                return Diagnostics('WARN', f'{self.state}; hot motors: {hot}', values)
            # WARN while transient errors keep happening (counted since the previous report).
            trouble = (stats.retries, self.counters['failed_cycles'])
            new_trouble = trouble != self._reported_trouble
            self._reported_trouble = trouble
            if new_trouble:
                return Diagnostics('WARN', f'{self.state}; {stats.retries} retries, '
                                           f'{self.counters["failed_cycles"]} failed cycles'
                                           f'; last: {self.last_error or "-"}', values)
            return Diagnostics('OK', self.state, values)
