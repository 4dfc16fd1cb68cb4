"""A video file as a camera, paced at the configured fps (tests and replays).

Frames must already be the configured size: resizing would hide a wrong recording. At the end
the file is reopened by path (loop) or the stream ends, so a file that is deleted or replaced
while playing behaves like a camera that is unplugged and plugged back in.
"""
import time
from pathlib import Path

import cv2
import numpy as np

from cosmos_policy_ros.hardware.cameras.camera import Camera, CameraError, EndOfStream
from cosmos_policy_ros.hardware.cameras.configs import VideoFileCameraConfig


class VideoFileCamera(Camera):
    def __init__(self, config: VideoFileCameraConfig):
        super().__init__(config)
        self.config: VideoFileCameraConfig = config
        self._capture: cv2.VideoCapture | None = None
        self._due_ns: int | None = None

    def __str__(self) -> str:
        return f'VideoFileCamera({self.config.name} @ {self.config.path})'

    def _open(self) -> None:
        path = Path(self.config.path)
        if not path.is_file():
            raise CameraError(f'{self}: video file not found; check the path (cameras.'
                              f'{self.config.name}.path or the node\'s `device` parameter)')
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(f'{self}: OpenCV cannot decode this file; use an MJPG .avi or '
                              'mp4v/H.264 .mp4')
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (width, height) != (self.config.width, self.config.height):
            capture.release()
            raise CameraError(f'{self}: frames are {width}x{height} (width x height) but '
                              f'{self.config.width}x{self.config.height} is required; re-encode '
                              f'it, e.g. ffmpeg -i IN -vf scale={self.config.width}:'
                              f'{self.config.height} OUT.mp4 (frames are never resized here)')
        self._capture = capture

    def _grab(self) -> np.ndarray | None:
        self._pace()
        if self._capture is None:
            self._open()
        ok, bgr = self._capture.read()
        if not ok:
            self._close()
            if not self.config.loop:
                raise EndOfStream(str(self))
            self._open()                       # raises CameraError if the file vanished
            ok, bgr = self._capture.read()
            if not ok:
                return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _pace(self) -> None:
        """Sleep until the next frame is due; a late frame moves the schedule (no bursts)."""
        period_ns = int(self.config.period_s * 1e9)
        now = time.monotonic_ns()
        if self._due_ns is None or now - self._due_ns > period_ns:
            self._due_ns = now
        elif self._due_ns > now:
            time.sleep((self._due_ns - now) / 1e9)
        self._due_ns += period_ns

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def write_video_file(path, frames_rgb, fps: float) -> Path:
    """Write HxWx3 uint8 RGB frames as an MJPG .avi (or mp4v .mp4) that VideoFileCamera plays."""
    path = Path(path)
    frames = list(frames_rgb)
    if not frames:
        raise ValueError(f'{path}: no frames to write')
    height, width = frames[0].shape[:2]
    fourcc = 'mp4v' if path.suffix == '.mp4' else 'MJPG'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f'{path}: OpenCV cannot write {fourcc} video here')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
