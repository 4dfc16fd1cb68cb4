"""The supervisor that keeps one ALOHA arm safe on its bus. ROS-free.

    supervisor = ArmSupervisor(config, auto_recover=True, retry_period_s=1.0)
    supervisor.start()                 # configure + activate; never raises
    supervisor.set_command(names, positions) -> clamped joints; JointCommandError if refused
    state = supervisor.cycle()         # read, fault handling, write the newest goal; never raises
    supervisor.reboot(); supervisor.set_torque(on)      # services: raise RuntimeError(reason)
    supervisor.diagnostics() -> Diagnostics(level, message, values)

States: unconfigured -> inactive <-> active, fault, port_lost. `active` means every motor was
seen torqued and holding its goal (Arm.verify_holding) and is re-checked every
`torque_check_period_s`: a motor that restarts on its own (supply dip: torque off, no ALERT)
puts the arm in `fault`, never a limp `active`.
Faults: a lost status packet is retried by the bus and counted; a motor hardware error
(ALERT bit) puts the arm in `fault`: no goals are sent, the cause is reported, and with
auto_recover the faulted motors are rebooted every retry period until the error clears. After
any reboot the driver waits (backing off) until the motors answer, re-configures them, turns
torque back on with the goal at the present position and verifies it; a step that fails leaves
the arm in `fault` (or `unconfigured`) with the reason, retried every period. A lost port puts
it in `port_lost`: the motors keep their last goal, and the supervisor reconnects every retry
period. Leaders are read-only: torque stays off and commands are rejected.
"""
import threading
import time
from enum import Enum

import numpy as np

from cosmos_policy_ros.hardware.arm import Arm, ArmState, Diagnostics
from cosmos_policy_ros.hardware.arm_config import ArmConfig
from cosmos_policy_ros.hardware.dynamixel.bus import (
    DynamixelBus,
    DynamixelCommError,
    MotorHardwareError,
    PortLostError,
)
from cosmos_policy_ros.hardware.dynamixel.tables import describe_hardware_error
from cosmos_policy_ros.health import Level
from cosmos_policy_ros.joint_command import JointCommandError, parse_command
from cosmos_policy_ros.names import COMMAND_JOINTS


def _hardware_error_text(arm: Arm, errors: dict) -> str:
    return '; '.join(f'ID {i} ({arm.slot_of.get(i, "?")}): {describe_hardware_error(bits)}'
                     for i, bits in sorted(errors.items()))


class State(str, Enum):
    """Supervisor states: unconfigured -> inactive <-> active, fault, port_lost."""
    UNCONFIGURED = 'unconfigured'
    INACTIVE = 'inactive'
    ACTIVE = 'active'
    FAULT = 'fault'
    PORT_LOST = 'port_lost'

    def __str__(self) -> str:
        return self.value


