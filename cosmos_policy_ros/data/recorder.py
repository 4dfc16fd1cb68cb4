"""Episode recording core (ROS-free): start/stop/discard episodes as rosbag2 MCAP bags.

The recorder node feeds it raw CDR bytes with their receive time; it owns the episode
numbering (`episode_<index>` in output_dir), the free-space check, disk-error handling (stop,
keep what was flushed, say how to fix), bad-camera-frame accounting, and recovery of partial
episodes left by a crash.
"""
import errno
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.typesys import Stores, get_typestore

from cosmos_policy_ros import names
from cosmos_policy_ros.data.bag import (
    PARTIAL_SUFFIX,
    BagError,
    BagWriter,
    TopicInfo,
    find_partials,
    recover_partial,
)

IMAGE_TYPE = 'sensor_msgs/msg/Image'
_TYPESTORE = get_typestore(Stores.ROS2_KILTED)


class RecorderError(RuntimeError):
    """A request cannot be honoured; the message says why and how to fix it."""


def episode_topics(cameras=names.CAMERAS) -> list:
    """What an ALOHA episode records: joints, commands, cameras, success and episode info."""
    topics = [TopicInfo(names.joint_states_topic(arm), 'sensor_msgs/msg/JointState')
              for arm in names.ARMS]
    topics += [TopicInfo(names.joint_command_topic(arm), 'sensor_msgs/msg/JointState')
               for arm in names.FOLLOWERS]
    topics += [TopicInfo(names.camera_topic(cam), IMAGE_TYPE, 'sensor') for cam in cameras]
    topics += [TopicInfo(names.SUCCESS_TOPIC, 'std_msgs/msg/Bool'),
               TopicInfo(names.EPISODE_TOPIC, 'std_msgs/msg/String', 'latched')]
    return topics


@dataclass(frozen=True)
class RecorderConfig:
    output_dir: Path
    topics: tuple
    compression: str = 'zstd'
    flush_seconds: float = 0.5
    min_free_mb: float = 200.0
    custom_data: dict = field(default_factory=dict)     # task, calibration, sim, ...

    def __post_init__(self):
        if not self.topics:
            raise ValueError('RecorderConfig.topics: give at least one topic to record')
        if not 0 < self.flush_seconds <= 1.0:
            raise ValueError(f'RecorderConfig.flush_seconds must be in (0, 1] so a crash loses '
                             f'at most a second, got {self.flush_seconds}')
        if self.min_free_mb < 0:
            raise ValueError(f'RecorderConfig.min_free_mb must be >= 0, got {self.min_free_mb}')


def image_problem(data: bytes, topic: str) -> str | None:
    """None for an rgb8/bgr8 480x640 Image, else the field at fault and the fix."""
    try:
        msg = _TYPESTORE.deserialize_cdr(bytes(data), IMAGE_TYPE)
    except Exception as exc:  # noqa: BLE001 - any decode failure is a bad frame to report
        return f'{topic}: not a decodable sensor_msgs/Image ({exc}); check the publisher'
    if msg.encoding not in ('rgb8', 'bgr8'):
        return (f'{topic}: encoding {msg.encoding!r} is not rgb8/bgr8; set the camera driver '
                'to publish rgb8')
    if (msg.height, msg.width) != (names.IMAGE_HEIGHT, names.IMAGE_WIDTH):
        return (f'{topic}: size {msg.height}x{msg.width} (height x width) but '
                f'{names.IMAGE_HEIGHT}x{names.IMAGE_WIDTH} is required; set the camera profile '
                'to 640x480')
    return None


