"""recorder: episodes of the ALOHA topics as rosbag2 MCAP bags, controlled by services.

Subscribes (raw CDR, nothing re-serialised): /leader_*|follower_*/joint_states, the follower
joint commands, the camera images (QoS matched to the publisher's reliability once one
appears, as rosbag2 does: best-effort 900 KB frames are lossy over UDP), names.SUCCESS_TOPIC and
names.EPISODE_TOPIC (transient local). Message log times come from the node clock (sim time
with use_sim_time).

Services (std_srvs/Trigger): names.RECORDER_START_SERVICE (new `episode_<i>` in output_dir;
refused when less than min_free_mb is free), names.RECORDER_STOP_SERVICE (finish and save;
message = JSON summary), names.RECORDER_DISCARD_SERVICE (delete the open episode).
Publishes names.RECORDER_STATUS_TOPIC (std_msgs/String JSON, latched) and names.DIAGNOSTICS_TOPIC.

Crash safety lives in cosmos_policy_ros.data (chunks flushed every flush_seconds, `.partial`
until finished); partial episodes from a crash are recovered when the node starts. A disk error
stops the episode, keeps what was flushed and is reported with the fix on /diagnostics, in the
status and in the next service response; bad camera frames are reported once per topic.
"""
import json

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.data.recorder import (
    EpisodeRecorder,
    RecorderConfig,
    RecorderError,
    episode_topics,
)
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.schemas.recorder import RECORDER

_MSG_TYPES = {'sensor_msgs/msg/JointState': JointState, 'sensor_msgs/msg/Image': Image,
              'std_msgs/msg/Bool': Bool, 'std_msgs/msg/String': String}


class Recorder(Node):
    def __init__(self):
        super().__init__('recorder')
        p = self.params = params.declare(self, RECORDER)
        unknown = set(p.cameras) - set(names.CAMERAS)
        if unknown:
            raise ValueError(f'parameter cameras: unknown {sorted(unknown)}; known: '
                             f'{list(names.CAMERAS)}')
        sim = self.get_parameter('use_sim_time').value
        topics = episode_topics(tuple(p.cameras))
        self.core = EpisodeRecorder(RecorderConfig(
            output_dir=p.output_dir, topics=tuple(topics), compression=p.compression,
            flush_seconds=p.flush_seconds, min_free_mb=p.min_free_mb,
            custom_data={'task': p.task, 'calibration': p.calibration,
                         'sim': 'true' if sim else 'false'}))
        if p.recover_on_start:
            for result in self.core.recover_partials():
                self.get_logger().warning(
                    f'recovered {result.bag_dir} after a crash: {result.message_count} '
                    f'messages, {result.duration_s:.1f} s ({result.stopped_by})')
        data_group = ReentrantCallbackGroup()
        control_group = MutuallyExclusiveCallbackGroup()
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._data_group = data_group
        self._sensor_pending = [t for t in topics if t.qos == 'sensor']
        for topic in topics:
            if topic.qos != 'sensor':
                qos = latched if topic.qos == 'latched' else QoSProfile(depth=100)
                self._subscribe(topic, qos)
        self._subscribe_sensors()
        self.status_pub = self.create_publisher(String, names.RECORDER_STATUS_TOPIC, latched)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                                     10)
        for service, handler in ((names.RECORDER_START_SERVICE, self._start),
                                 (names.RECORDER_STOP_SERVICE, self._stop),
                                 (names.RECORDER_DISCARD_SERVICE, self._discard)):
            self.create_service(Trigger, service, handler, callback_group=control_group)
        # Wall-clock timer: flushing must not wait for sim time (which may be paused).
        self.create_timer(p.status_period, self._tick, callback_group=control_group,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._publish_status()

    def _subscribe(self, topic, qos) -> None:
        self.create_subscription(
            _MSG_TYPES[topic.type], topic.name,
            lambda data, name=topic.name: self._on_message(name, data), qos,
            callback_group=self._data_group, raw=True)

    def _subscribe_sensors(self) -> None:
        """Subscribe camera topics once a publisher exists, matching its reliability as
        rosbag2 does: reliable publishers get a reliable (lossless) subscription, best-effort
        ones the sensor-data profile."""
        for topic in list(self._sensor_pending):
            publishers = self.get_publishers_info_by_topic(topic.name)
            if not publishers:
                continue
            reliable = all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                           for info in publishers)
            self._subscribe(topic, QoSProfile(depth=10) if reliable else qos_profile_sensor_data)
            self._sensor_pending.remove(topic)
            self.get_logger().info(f'recording {topic.name} '
                                   f'({"reliable" if reliable else "best effort"})')

    def _on_message(self, topic: str, data: bytes) -> None:
        problem = self.core.write(topic, data, self.get_clock().now().nanoseconds)
        if problem:
            self.get_logger().error(problem)
            self._publish_status()

    def _start(self, request, response):
        try:
            name = self.core.start()
            response.success, response.message = True, name
            self.get_logger().info(f'recording {name}')
        except (RecorderError, OSError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(str(exc))
        self._publish_status()
        return response

    def _stop(self, request, response):
        try:
            summary = self.core.stop()
            response.success, response.message = True, json.dumps(summary)
            self.get_logger().info(f'saved {summary["path"]}: {summary["messages"]} messages, '
                                   f'{summary["duration_s"]:.1f} s')
        except RecorderError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(str(exc))
        self._publish_status()
        return response

    def _discard(self, request, response):
        try:
            response.success, response.message = True, f'discarded {self.core.discard()}'
        except RecorderError as exc:
            response.success, response.message = False, str(exc)
        self._publish_status()
        return response

    def _tick(self) -> None:
        if self._sensor_pending:
            self._subscribe_sensors()
        problem = self.core.tick()
        if problem:
            self.get_logger().error(problem)
        self._publish_status()

    def _publish_status(self) -> None:
        status = self.core.status()
        self.status_pub.publish(String(data=json.dumps(status)))
        level = DiagnosticStatus.OK
        message = f'{status["state"]} {status["episode"]}'.strip()
        if status['error']:
            level, message = DiagnosticStatus.ERROR, status['error']
        elif status['bad_frames']:
            level, message = DiagnosticStatus.WARN, f'bad camera frames {status["bad_frames"]}'
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [DiagnosticStatus(
            level=level, name='recorder', message=message, hardware_id='recorder',
            values=[KeyValue(key=k, value=str(v)) for k, v in status.items()])]
        self.diagnostics_pub.publish(array)

    def close(self) -> None:
        """Shutdown (Ctrl-C, SIGTERM) while recording: save the episode rather than lose it."""
        if self.core.recording:
            try:
                summary = self.core.stop({'interrupted': 'true'})
                self.get_logger().warning(f'shutdown while recording: saved {summary["path"]}')
            except RecorderError as exc:
                self.get_logger().error(str(exc))


def main(args=None) -> None:
    # One thread, as rosbag2 records: no callback here waits for another, and rclpy's
    # MultiThreadedExecutor lost a third of 20 Hz camera frames on a 2-core CI machine.
    run(Recorder, args=args, threads=1)


if __name__ == '__main__':
    main()
