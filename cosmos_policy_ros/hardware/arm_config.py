"""ALOHA arm models and the calibration file's `arms:` section. ROS-free.

    arms = parse_arms(load_calibration('aloha_stationary').arms, source)   # {name: ArmConfig}
    config.port_path, config.motor_ids(), config.ticks_to_rad(joint, ticks), ...

Each `arms.<namespace>` entry (namespace one of follower_left/right, leader_left/right) takes
the keys in ARM_KEYS; an unknown key is an error naming the key and the allowed keys.
Joint limits: a follower's are the intersection of its `arms.<arm>.joint_limits` (default the
URDF's) and the robot file's top-level `joint_limits` (pass them to parse_arms); a leader's are
its own. They also become the motors' Min/Max_Position_Limit (hardware/motor_setup.py).
Angles: joint [rad] = (ticks - 2048) * 2 pi / 4096 - joint_offsets[joint]; the gripper joint
is the motor angle, and the finger position follows the Interbotix linkage
(left_finger = r sin(a) + sqrt(L^2 - (r cos(a))^2), right_finger = -left_finger).
"""
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cosmos_policy_ros.calibration import CalibrationError
from cosmos_policy_ros.hardware.dynamixel.tables import (
    CENTER_TICK,
    MODELS,
    TICKS_PER_REV,
    OperatingMode,
)
from cosmos_policy_ros.names import ARMS, COMMAND_JOINTS, GRIPPER

MOTOR_SLOTS = ('waist', 'shoulder', 'shoulder_shadow', 'elbow', 'elbow_shadow', 'forearm_roll',
               'wrist_angle', 'wrist_rotate', 'gripper')
SHADOWS = {'shoulder_shadow': 'shoulder', 'elbow_shadow': 'elbow'}
DEFAULT_IDS = dict(zip(MOTOR_SLOTS, range(1, 10)))
ROLES = ('follower', 'leader')


@dataclass(frozen=True)
class ArmModel:
    """One Interbotix ALOHA arm type (aloha_stacks.md §1.5; Drive_Mode as in Interbotix's
    aloha_vx300s.yaml / aloha_wx250s.yaml motor configs: a shadow is mounted mirrored, so its
    direction bit is the opposite of its primary's)."""
    name: str
    motors: Mapping[str, str]          # slot -> motor model name
    joint_limits: Mapping[str, tuple]  # URDF limits [rad], arm joints + gripper motor angle
    horn_radius: float
    arm_length: float
    sleep_positions: tuple
    drive_modes: Mapping[str, int]     # slot -> Drive_Mode (bit 0 reverse); others 0


def _deg(lo, hi):
    return (math.radians(lo), math.radians(hi))


_PI = (-math.pi, math.pi)
ARM_MODELS = {
    'aloha_vx300s': ArmModel(
        'aloha_vx300s',
        {**{slot: 'XM540-W270' for slot in MOTOR_SLOTS[:7]},
         'wrist_rotate': 'XM430-W350', 'gripper': 'XM430-W350'},
        {'waist': _PI, 'shoulder': _deg(-106, 72), 'elbow': _deg(-101, 92), 'forearm_roll': _PI,
         'wrist_angle': _deg(-107, 128), 'wrist_rotate': _PI, 'gripper': (-0.70, 1.70)},
        horn_radius=0.0275, arm_length=0.035, sleep_positions=(0, -2.05, 1.7, 0, -2.0, 0, 0),
        drive_modes={'shoulder': 1, 'elbow': 1, 'wrist_angle': 1}),
    'aloha_wx250s': ArmModel(
        'aloha_wx250s',
        {**{slot: 'XM430-W350' for slot in MOTOR_SLOTS[:7]},
         'wrist_rotate': 'XL430-W250', 'gripper': 'XC430-W150'},
        {'waist': _PI, 'shoulder': _deg(-108, 114), 'elbow': _deg(-123, 92), 'forearm_roll': _PI,
         'wrist_angle': _deg(-100, 123), 'wrist_rotate': _PI, 'gripper': (-1.70, 1.00)},
        horn_radius=0.020, arm_length=0.020, sleep_positions=(0, -1.88, 1.6, 0, -1.6, 0, 0),
        drive_modes={'shoulder_shadow': 1, 'elbow_shadow': 1, 'wrist_angle': 1}),
}
_DEFAULT_MODEL = {'follower': 'aloha_vx300s', 'leader': 'aloha_wx250s'}

ARM_KEYS = ('port', 'role', 'model', 'ids', 'joint_offsets', 'joint_limits',
            'gripper_current_limit', 'velocity_limit', 'profile_velocity',
            'profile_acceleration', 'baudrate', 'num_retry')


