"""A V4L2 (UVC) camera through OpenCV: device path, /dev/v4l/by-id link or index; MJPG or YUYV.

`connect` asks for fourcc, size and fps, then reads them back: a camera that silently falls
back to another mode (a common UVC behaviour on a crowded USB bus) is refused with what it
gave, instead of publishing the wrong stream.
"""
from pathlib import Path

import cv2
import numpy as np

from cosmos_policy_ros.hardware.cameras.camera import Camera, CameraError
from cosmos_policy_ros.hardware.cameras.configs import OpenCVCameraConfig


def _fourcc_text(code: float) -> str:
    value = int(code)
    return ''.join(chr((value >> (8 * i)) & 0xFF) for i in range(4)).strip('\x00')


class OpenCVCamera(Camera):
    def __init__(self, config: OpenCVCameraConfig):
        super().__init__(config)
        self.config: OpenCVCameraConfig = config
        self._capture: cv2.VideoCapture | None = None

    def __str__(self) -> str:
        return f'OpenCVCamera({self.config.name} @ {self.config.device})'

    def _target(self):
        device = str(self.config.device)
        if device.isdigit():
            return int(device)
        path = Path(device)
        if not path.exists():
            raise CameraError(
                f'{self}: device does not exist; plug the camera in, list stable names with '
                f'`ls -l /dev/v4l/by-id`, and set cameras.{self.config.name}.device in '
                'calibration/<robot>.yaml (or the node\'s `device` parameter)')
        return str(path.resolve())   # a by-id symlink -> /dev/videoN

    def _open(self) -> None:
        target = self._target()
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f'{self}: cannot open {target}; is another program using it, '
                              'and is the user in the `video` group?')
        try:
            self._configure(capture)
        except BaseException:
            capture.release()
            raise
        self._capture = capture

    def _configure(self, capture: cv2.VideoCapture) -> None:
        config = self.config
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        capture.set(cv2.CAP_PROP_FPS, config.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # the newest frame, not a queue of old ones
        # A read of an unplugged camera returns within this, not after V4L2's 10 s default, so
        # disconnect() and the reconnect loop stay prompt (ignored where unsupported).
        capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1000.0, 5000.0 * config.period_s))
        got = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
               int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
               float(capture.get(cv2.CAP_PROP_FPS)),
               _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC)))
        wanted = (config.width, config.height, config.fps, config.fourcc)
        if got[:2] != wanted[:2] or abs(got[2] - wanted[2]) > 0.5 or got[3] != wanted[3]:
            raise CameraError(
                f'{self}: asked for {wanted[0]}x{wanted[1]} @ {wanted[2]:g} fps {wanted[3]}, '
                f'the device gave {got[0]}x{got[1]} @ {got[2]:g} fps {got[3] or "?"}; pick a '
                f'mode it supports (v4l2-ctl -d {config.device} --list-formats-ext); MJPG '
                'is needed for 30 fps on a shared USB 2 hub')

    def _grab(self) -> np.ndarray | None:
        if self._capture is None:
            raise CameraError(f'{self}: device closed')
        ok, bgr = self._capture.read()
        if not ok:
            device = str(self.config.device)
            if not device.isdigit() and not Path(device).exists():
                raise CameraError(f'{self}: device disappeared (unplugged?)')
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
