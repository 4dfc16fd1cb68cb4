"""An Intel RealSense colour stream (rgb8) through pyrealsense2, imported only when used."""
import numpy as np

from cosmos_policy_ros.hardware.cameras.camera import Camera, CameraError
from cosmos_policy_ros.hardware.cameras.configs import RealSenseCameraConfig


def import_pyrealsense2():
    try:
        import pyrealsense2 as rs
    except ImportError:
        raise CameraError('pyrealsense2 is not installed; `pip install pyrealsense2` (wheels '
                          'for x86_64 and aarch64 Linux) or use backend: opencv with the '
                          'camera\'s /dev/v4l/by-id path') from None
    return rs


class RealSenseCamera(Camera):
    def __init__(self, config: RealSenseCameraConfig):
        super().__init__(config)
        self.config: RealSenseCameraConfig = config
        self._pipeline = None

    def __str__(self) -> str:
        serial = self.config.serial_number or 'any serial'
        return f'RealSenseCamera({self.config.name} @ {serial})'

    def _open(self) -> None:
        rs = import_pyrealsense2()
        serials = [device.get_info(rs.camera_info.serial_number)
                   for device in rs.context().query_devices()]
        wanted = self.config.serial_number
        if not serials:
            raise CameraError(f'{self}: no RealSense connected; check the USB 3 cable')
        if wanted and wanted not in serials:
            raise CameraError(f'{self}: serial not connected; connected serials: {serials}; '
                              f'fix cameras.{self.config.name}.serial_number')
        if not wanted and len(serials) > 1:
            raise CameraError(f'{self}: {len(serials)} RealSense cameras connected {serials}; '
                              f'set cameras.{self.config.name}.serial_number')
        stream = rs.config()
        if wanted:
            stream.enable_device(wanted)
        stream.enable_stream(rs.stream.color, self.config.width, self.config.height,
                             rs.format.rgb8, round(self.config.fps))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(stream)
        except RuntimeError as exc:
            raise CameraError(f'{self}: cannot start {self.config.width}x{self.config.height} '
                              f'@ {self.config.fps:g} fps rgb8: {exc}; RealSense colour '
                              'streams support 6/15/30/60 fps') from None
        video = profile.get_stream(rs.stream.color).as_video_stream_profile()
        if (video.width(), video.height(), video.fps()) != (
                self.config.width, self.config.height, round(self.config.fps)):
            pipeline.stop()
            raise CameraError(f'{self}: got {video.width()}x{video.height()} @ {video.fps()} '
                              'fps instead of the requested mode')
        self._pipeline = pipeline

    def _grab(self) -> np.ndarray | None:
        if self._pipeline is None:
            raise CameraError(f'{self}: device closed')
        timeout_ms = int(max(1000, 5000 * self.config.period_s))
        try:
            frames = self._pipeline.wait_for_frames(timeout_ms)
        except RuntimeError as exc:
            raise CameraError(f'{self}: no frame within {timeout_ms} ms ({exc}); unplugged?') \
                from None
        color = frames.get_color_frame()
        if not color:
            return None
        return np.array(color.get_data(), dtype=np.uint8, copy=True)

    def _close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None
