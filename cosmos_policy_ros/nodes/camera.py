"""camera: one physical camera (or a video file) on the ALOHA camera topic.

Publishes:
- names.camera_topic(camera) (sensor_msgs/Image, rgb8 480x640, sensor-data QoS): every frame
  the camera delivers, header.stamp = capture time on the node clock, frame_id = camera name.
- names.DIAGNOSTICS_TOPIC (diagnostic_msgs/DiagnosticArray) every `diagnostics_period`:
  connected, measured fps, frames, dropped frames, failed reads, reconnects, last error.

The device comes from `calibration` (cameras.<camera> in the robot YAML) or from explicit
`backend` + `device` parameters. A missing device is logged with the fix and retried every
`retry_period` seconds (the node stays up); once connected, the camera core reconnects by
itself when the device disappears and comes back.

Transport: frames are ~0.9 MB; cosmos_policy_ros.ros.main.run gives every node a Fast DDS
profile whose shared memory fits them (see config/fastdds_robot.xml for why).
"""
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.hardware.cameras import BACKENDS, CameraError, make_camera
from cosmos_policy_ros.hardware.cameras.configs import FOURCCS, camera_config_for
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.ros import image, params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.stamps import from_ns

PARAMS = (
    Param('camera', 'cam_high', 'ALOHA camera name (topic, frame_id)', choices=names.CAMERAS,
          read_only=True),
    Param('calibration', '', 'calibration/<robot>.yaml (name or path) whose cameras.<camera> '
          'entry gives the device; ignored when `backend` is set', read_only=True),
    Param('backend', '', 'explicit backend instead of the calibration entry',
          choices=('',) + tuple(BACKENDS), read_only=True),
    Param('device', '', 'opencv: /dev/videoN or /dev/v4l/by-id/...; realsense: serial number '
          '(empty: the only one); video_file: path', read_only=True),
    Param('fourcc', 'MJPG', 'opencv pixel format', choices=FOURCCS, read_only=True),
    Param('fps', 30.0, 'capture rate [Hz] (explicit backend)', min=1.0, max=240.0,
          read_only=True),
    Param('loop', True, 'video_file: start again at the end', read_only=True),
    Param('retry_period', 1.0, 'seconds between attempts to open a missing device', min=0.05,
          read_only=True),
    Param('diagnostics_period', 1.0, 'diagnostics publish period [s]', min=0.05),
)


class CameraNode(Node):
    def __init__(self):
        super().__init__('camera')
        self.params = params.declare(self, PARAMS)
        p = self.params
        calibration = load_calibration(p.calibration) if p.calibration else None
        self.config = camera_config_for(p.camera, calibration, p.backend, p.device, p.fourcc,
                                        p.fps, p.loop)
        self.camera = make_camera(self.config)
        self._published = 0
        self._last_logged = ('', 0.0)
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._image_pub = self.create_publisher(Image, names.camera_topic(p.camera),
                                                qos_profile_sensor_data)
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                               QoSProfile(depth=10))
        self._connect_timer = self.create_timer(p.retry_period, self._try_connect,
                                                callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())
        # Publishing has its own thread so a slow DDS write never delays the capture thread.
        self._publisher_thread = threading.Thread(target=self._publish_loop,
                                                  name=f'camera-publish-{p.camera}', daemon=True)
        self._publisher_thread.start()
        self._try_connect()

    def _try_connect(self) -> None:
        if self._connected.is_set() or self._closing.is_set():
            return
        try:
            self.camera.connect()
        except CameraError as exc:
            self._log_error(f'{exc} (retrying every {self.params.retry_period:g} s)')
            return
        self._connected.set()
        self._connect_timer.cancel()
        self.get_logger().info(f'{self.camera}: streaming {self.config.width}x'
                               f'{self.config.height} at {self.config.fps:g} fps on '
                               f'{names.camera_topic(self.params.camera)}')

    def _log_error(self, message: str) -> None:
        # The same message once per 10 s: a missing camera must be visible, not flood the log.
        last, when = self._last_logged
        if message != last or time.monotonic() - when > 10.0:
            self.get_logger().error(message)
            self._last_logged = (message, time.monotonic())

    def _publish_loop(self) -> None:
        while not self._closing.is_set():
            if not self._connected.wait(timeout=0.2):
                continue
            try:
                frame = self.camera.async_read(timeout=0.5)
            except TimeoutError:
                continue                       # reconnecting; diagnostics say why
            except EOFError:
                self.get_logger().info(f'{self.camera}: video ended (loop off)')
                return
            except CameraError:
                if self._closing.is_set():
                    return
                raise
            # Capture time on the node clock: now minus the frame's age on the steady clock.
            age_ns = time.monotonic_ns() - frame.captured_ns
            stamp = from_ns(self.get_clock().now().nanoseconds - age_ns)
            self._image_pub.publish(image.to_msg(frame.image, stamp, self.params.camera))
            self._published += 1

    def _publish_diagnostics(self) -> None:
        stats = self.camera.stats()
        status = DiagnosticStatus(name=f'{self.get_name()}: {self.params.camera}',
                                  hardware_id=str(self.camera))
        if stats.finished:
            status.level = DiagnosticStatus.OK
            status.message = 'the video ended (loop off)'
        elif not stats.connected:
            status.level = DiagnosticStatus.ERROR
            status.message = f'not connected: {stats.last_error or "connecting"}'
        elif stats.fps < 0.8 * self.config.fps:
            status.level = DiagnosticStatus.WARN
            status.message = f'{stats.fps:.1f} fps, below {self.config.fps:g}'
        else:
            status.level = DiagnosticStatus.OK
            status.message = f'{stats.fps:.1f} fps'
        values = {'connected': stats.connected, 'fps': f'{stats.fps:.2f}',
                  'target_fps': self.config.fps, 'frames': stats.frames,
                  'published': self._published, 'dropped': stats.dropped,
                  'failed_reads': stats.failed_reads, 'reconnects': stats.reconnects,
                  'last_error': stats.last_error}
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def close(self) -> None:
        self._closing.set()
        self._publisher_thread.join(timeout=2.0)
        self.camera.disconnect()


def main(args=None) -> None:
    run(CameraNode, args=args)