class EpisodeRecorder:
    """Thread-safe: callbacks may call `write` while services call `start`/`stop`."""

    def __init__(self, config: RecorderConfig):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self._types = {topic.name: topic.type for topic in config.topics}
        self._latched_topics = {t.name for t in config.topics if t.qos == 'latched'}
        self._latched: dict = {}        # topic -> (data, log time): replayed into each episode
        self._lock = threading.Lock()
        self._writer: BagWriter | None = None
        self._started = 0.0
        self.episode = ''
        self.error = ''                 # last failure (disk full, ...), '' when healthy
        self.bad_frames: dict = {}      # topic -> count, this episode
        self._reported: set = set()     # topics whose bad frames were reported already

    @property
    def recording(self) -> bool:
        return self._writer is not None

    def recover_partials(self) -> list:
        """Recover every `<episode>.partial` in output_dir (left by a crash)."""
        if not self.output_dir.is_dir():
            return []
        with self._lock:
            return [recover_partial(partial, self.config.compression)
                    for partial in find_partials(self.output_dir)]

    def next_index(self) -> int:
        used = [-1]
        if self.output_dir.is_dir():
            for path in self.output_dir.iterdir():
                stem = path.name.removesuffix(PARTIAL_SUFFIX)
                if stem.startswith('episode_') and stem[8:].isdigit():
                    used.append(int(stem[8:]))
        return max(used) + 1

    def start(self, custom_data: dict | None = None) -> str:
        with self._lock:
            if self._writer is not None:
                raise RecorderError(f'already recording {self.episode}; call stop or discard '
                                    'first')
            self.output_dir.mkdir(parents=True, exist_ok=True)
            free_mb = shutil.disk_usage(self.output_dir).free / 2**20
            if free_mb < self.config.min_free_mb:
                raise RecorderError(
                    f'only {free_mb:.0f} MB free in {self.output_dir} (min_free_mb='
                    f'{self.config.min_free_mb:.0f}); free space in {self.output_dir} or set '
                    'output_dir to a larger disk')
            name = f'episode_{self.next_index()}'
            custom = {**self.config.custom_data, **(custom_data or {}), 'episode': name,
                      'wall_start': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
            try:
                self._writer = BagWriter(self.output_dir / name, self.config.topics,
                                         self.config.compression,
                                         flush_seconds=self.config.flush_seconds,
                                         custom_data=custom)
            except OSError as exc:
                raise RecorderError(self._disk_message(name, exc)) from None
            try:
                for topic, (data, log_time_ns) in self._latched.items():
                    self._writer.write(topic, data, log_time_ns)
            except OSError as exc:
                raise RecorderError(self._fail(exc)) from None
            self.episode, self.error = name, ''
            self.bad_frames, self._reported = {}, set()
            self._started = time.monotonic()
            return name

    def write(self, topic: str, data: bytes, log_time_ns: int) -> str | None:
        """Record one message if an episode is open. Returns a problem to report once (bad
        camera frame or disk failure), else None."""
        report = None
        if self._types.get(topic) == IMAGE_TYPE:
            problem = image_problem(data, topic)
            if problem:
                with self._lock:
                    if self._writer is not None:
                        self.bad_frames[topic] = self.bad_frames.get(topic, 0) + 1
                if topic not in self._reported:
                    self._reported.add(topic)
                    report = (f'{problem}; these frames are recorded but flagged (bad_frames in '
                              'metadata.yaml) and the exporter refuses them')
        with self._lock:
            if topic in self._latched_topics:
                self._latched[topic] = (bytes(data), log_time_ns)
            if self._writer is None:
                return report
            try:
                self._writer.write(topic, data, log_time_ns)
            except OSError as exc:
                return self._fail(exc)
        return report

    def tick(self) -> str | None:
        """Flush if due (called from a steady timer, so quiet topics still reach the disk)."""
        with self._lock:
            writer = self._writer
            if writer is None or time.monotonic() - writer._last_flush < writer.flush_seconds:
                return None
            try:
                writer.flush()
            except OSError as exc:
                return self._fail(exc)
        return None

    def stop(self, extra: dict | None = None) -> dict:
        """Finish the episode; returns its summary (path, counts, duration)."""
        with self._lock:
            writer = self._require_writer('stop')
            custom = {'bad_frames': json.dumps(self.bad_frames), **(extra or {})}
            try:
                path = writer.close(custom)
            except OSError as exc:
                raise RecorderError(self._fail(exc)) from None
            finally:
                self._writer = None
            return {'episode': self.episode, 'path': str(path),
                    'messages': writer.stats.message_count,
                    'duration_s': round(writer.stats.duration_ns / 1e9, 3),
                    'wall_s': round(time.monotonic() - self._started, 3),
                    'counts': {topic: channel.count
                               for topic, channel in writer._channels.items()},
                    'bad_frames': dict(self.bad_frames)}

    def discard(self) -> str:
        with self._lock:
            writer = self._require_writer('discard')
            self._writer = None
            writer.discard()
            return self.episode

    def status(self) -> dict:
        with self._lock:
            writer = self._writer
            return {'state': 'recording' if writer else ('failed' if self.error else 'idle'),
                    'episode': self.episode, 'error': self.error,
                    'messages': writer.stats.message_count if writer else 0,
                    'duration_s': round(writer.stats.duration_ns / 1e9, 3) if writer else 0.0,
                    'bad_frames': dict(self.bad_frames), 'next_index': self.next_index()}

    def _require_writer(self, action: str) -> BagWriter:
        if self._writer is None:
            reason = f' (last error: {self.error})' if self.error else ''
            raise RecorderError(f'cannot {action}: no episode is being recorded{reason}; call '
                                'start first')
        return self._writer

    def _fail(self, exc: OSError) -> str:
        """Disk error while recording: stop the episode, keep what was flushed."""
        writer, self._writer = self._writer, None
        partial = writer.abandon() if writer is not None else None
        self.error = self._disk_message(self.episode, exc, partial)
        return self.error

    def _disk_message(self, name: str, exc: OSError, partial: Path | None = None) -> str:
        what = 'disk full' if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        kept = (f'; the data flushed before the error is kept in {partial} (recover it with '
                f'`cosmos-policy-ros export --recover {self.output_dir}`)' if partial else '')
        return (f'{name}: writing to {self.output_dir} failed: {what} (errno {exc.errno}){kept}; '
                f'free space in {self.output_dir} or set output_dir to a larger disk')


__all__ = ['BagError', 'EpisodeRecorder', 'RecorderConfig', 'RecorderError', 'episode_topics',
           'image_problem']
