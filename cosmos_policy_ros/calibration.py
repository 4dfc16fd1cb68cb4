"""Robot calibration files (calibration/<robot>.yaml) and gripper constant presets.

ROS-free. One schema for sim and hardware: the gripper preset (one of the three ALOHA constant
sets, or explicit constants), follower joint limits, and for hardware the per-arm bus/motor
section and camera devices (`arms`, `cameras`, validated by cosmos_policy_ros.hardware).
Every error names the file, the field and the fix.
"""
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosmos_policy_ros.names import ARM_JOINTS
from cosmos_policy_ros.paths import share_path


class CalibrationError(ValueError):
    """A calibration file or preset is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class GripperConstants:
    """One ALOHA gripper constant set; normalize maps close->0, open->1."""
    leader_position_open: float
    leader_position_close: float
    follower_position_open: float
    follower_position_close: float
    leader_joint_open: float
    leader_joint_close: float
    follower_joint_open: float
    follower_joint_close: float
    name: str = 'custom'
    description: str = ''

    def __post_init__(self):
        for prefix in ('leader_position', 'follower_position', 'leader_joint', 'follower_joint'):
            if getattr(self, prefix + '_open') == getattr(self, prefix + '_close'):
                raise CalibrationError(f'gripper constants {self.name!r}: {prefix}_open equals '
                                       f'{prefix}_close; they must differ')

    @staticmethod
    def _norm(x, open_, close):
        return (np.asarray(x, dtype=np.float64) - close) / (open_ - close)

    @staticmethod
    def _unnorm(x, open_, close):
        return np.asarray(x, dtype=np.float64) * (open_ - close) + close

    def leader_joint_normalize(self, angle):
        return self._norm(angle, self.leader_joint_open, self.leader_joint_close)

    def follower_joint_normalize(self, angle):
        return self._norm(angle, self.follower_joint_open, self.follower_joint_close)

    def follower_joint_unnormalize(self, value):
        return self._unnorm(value, self.follower_joint_open, self.follower_joint_close)

    def leader_joint_unnormalize(self, value):
        return self._unnorm(value, self.leader_joint_open, self.leader_joint_close)

    def follower_position_normalize(self, meters):
        return self._norm(meters, self.follower_position_open, self.follower_position_close)

    def follower_position_unnormalize(self, value):
        return self._unnorm(value, self.follower_position_open, self.follower_position_close)

    def leader_position_normalize(self, meters):
        return self._norm(meters, self.leader_position_open, self.leader_position_close)

    def leader_position_unnormalize(self, value):
        return self._unnorm(value, self.leader_position_open, self.leader_position_close)

    def follower_velocity_normalize(self, meters_per_s):
        return np.asarray(meters_per_s, dtype=np.float64) / (
            self.follower_position_open - self.follower_position_close)

    def leader_to_follower_joint(self, leader_angle):
        """Teleop mapping: leader gripper motor angle -> follower gripper motor angle."""
        return self.follower_joint_unnormalize(self.leader_joint_normalize(leader_angle))

    def follower_joint_range(self) -> tuple:
        lo, hi = sorted((self.follower_joint_open, self.follower_joint_close))
        return lo, hi

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_CONSTANT_KEYS = tuple(f.name for f in fields(GripperConstants) if f.name not in ('name',
                                                                                   'description'))


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CalibrationError(f'{path}: file not found') from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        problem = getattr(exc, 'problem', None) or str(exc)
        raise CalibrationError(f'{path}: malformed YAML{where}: {problem}; fix the syntax '
                               '(indentation, colons, brackets)') from None


def _unknown_key_error(source: str, key: str, allowed) -> CalibrationError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return CalibrationError(f'{source}: unknown key {key!r}{hint}; allowed keys: '
                            f'{sorted(allowed)}')


def gripper_presets(path: Path | None = None) -> dict:
    path = Path(path) if path else share_path('calibration', 'gripper_presets.yaml')
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise CalibrationError(f'{path}: expected a mapping of preset name -> constants')
    return {name: _gripper_from_mapping(values, f'{path}: preset {name!r}', name)
            for name, values in data.items()}


def get_gripper_preset(name: str, path: Path | None = None) -> GripperConstants:
    presets = gripper_presets(path)
    if name not in presets:
        close = difflib.get_close_matches(name, presets, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise CalibrationError(f'unknown gripper preset {name!r}{hint}; known presets: '
                               f'{sorted(presets)}')
    return presets[name]


def _gripper_from_mapping(values: Any, source: str, name: str) -> GripperConstants:
    if not isinstance(values, dict):
        raise CalibrationError(f'{source}: expected a mapping of gripper constants')
    for key in values:
        if key not in _CONSTANT_KEYS and key != 'description':
            raise _unknown_key_error(source, key, _CONSTANT_KEYS + ('description',))
    missing = [key for key in _CONSTANT_KEYS if key not in values]
    if missing:
        raise CalibrationError(f'{source}: missing {missing}')
    numbers = {}
    for key in _CONSTANT_KEYS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalibrationError(f'{source}: {key} must be a number, got {value!r}')
        numbers[key] = float(value)
    return GripperConstants(**numbers, name=name, description=str(values.get('description', '')))


@dataclass(frozen=True)
class Calibration:
    robot: str
    gripper: GripperConstants
    joint_limits: Mapping[str, tuple]               # arm joint -> (lower, upper) [rad]
    arms: Mapping[str, Any] = field(default_factory=dict)     # hardware: per-arm bus section
    cameras: Mapping[str, Any] = field(default_factory=dict)  # hardware: camera devices
    source: str = ''

    def limits_array(self) -> np.ndarray:
        """(6, 2) lower/upper limits in ARM_JOINTS order."""
        return np.array([self.joint_limits[joint] for joint in ARM_JOINTS], dtype=np.float64)


_TOP_KEYS = ('robot', 'gripper_preset', 'gripper', 'joint_limits', 'arms', 'cameras')


def calibration_path(name_or_path: str) -> Path:
    """'aloha_sim' -> <share>/calibration/aloha_sim.yaml; a path with / or .yaml is used as is."""
    text = str(name_or_path)
    if '/' in text or text.endswith(('.yaml', '.yml')):
        return Path(text)
    path = share_path('calibration', f'{text}.yaml')
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob('*.yaml') if p.stem != 'gripper_presets')
        raise CalibrationError(f'calibration {text!r} not found ({path}); known: {known}')
    return path


def _joint_limits(limits: Any, source: str) -> dict:
    """{arm joint: (lower, upper)} of a `joint_limits:` section, each finite and ordered."""
    if not isinstance(limits, dict):
        raise CalibrationError(f'{source}: joint_limits must map each of {list(ARM_JOINTS)} to '
                               '[lower, upper] in rad')
    for key in limits:
        if key not in ARM_JOINTS:
            raise _unknown_key_error(f'{source}: joint_limits', key, ARM_JOINTS)
    parsed = {}
    for joint in ARM_JOINTS:
        pair = limits.get(joint)
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise CalibrationError(f'{source}: joint_limits.{joint} must be [lower, upper] in '
                                   f'rad, got {pair!r}')
        lower, upper = float(pair[0]), float(pair[1])
        if not (np.isfinite(lower) and np.isfinite(upper) and lower < upper):
            raise CalibrationError(f'{source}: joint_limits.{joint} = {pair!r} needs finite '
                                   'lower < upper')
        parsed[joint] = (lower, upper)
    return parsed


def load_calibration(name_or_path: str) -> Calibration:
    path = calibration_path(name_or_path)
    data = _load_yaml(path)
    source = str(path)
    if not isinstance(data, dict):
        raise CalibrationError(f'{source}: expected a mapping with keys {list(_TOP_KEYS)}')
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown_key_error(source, key, _TOP_KEYS)
    if 'robot' not in data:
        raise CalibrationError(f'{source}: missing `robot: <name>`')
    has_preset, has_explicit = 'gripper_preset' in data, 'gripper' in data
    if has_preset == has_explicit:
        raise CalibrationError(f'{source}: give exactly one of `gripper_preset: <name>` (one of '
                               f'{sorted(gripper_presets())}) or `gripper: {{constants}}`')
    if has_preset:
        try:
            gripper = get_gripper_preset(str(data['gripper_preset']))
        except CalibrationError as exc:
            raise CalibrationError(f'{source}: gripper_preset: {exc}') from None
    else:
        gripper = _gripper_from_mapping(data['gripper'], f'{source}: gripper', 'custom')
    parsed = _joint_limits(data.get('joint_limits'), source)
    for key in ('arms', 'cameras'):
        if key in data and not isinstance(data[key], dict):
            raise CalibrationError(f'{source}: `{key}` must be a mapping')
    _validate_cameras(data.get('cameras') or {}, path)
    return Calibration(robot=str(data['robot']), gripper=gripper, joint_limits=parsed,
                       arms=data.get('arms') or {}, cameras=data.get('cameras') or {},
                       source=source)


def _validate_cameras(section: dict, path: Path) -> None:
    """The `cameras:` schema lives with the camera backends (imported lazily: no cv2 needed)."""
    from cosmos_policy_ros.hardware.cameras.configs import CameraConfigError, parse_cameras_section
    try:
        parse_cameras_section(section, str(path), base_dir=path.parent)
    except CameraConfigError as exc:
        raise CalibrationError(str(exc)) from None
