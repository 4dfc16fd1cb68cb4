"""sensor_msgs/Image <-> numpy, with errors that name the field and the fix.

cv_bridge is used where it imports (system ROS); otherwise this small conversion (rgb8/bgr8
only, which is all ALOHA cameras publish) does the same job.
"""
import numpy as np
from sensor_msgs.msg import Image

try:  # pragma: no cover - only on a system ROS install
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
except Exception:  # noqa: BLE001 - PyPI's cv_bridge is ROS 1-era and fails to import
    _BRIDGE = None

_CHANNELS = {'rgb8': 3, 'bgr8': 3}


def to_msg(rgb: np.ndarray, stamp, frame_id: str) -> Image:
    """HxWx3 uint8 RGB array -> rgb8 Image stamped `stamp` (builtin_interfaces/Time)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'image for {frame_id!r}: expected HxWx3 uint8, got '
                         f'{rgb.shape} {rgb.dtype}')
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def to_rgb(msg: Image, expected_hw: tuple | None = None, source: str = 'image') -> np.ndarray:
    """Image -> HxWx3 uint8 RGB (a copy). Raises ValueError naming the topic/field and fix."""
    if msg.encoding not in _CHANNELS:
        raise ValueError(f'{source}: encoding {msg.encoding!r} is not supported; publish rgb8 '
                         '(or bgr8), e.g. set the camera driver\'s color format to RGB8')
    if expected_hw is not None and (msg.height, msg.width) != tuple(expected_hw):
        raise ValueError(f'{source}: size {msg.height}x{msg.width} (height x width) but '
                         f'{expected_hw[0]}x{expected_hw[1]} is required; set the camera '
                         'profile to that size')
    row = msg.width * 3
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(f'{source}: data length {len(msg.data)} / step {msg.step} do not fit '
                         f'{msg.height}x{msg.width}x3')
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    rgb = buffer[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    rgb = rgb.reshape(msg.height, msg.width, 3)
    if msg.encoding == 'bgr8':
        rgb = rgb[:, :, ::-1]
    return np.array(rgb, copy=True)