class ArmSupervisor:
    """Explicit states: unconfigured -> inactive <-> active, fault, port_lost."""

    def __init__(self, config: ArmConfig, auto_recover: bool = True,
                 retry_period_s: float = 1.0, torque_off_on_close: bool = True,
                 bus: DynamixelBus | None = None, torque_check_period_s: float = 1.0,
                 reboot_timeout_s: float = 2.0):
        self.config = config
        self.arm = Arm(config, bus)
        self.auto_recover = auto_recover
        self.retry_period_s = retry_period_s
        self.torque_off_on_close = torque_off_on_close
        self.torque_check_period_s = torque_check_period_s
        self.reboot_timeout_s = reboot_timeout_s
        self.state = State.UNCONFIGURED
        self.want_active = False
        self.last_error = ''
        self.hardware_errors: dict = {}
        self.limp: list = []                       # IDs found torque-off while active
        self.last_state: ArmState | None = None
        self.goal: np.ndarray | None = None       # last goal sent (rad)
        self._pending: np.ndarray | None = None
        self._next_retry = 0.0
        self._next_torque_check = 0.0
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
            self.state = State.INACTIVE
            self.last_error = ''
            if self.want_active:
                self._activate()
            return True
        except PortLostError as exc:
            self.state, self.last_error = State.PORT_LOST, str(exc)
        except (ConnectionError, RuntimeError) as exc:
            self.state, self.last_error = State.UNCONFIGURED, str(exc)
        self.arm.bus.close()
        return False

    def _activate(self) -> None:
        """Hold the present position with torque on (followers), verified; raises if not."""
        state = self.arm.read()
        if state.alerts:
            raise MotorHardwareError(f'{self.arm}: hardware error on motor '
                                     f'{self.arm.name_ids(state.alerts)}',
                                     dict.fromkeys(state.alerts, 0))
        if self.config.is_follower:
            self.goal = self.arm.write_goal(state.position[:7])     # hold where it is
            self.arm.set_torque(True)
            self.arm.verify_holding()
        self._pending = None
        self.limp = []
        self.state = State.ACTIVE
        self._next_torque_check = time.monotonic() + self.torque_check_period_s

    def _bring_back(self) -> None:
        """After a reboot or a cleared fault: configure, then the wanted torque state."""
        try:
            self.arm.configure()
            self.state = State.INACTIVE
            if self.want_active:
                self._activate()
        except (ConnectionError, RuntimeError):
            self.state = State.PORT_LOST if not self.arm.bus.is_connected else State.FAULT
            raise

    def set_torque(self, enabled: bool) -> str:
        """Service: torque on (activate) / off (deactivate). Returns a message; raises
        RuntimeError with the reason when it cannot be done."""
        with self._lock:
            if enabled and not self.config.is_follower:
                raise RuntimeError(f'{self.arm}: leader arms are read-only; torque stays off')
            if self.state in (State.UNCONFIGURED, State.PORT_LOST):
                raise RuntimeError(f'{self.arm}: not connected ({self.last_error})')
            self.want_active = enabled
            if enabled:
                try:
                    self._activate()
                except (ConnectionError, RuntimeError) as exc:
                    self.state, self.last_error = State.FAULT, str(exc)
                    raise RuntimeError(str(exc)) from None
                return 'torque on, holding the present position'
            self.arm.set_torque(False)
            self._pending = None
            if self.state == State.ACTIVE:
                self.state = State.INACTIVE
            return 'torque off'

    def reboot(self) -> str:
        """Service: reboot every motor, wait until they answer, re-configure, restore the
        torque state and verify it. Raises RuntimeError (arm left in `fault`) otherwise."""
        with self._lock:
            if self.state in (State.UNCONFIGURED, State.PORT_LOST):
                raise RuntimeError(f'{self.arm}: not connected ({self.last_error})')
            self._pending = None
            self.state, self.last_error = State.FAULT, 'rebooting'   # never `active` meanwhile
            try:
                waited = self.arm.reboot(timeout_s=self.reboot_timeout_s)
                self.hardware_errors = self.arm.read_hardware_errors()
                if self.hardware_errors:
                    raise RuntimeError(f'{self.arm}: still in hardware error after reboot: '
                                       f'{_hardware_error_text(self.arm, self.hardware_errors)}')
                self._bring_back()
            except (ConnectionError, RuntimeError) as exc:
                if isinstance(exc, PortLostError):
                    self.state = State.PORT_LOST
                self.last_error = str(exc)
                self._next_retry = time.monotonic() + self.retry_period_s
                raise RuntimeError(f'reboot did not recover the arm: {exc}') from None
            self.last_error = ''
            return (f'rebooted {len(self.arm.ids)} motors; all answered after {waited:.2f} s; '
                    f'{self.state}')

    def close(self) -> None:
        with self._lock:
            self.arm.close(torque_off=self.torque_off_on_close or not self.config.is_follower)
            self.state = State.UNCONFIGURED

    # --- commands ---------------------------------------------------------------------
    def set_command(self, names, positions) -> tuple:
        """Validate a joint command (names ⊆ COMMAND_JOINTS, rad), clamp, keep as pending;
        returns the names of the clamped joints. A command that must not be applied (malformed,
        a leader arm, the arm not active) raises JointCommandError with the reason."""
        with self._lock:
            self.counters['commands'] += 1
            try:
                clamped = self._apply_command(list(names), list(positions))
            except JointCommandError:
                self.counters['rejected'] += 1
                raise
            self.counters['clamped'] += bool(clamped)
            return clamped

    def _apply_command(self, names: list, positions: list) -> tuple:
        if not self.config.is_follower:
            raise JointCommandError(f'{self.arm}: leader arms are read-only')
        command = parse_command(names, positions, source=f'{self.arm} command')
        if self.state != State.ACTIVE:
            raise JointCommandError(f'{self.arm} is {self.state}, not active; goal dropped')
        goal = (self._pending if self._pending is not None else self.goal).copy()
        for name, value in command.items():
            goal[COMMAND_JOINTS.index(name)] = value
        self._pending, clamped = self.arm.clamp(goal)
        return clamped

    # --- the loop ---------------------------------------------------------------------
    def cycle(self) -> ArmState | None:
        """One read (+ write) cycle; returns the state read, None if nothing could be read."""
        with self._lock:
            start = time.monotonic()
            self.counters['cycles'] += 1
            if self.state in (State.UNCONFIGURED, State.PORT_LOST):
                if start >= self._next_retry:
                    if self._configure():
                        self.counters['reconnects'] += 1
                return None
            try:
                state = self._read_and_write()
            except PortLostError as exc:
                self.state, self.last_error = State.PORT_LOST, str(exc)
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
        if state.alerts or self.state == State.FAULT:
            self._handle_fault(state)
            return state
        now = time.monotonic()
        if self.state == State.ACTIVE and self.config.is_follower and \
                now >= self._next_torque_check:
            self._next_torque_check = now + self.torque_check_period_s
            self.limp = self.arm.limp_motors()
            if self.limp:
                self._pending = None
                self.state = State.FAULT
                self.counters['faults'] += 1
                self._next_retry = now + self.retry_period_s
                self.last_error = self._limp_text()
                return state
        if self.state == State.ACTIVE and self._pending is not None:
            self.goal = self.arm.write_goal(self._pending)
            self._pending = None
        return state

    def _limp_text(self) -> str:
        return (f'motor {self.arm.name_ids(self.limp)} lost torque without a hardware error '
                '(it restarted: supply dip or loose cable?); holding stopped')

    def _handle_fault(self, state: ArmState) -> None:
        """Hold: drop goals; report; reboot the faulted motors when allowed; bring back."""
        self._pending = None
        errors = self.arm.read_hardware_errors(state.alerts) if state.alerts else {}
        now = time.monotonic()
        if errors and self.state != State.FAULT:
            self.counters['faults'] += 1
            self._next_retry = now + self.retry_period_s
        self.state = State.FAULT
        self.hardware_errors = errors
        if errors:
            self.last_error = _hardware_error_text(self.arm, errors)
        if now < self._next_retry or ((errors or self.limp) and not self.auto_recover):
            return
        self._next_retry = now + self.retry_period_s
        if errors:
            self.arm.reboot(errors, timeout_s=self.reboot_timeout_s)
            self.hardware_errors = self.arm.read_hardware_errors(errors)
            if self.hardware_errors:
                return                      # cause not cleared yet; retry next period
        self._bring_back()
        self.counters['recoveries'] += 1
        self.hardware_errors, self.limp, self.last_error = {}, [], ''

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
            if self.limp:
                values['limp_motors'] = self.arm.name_ids(self.limp)
            if self.state in (State.FAULT, State.PORT_LOST, State.UNCONFIGURED):
                return Diagnostics(Level.ERROR, f'{self.state}: {self.last_error}', values)
            hot = [s for s, t in values.items() if s.startswith('temperature_') and t >= 70]
            if hot:
                return Diagnostics(Level.WARN, f'{self.state}; hot motors: {hot}', values)
            # WARN while transient errors keep happening (counted since the previous report).
            trouble = (stats.retries, self.counters['failed_cycles'])
            new_trouble = trouble != self._reported_trouble
            self._reported_trouble = trouble
            if new_trouble:
                return Diagnostics(Level.WARN, f'{self.state}; {stats.retries} retries, '
                                           f'{self.counters["failed_cycles"]} failed cycles'
                                           f'; last: {self.last_error or "-"}', values)
            return Diagnostics(Level.OK, self.state, values)