@dataclass(frozen=True)
class ArmConfig:
    name: str
    port: str
    role: str = 'follower'
    model: str = 'aloha_vx300s'
    ids: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_IDS))
    joint_offsets: Mapping[str, float] = field(default_factory=dict)
    joint_limits: Mapping[str, tuple] = field(default_factory=dict)   # overrides of the model's
    gripper_current_limit: int = 300     # Current_Limit register units (2.69 mA), followers
    velocity_limit: int = 131            # 0.229 rpm units (131 = 3.14 rad/s)
    profile_velocity: int = 0            # 0.229 rpm; 0 = no profile: full motor speed (e-Manual)
    profile_acceleration: int = 0        # 214.6 rev/min^2; 0 = infinite acceleration
    baudrate: int = 1_000_000
    num_retry: int = 2
    robot_joint_limits: Mapping[str, tuple] = field(default_factory=dict)  # top-level, followers

    def __post_init__(self):
        where = f'arms.{self.name}'
        if self.role not in ROLES:
            raise CalibrationError(f'{where}.role: {self.role!r} is not one of {list(ROLES)}')
        if self.model not in ARM_MODELS:
            raise CalibrationError(f'{where}.model: {self.model!r} is not one of '
                                   f'{sorted(ARM_MODELS)}')
        self._check_ids(where)
        self._check_joint_values(where)
        self._check_integers(where)
        if self.baudrate not in (57600, 115200, 1_000_000, 2_000_000, 3_000_000, 4_000_000):
            raise CalibrationError(f'{where}.baudrate: {self.baudrate!r} is not a Dynamixel '
                                   'baud rate (ALOHA motors are set to 1000000)')
        if not self.port:
            raise CalibrationError(f'{where}.port: give the serial device, e.g. '
                                   f'/dev/ttyDXL_{self.name}')

    def _check_ids(self, where: str) -> None:
        for key in self.ids:
            if key not in MOTOR_SLOTS:
                raise _unknown(f'{where}.ids', key, MOTOR_SLOTS)
        for slot, dxl_id in self.ids.items():
            if isinstance(dxl_id, bool) or not isinstance(dxl_id, int) or not 0 <= dxl_id <= 252:
                raise CalibrationError(f'{where}.ids.{slot}: {dxl_id!r} must be an integer '
                                       'motor ID 0..252')
        ids = [i for i in self.ids.values()]
        if len(set(ids)) != len(ids):
            raise CalibrationError(f'{where}.ids: duplicate motor IDs in {dict(self.ids)}')
        for joint in COMMAND_JOINTS:
            if joint not in self.ids:
                raise CalibrationError(f'{where}.ids: missing {joint!r}; every joint of '
                                       f'{list(COMMAND_JOINTS)} needs a motor ID')

    def _check_joint_values(self, where: str) -> None:
        for key, value in self.joint_offsets.items():
            if key not in COMMAND_JOINTS:
                raise _unknown(f'{where}.joint_offsets', key, COMMAND_JOINTS)
            if not _is_number(value) or not math.isfinite(value):
                raise CalibrationError(f'{where}.joint_offsets.{key}: {value!r} must be a '
                                       'finite number [rad]')
        for key, pair in self.joint_limits.items():
            if key not in COMMAND_JOINTS:
                raise _unknown(f'{where}.joint_limits', key, COMMAND_JOINTS)
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(_is_number(v) and math.isfinite(v) for v in pair)
                    or not pair[0] < pair[1]):
                raise CalibrationError(f'{where}.joint_limits.{key}: {pair!r} must be '
                                       '[lower, upper] with finite lower < upper [rad]')
        for joint in COMMAND_JOINTS:
            low, high = self.limits(joint)
            if not low < high:
                raise CalibrationError(
                    f'{where}: joint_limits.{joint} {self._own_limits(joint)} and the top-level '
                    f'joint_limits.{joint} {self.robot_joint_limits.get(joint)} do not overlap; '
                    'fix one of them')

    def _check_integers(self, where: str) -> None:
        for key, low, high in (('gripper_current_limit', 1, 2047), ('velocity_limit', 1, 1023),
                               ('profile_velocity', 0, 32767),
                               ('profile_acceleration', 0, 32767), ('num_retry', 0, 10)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise CalibrationError(f'{where}.{key}: {value!r} must be an integer in '
                                       f'[{low}, {high}]')
        if self.profile_velocity > self.velocity_limit:
            raise CalibrationError(f'{where}.profile_velocity: {self.profile_velocity} exceeds '
                                   f'velocity_limit {self.velocity_limit}; the motors refuse it '
                                   '(e-Manual: Profile_Velocity <= Velocity_Limit); lower it, '
                                   'or use 0 for no profile')

    # --- derived data -------------------------------------------------------------------
    @property
    def arm_model(self) -> ArmModel:
        return ARM_MODELS[self.model]

    @property
    def port_path(self) -> str:
        """A bare udev name ('ttyDXL_follower_left') means /dev/<name>."""
        return self.port if '/' in self.port else f'/dev/{self.port}'

    @property
    def is_follower(self) -> bool:
        return self.role == 'follower'

    def motor_ids(self) -> dict:
        """slot -> ID for every motor present (shadows may be left out of `ids`)."""
        return {slot: self.ids[slot] for slot in MOTOR_SLOTS if slot in self.ids}

    def joint_ids(self) -> list:
        """IDs of the primaries in COMMAND_JOINTS order (the sync-write targets)."""
        return [self.ids[joint] for joint in COMMAND_JOINTS]

    def shadow_ids(self) -> dict:
        """shadow ID -> primary ID (the shadow's Secondary_ID)."""
        return {self.ids[s]: self.ids[p] for s, p in SHADOWS.items() if s in self.ids}

    def motor_model(self, slot: str):
        return MODELS[self.arm_model.motors[slot]]

    def operating_mode(self, slot: str) -> OperatingMode:
        if slot == GRIPPER and self.is_follower:
            return OperatingMode.CURRENT_BASED_POSITION
        return OperatingMode.POSITION

    def _own_limits(self, joint: str) -> tuple:
        return tuple(self.joint_limits.get(joint, self.arm_model.joint_limits[joint]))

    def limits(self, joint: str) -> tuple:
        """[rad]: the arm's own limits, within the top-level ones for a follower."""
        low, high = self._own_limits(joint)
        if self.is_follower and joint in self.robot_joint_limits:
            top_low, top_high = self.robot_joint_limits[joint]
            low, high = max(low, top_low), min(high, top_high)
        return float(low), float(high)

    def tick_limits(self, joint: str) -> tuple:
        """limits(joint) as Goal_Position ticks, rounded inward (a limit within 1/100 tick of
        a tick, like -3.14158 rad, counts as that tick), within 0..4095."""
        low, high = (CENTER_TICK + (v + self.joint_offsets.get(joint, 0.0))
                     * (TICKS_PER_REV / (2 * math.pi)) for v in self.limits(joint))
        return (max(0, math.ceil(low - 0.01)),
                min(TICKS_PER_REV - 1, math.floor(high + 0.01)))

    def ticks_to_rad(self, joint: str, ticks) -> float:
        return (ticks - CENTER_TICK) * (2 * math.pi / TICKS_PER_REV) - \
            self.joint_offsets.get(joint, 0.0)

    def rad_to_ticks(self, joint: str, rad: float) -> int:
        ticks = CENTER_TICK + (rad + self.joint_offsets.get(joint, 0.0)) * (TICKS_PER_REV /
                                                                            (2 * math.pi))
        return int(round(ticks))

    def finger_position(self, gripper_angle: float) -> float:
        """Interbotix linkage: gripper motor angle [rad] -> left finger position [m]."""
        r, length = self.arm_model.horn_radius, self.arm_model.arm_length
        return r * math.sin(gripper_angle) + math.sqrt(max(length ** 2 -
                                                           (r * math.cos(gripper_angle)) ** 2,
                                                           0.0))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown(where: str, key, allowed) -> CalibrationError:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return CalibrationError(f'{where}: unknown key {key!r}{hint}; allowed keys: {list(allowed)}')


def parse_arm(name: str, entry: Any, source: str = '',
              robot_joint_limits: Mapping | None = None) -> ArmConfig:
    prefix = f'{source}: ' if source else ''
    if name not in ARMS:
        raise CalibrationError(f'{prefix}{_unknown("arms", name, ARMS)}')
    if not isinstance(entry, dict):
        raise CalibrationError(f'{prefix}arms.{name} must be a mapping with keys '
                               f'{list(ARM_KEYS)}')
    for key in entry:
        if key not in ARM_KEYS:
            raise CalibrationError(f'{prefix}{_unknown(f"arms.{name}", key, ARM_KEYS)}')
    if 'port' not in entry:
        raise CalibrationError(f'{prefix}arms.{name}.port is missing; give the serial device, '
                               f'e.g. /dev/ttyDXL_{name}')
    values = dict(entry)
    values.setdefault('role', name.split('_')[0])
    values.setdefault('model', _DEFAULT_MODEL.get(values['role'], 'aloha_vx300s'))
    values['port'] = str(values['port'])
    if 'ids' in values:
        values['ids'] = {**DEFAULT_IDS, **(values['ids'] or {})}
        values['ids'] = {k: v for k, v in values['ids'].items() if v is not None}
    for key in ('joint_offsets', 'joint_limits'):
        if key in values and not isinstance(values[key], dict):
            raise CalibrationError(f'{prefix}arms.{name}.{key} must be a mapping joint -> value')
    if 'joint_limits' in values:
        values['joint_limits'] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in values['joint_limits'].items()}
    values['robot_joint_limits'] = dict(robot_joint_limits or {})
    try:
        return ArmConfig(name=name, **values)
    except CalibrationError as exc:
        raise CalibrationError(f'{prefix}{exc}') from None


def parse_arms(section: Mapping, source: str = '', joint_limits: Mapping | None = None) -> dict:
    """Validate a calibration's `arms:` mapping -> {namespace: ArmConfig}; `joint_limits` are
    the file's top-level follower limits (Calibration.joint_limits)."""
    return {name: parse_arm(name, entry, source, joint_limits)
            for name, entry in (section or {}).items()}

