"""Camera configs and the calibration YAML `cameras:` section schema. ROS-free, no cv2 import.

calibration/<robot>.yaml:

    cameras:
      cam_high:
        backend: opencv                     # opencv | realsense | video_file
        device: /dev/v4l/by-id/usb-046d_0843_ABCD-video-index0
        fourcc: MJPG                        # MJPG | YUYV
        fps: 30
      cam_left_wrist: {backend: realsense, serial_number: '130322270123', fps: 30}
      cam_right_wrist: {backend: video_file, path: replays/right.mp4, loop: true}
"""
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_policy_ros.names import CAMERAS, IMAGE_HEIGHT, IMAGE_WIDTH

FOURCCS = ('MJPG', 'YUYV')


class CameraConfigError(ValueError):
    """A camera config or `cameras:` section entry is invalid; the message names field and fix."""


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """Common to every backend. `name` is the ALOHA camera name (frame_id, topic, errors)."""
    name: str
    fps: float = 30.0
    width: int = IMAGE_WIDTH
    height: int = IMAGE_HEIGHT
    # Reconnect backoff after the device disappears: first wait, doubled up to the maximum.
    reconnect_backoff_s: float = 0.1
    reconnect_backoff_max_s: float = 2.0
    # Consecutive failed reads after which the device is treated as gone and reopened.
    failed_reads_to_reconnect: int = 3

    def __post_init__(self):
        if not self.name:
            raise CameraConfigError('camera config: `name` must be non-empty, e.g. cam_high')
        if not 0 < self.fps <= 240:
            raise CameraConfigError(f'camera {self.name}: fps={self.fps} must be in (0, 240]')
        for key in ('width', 'height'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CameraConfigError(f'camera {self.name}: {key}={value!r} must be a '
                                        'positive integer')
        if not 0 < self.reconnect_backoff_s <= self.reconnect_backoff_max_s:
            raise CameraConfigError(f'camera {self.name}: need 0 < reconnect_backoff_s <= '
                                    'reconnect_backoff_max_s')
        if self.failed_reads_to_reconnect < 1:
            raise CameraConfigError(f'camera {self.name}: failed_reads_to_reconnect must be '
                                    '>= 1')

    @property
    def period_s(self) -> float:
        return 1.0 / self.fps


@dataclass(frozen=True, kw_only=True)
class OpenCVCameraConfig(CameraConfig):
    """A V4L2 (UVC) camera: /dev/videoN, a stable /dev/v4l/by-id/... link, or an index."""
    device: str
    fourcc: str = 'MJPG'

    def __post_init__(self):
        super().__post_init__()
        if not str(self.device):
            raise CameraConfigError(f'camera {self.name}: `device` is empty; give /dev/videoN '
                                    'or a /dev/v4l/by-id/... path (ls -l /dev/v4l/by-id)')
        if self.fourcc not in FOURCCS:
            raise CameraConfigError(f'camera {self.name}: fourcc={self.fourcc!r} is not one of '
                                    f'{list(FOURCCS)}')


@dataclass(frozen=True, kw_only=True)
class RealSenseCameraConfig(CameraConfig):
    """An Intel RealSense colour stream; empty serial_number takes the only connected one."""
    serial_number: str = ''


@dataclass(frozen=True, kw_only=True)
class VideoFileCameraConfig(CameraConfig):
    """A video file played at `fps` (tests, replays). At the end it loops (reopening the file)
    or stops."""
    path: str
    loop: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not str(self.path):
            raise CameraConfigError(f'camera {self.name}: `path` of the video file is empty')


BACKENDS = {
    'opencv': OpenCVCameraConfig,
    'realsense': RealSenseCameraConfig,
    'video_file': VideoFileCameraConfig,
}
_COMMON_YAML_KEYS = ('backend', 'fps')
# Keys a `cameras.<name>` entry may hold, per backend. width/height are fixed by the policy
# (names.IMAGE_WIDTH x IMAGE_HEIGHT), so they are not configurable in the YAML.
YAML_KEYS = {
    'opencv': _COMMON_YAML_KEYS + ('device', 'fourcc'),
    'realsense': _COMMON_YAML_KEYS + ('serial_number',),
    'video_file': _COMMON_YAML_KEYS + ('path', 'loop'),
}
_REQUIRED = {'opencv': ('device',), 'realsense': (), 'video_file': ('path',)}


def _closest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def camera_config_from_mapping(name: str, entry: Any, source: str = 'cameras',
                               base_dir: Path | None = None) -> CameraConfig:
    """One `cameras.<name>` YAML entry -> a backend config. Relative video paths are taken
    from `base_dir` (the YAML's folder)."""
    where = f'{source}: cameras.{name}'
    if name not in CAMERAS:
        raise CameraConfigError(f'{source}: unknown camera {name!r}{_closest(name, CAMERAS)}; '
                                f'allowed cameras: {list(CAMERAS)}')
    if not isinstance(entry, dict):
        raise CameraConfigError(f'{where}: expected a mapping with `backend:` and the device, '
                                f'got {entry!r}')
    backend = entry.get('backend')
    if backend not in BACKENDS:
        raise CameraConfigError(f'{where}: backend={backend!r} must be one of {list(BACKENDS)}')
    allowed = YAML_KEYS[backend]
    for key in entry:
        if key not in allowed:
            raise CameraConfigError(f'{where}: unknown key {key!r}{_closest(str(key), allowed)}'
                                    f'; allowed keys for backend {backend}: {list(allowed)}')
    missing = [key for key in _REQUIRED[backend] if key not in entry]
    if missing:
        raise CameraConfigError(f'{where}: missing {missing} (backend {backend})')
    values = {key: value for key, value in entry.items() if key != 'backend'}
    if 'fps' in values:
        fps = values['fps']
        if isinstance(fps, bool) or not isinstance(fps, (int, float)):
            raise CameraConfigError(f'{where}: fps must be a number, got {fps!r}')
        values['fps'] = float(fps)
    if 'loop' in values and not isinstance(values['loop'], bool):
        raise CameraConfigError(f'{where}: loop must be true or false, got {values["loop"]!r}')
    for key in ('device', 'serial_number', 'path', 'fourcc'):
        if key in values:
            values[key] = str(values[key])
    if backend == 'video_file' and base_dir is not None and not Path(values['path']).is_absolute():
        values['path'] = str(Path(base_dir) / values['path'])
    try:
        return BACKENDS[backend](name=name, **values)
    except CameraConfigError as exc:
        raise CameraConfigError(f'{source}: {exc}') from None


def parse_cameras_section(section: Mapping[str, Any], source: str = 'cameras',
                          base_dir: Path | None = None) -> dict:
    """The whole `cameras:` mapping -> {camera name: CameraConfig}; the first problem raises."""
    if not isinstance(section, dict):
        raise CameraConfigError(f'{source}: `cameras` must map camera names '
                                f'({list(CAMERAS)}) to device entries')
    return {name: camera_config_from_mapping(name, entry, source, base_dir)
            for name, entry in section.items()}


def cameras_from_calibration(calibration) -> dict:
    """{camera name: CameraConfig} from a loaded cosmos_policy_ros.calibration.Calibration."""
    base_dir = Path(calibration.source).parent if calibration.source else None
    return parse_cameras_section(dict(calibration.cameras), calibration.source or 'calibration',
                                 base_dir)


def camera_config_for(camera: str, calibration=None, backend: str = '', device: str = '',
                      fourcc: str = 'MJPG', fps: float = 30.0, loop: bool = True
                      ) -> CameraConfig:
    """The camera node's parameters -> a config: an explicit `backend` + `device` wins, else
    the `cameras.<camera>` entry of `calibration` (a Calibration its caller loaded: this
    config layer never loads calibration files)."""
    if backend:
        if backend not in BACKENDS:
            raise CameraConfigError(f'camera {camera}: backend={backend!r} must be one of '
                                    f'{list(BACKENDS)}')
        if backend == 'opencv':
            return OpenCVCameraConfig(name=camera, device=device, fourcc=fourcc, fps=fps)
        if backend == 'realsense':
            return RealSenseCameraConfig(name=camera, serial_number=device, fps=fps)
        return VideoFileCameraConfig(name=camera, path=device, fps=fps, loop=loop)
    if calibration is None:
        raise CameraConfigError(f'camera {camera}: set `calibration` (a robot YAML with a '
                                '`cameras:` section) or `backend` and `device`')
    configs = cameras_from_calibration(calibration)
    if camera not in configs:
        raise CameraConfigError(f'{calibration.source}: no `cameras.{camera}` entry (has '
                                f'{sorted(configs)}); add one (docs/hardware.md) or set the '
                                'node\'s backend/device parameters')
    return configs[camera]
