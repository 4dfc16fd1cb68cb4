"""One ALOHA arm on its Dynamixel bus. ROS-free.

    arm = Arm(config)                 # config: hardware.arm_config.ArmConfig
    arm.connect()                     # open port, ping + model check, configure (motor_setup)
    arm.set_torque(True); state = arm.read()          # ArmState, Interbotix joint_states layout
    arm.write_goal(np.array([...7 rad...]))           # clamped to limits, returns what was sent
    arm.verify_holding()              # every motor torqued, goals as sent (else raises)
    arm.reboot([9]); arm.close()

Goals are clamped to the arm's joint limits [rad] (motor_setup wrote them as the motors'
Min/Max_Position_Limit) and then, in ticks, to the limits read back from the motors: a
position-mode motor silently ignores a sync-written goal outside them (e.g. +pi = tick 4096).
The supervisor that keeps an arm safe (faults, recovery, commands) is hardware/supervisor.py;
`ArmSupervisor` stays importable from here.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from cosmos_policy_ros.hardware.arm_config import SHADOWS, ArmConfig
from cosmos_policy_ros.hardware.dynamixel import protocol
from cosmos_policy_ros.hardware.dynamixel.bus import (
    DynamixelBus,
    DynamixelCommError,
    PortLostError,
)
from cosmos_policy_ros.hardware.dynamixel.tables import (
    MODELS_BY_NUMBER,
    VELOCITY_UNIT_RPM,
    OperatingMode,
)
from cosmos_policy_ros.hardware.motor_setup import (
    MotorConfigError,
    configure_motors,
    desired_settings,
)
from cosmos_policy_ros.health import Level
from cosmos_policy_ros.joint_command import JointLimits
from cosmos_policy_ros.names import COMMAND_JOINTS

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
class Diagnostics:
    level: Level
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
        self._set_limits({j: config.tick_limits(j) for j in COMMAND_JOINTS})
        self._models = [config.motor_model(j) for j in COMMAND_JOINTS]
        self.last_ticks: dict = {}                         # primary id -> goal tick sent

    def __str__(self) -> str:
        return f'arm {self.config.name} ({self.config.port_path})'

    def name_ids(self, ids) -> str:
        """'5 (elbow_shadow), 9 (gripper)' for messages."""
        return ', '.join(f'{i} ({self.slot_of.get(i, "?")})' for i in ids)

    def _set_limits(self, tick_limits: dict) -> None:
        """rad limits = the config's, within the motors' position limits (position mode)."""
        self.tick_limits = {}
        limits = []
        for joint in COMMAND_JOINTS:
            low, high = self.config.limits(joint)
            if self.config.operating_mode(joint) == OperatingMode.POSITION:
                self.tick_limits[joint] = tick_limits[joint]
                low = max(low, self.config.ticks_to_rad(joint, tick_limits[joint][0]))
                high = min(high, self.config.ticks_to_rad(joint, tick_limits[joint][1]))
            limits.append((low, high))
        self.limits = JointLimits(*np.array(limits, dtype=np.float64).T)

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
        """(id, register, value) the arm needs, EEPROM and RAM (motor_setup.py)."""
        return [(s.dxl_id, s.register, s.value) for s in desired_settings(self.config)]

    def configure(self) -> dict:
        """Configure and verify every motor (motor_setup.configure_motors; leaders go limp
        first) and take the goal limits from the motors; returns {(id, register): value}.
        Raises MotorConfigError: torque must then stay off."""
        if not self.config.is_follower:
            self.bus.set_torque(self.ids, False)
        values = configure_motors(self.bus, self.config, f'{self}: ')
        self._set_limits({j: (values[(self.slots[j], 'Min_Position_Limit')],
                              values[(self.slots[j], 'Max_Position_Limit')])
                          for j in COMMAND_JOINTS})
        return values

    def set_torque(self, enabled: bool, ids=None) -> None:
        if enabled and not self.config.is_follower:
            raise RuntimeError(f'{self}: leader arms are read-only; torque stays off')
        self.bus.set_torque(self.ids if ids is None else ids, enabled)

    # --- streaming --------------------------------------------------------------------
    def read(self) -> ArmState:
        try:
            motors = self.bus.sync_read_state(self.ids)
        except PortLostError:
            raise
        except DynamixelCommError as exc:
            if not exc.ids:
                raise
            raise DynamixelCommError(f'{self}: motor {self.name_ids(exc.ids)} stopped '
                                     f'answering; check its cable and power ({exc})',
                                     exc.ids) from None
        stamp = time.time()
        position, velocity, effort = np.zeros(9), np.zeros(9), np.zeros(9)
        for k, joint in enumerate(COMMAND_JOINTS):
            state = motors[self.slots[joint]]
            model = self._models[k]
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

    def limp_motors(self) -> list:
        """IDs whose Torque_Enable reads 0 (one sync read)."""
        replies = self.bus.sync_read(self.ids, 64, 1)
        return [i for i in self.ids if not replies[i][0][0]]

    def clamp(self, goal: np.ndarray) -> tuple:
        """(clamped goal, names of clamped joints); JointCommandError (a ValueError) on a
        wrong size or non-finite input."""
        return self.limits.clamp(goal, source=f'{self}: goal')

    def goal_ticks(self, goal) -> dict:
        """{primary id: Goal_Position tick} of a clamped goal, within the motors' limits."""
        ticks = {}
        for joint, value in zip(COMMAND_JOINTS, goal):
            tick = self.config.rad_to_ticks(joint, value)
            if joint in self.tick_limits:
                low, high = self.tick_limits[joint]
                tick = min(max(tick, low), high)
            ticks[self.slots[joint]] = tick
        return ticks

    def write_goal(self, goal) -> np.ndarray:
        """Sync-write goal positions (7, rad) to the primaries; returns the clamped goal sent."""
        if not self.config.is_follower:
            raise RuntimeError(f'{self}: leader arms are read-only; goals are not accepted')
        clamped, _ = self.clamp(goal)
        ticks = self.goal_ticks(clamped)
        self.bus.sync_write('Goal_Position', ticks)
        self.last_ticks = ticks
        return clamped

    def verify_holding(self) -> None:
        """After torque on: every motor torqued and holding the goal last sent (shadows their
        primary's); raises MotorConfigError naming the motor otherwise."""
        limp = self.limp_motors()
        goals = {i: protocol.from_le(data, signed=True)
                 for i, (data, _) in self.bus.sync_read(self.ids, 116, 4).items()}
        expected = dict(self.last_ticks)
        for shadow, primary in SHADOWS.items():
            if shadow in self.slots:
                expected[self.slots[shadow]] = expected.get(self.slots[primary])
        bad = [f'motor {self.name_ids([i])} Torque_Enable: expected 1, found 0' for i in limp]
        bad += [f'motor {self.name_ids([i])} Goal_Position: expected {tick}, found {goals[i]}'
                for i, tick in expected.items() if tick is not None and goals[i] != tick]
        if bad:
            raise MotorConfigError(f'{self}: not holding after torque on: ' + '; '.join(bad))

    def reboot(self, ids=None, timeout_s: float = 2.0) -> float:
        """REBOOT each motor, then wait (backing off) until all answer again; returns the
        seconds waited. Their RAM is reset (torque off): configure and activate afterwards."""
        ids = list(ids or self.ids)
        for dxl_id in ids:
            self.bus.reboot(dxl_id)
        try:
            return self.bus.wait_for_motors(ids, timeout_s)
        except PortLostError:
            raise
        except DynamixelCommError as exc:
            raise DynamixelCommError(f'{self}: motor {self.name_ids(exc.ids)} did not come '
                                     f'back within {timeout_s:.1f} s of its reboot; check its '
                                     'power and cable', exc.ids) from None

    def close(self, torque_off: bool = True) -> None:
        try:
            if torque_off and self.bus.is_connected:
                self.bus.set_torque(self.ids, False)
        except (DynamixelCommError, RuntimeError):
            pass          # closing anyway; the motors keep their last state
        finally:
            self.bus.close()


def __getattr__(name):     # ArmSupervisor moved to supervisor.py; still importable from here
    if name == 'ArmSupervisor':
        from cosmos_policy_ros.hardware.supervisor import ArmSupervisor
        return ArmSupervisor
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
