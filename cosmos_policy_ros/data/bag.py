"""rosbag2 MCAP episodes written and recovered without rosbag2 (ROS-free).

A bag is a directory `<name>/` holding `metadata.yaml` (rosbag2 format version 9, as Jazzy and
Kilted write it) and `<name>_0.mcap` (profile 'ros2', CDR messages, `ros2msg` schemas), so
`ros2 bag`, Foxglove and `rosbags` all read it. Crash safety:
- while recording the directory is `<name>.partial/`; `close()` writes the MCAP footer and
  metadata.yaml, fsyncs, then renames it to `<name>/` (a finished episode is never partial);
- chunks are closed and flushed at least every `flush_seconds`, so a crash loses at most that;
- `recover_partial()` streams every complete chunk of a `.partial` bag into a new valid bag.
"""
import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import CRCValidationError, StreamReader
from mcap.writer import CompressionType, Writer

from cosmos_policy_ros.data.msgdefs import full_definition, msg_text, share_roots, split_type

PARTIAL_SUFFIX = '.partial'
METADATA_FILE = 'metadata.yaml'
ROSBAG2_VERSION = 9
EPISODE_METADATA = 'cosmos_policy_ros'      # MCAP metadata record with the episode's facts
COMPRESSIONS = {'none': CompressionType.NONE, 'lz4': CompressionType.LZ4,
                'zstd': CompressionType.ZSTD}


class BagError(RuntimeError):
    """A bag cannot be written, read or recovered; the message names the path and the fix."""


def qos_profile(kind: str) -> dict:
    """offered_qos_profiles entry (metadata v9 form) for 'reliable', 'sensor' or 'latched'."""
    if kind not in ('reliable', 'sensor', 'latched'):
        raise ValueError(f'qos kind {kind!r} must be reliable, sensor or latched')
    def zero():         # 0 = the RMW default (infinite); fresh dicts keep YAML alias-free
        return {'sec': 0, 'nsec': 0}
    return {
        'history': 'keep_last', 'depth': 5 if kind == 'sensor' else 10,
        'reliability': 'best_effort' if kind == 'sensor' else 'reliable',
        'durability': 'transient_local' if kind == 'latched' else 'volatile',
        'deadline': zero(), 'lifespan': zero(), 'liveliness': 'automatic',
        'liveliness_lease_duration': zero(), 'avoid_ros_namespace_conventions': False}


@dataclass(frozen=True)
class TopicInfo:
    name: str
    type: str                      # pkg/msg/Type
    qos: str = 'reliable'          # reliable | sensor | latched

    def __post_init__(self):
        if not self.name.startswith('/'):
            raise ValueError(f'topic {self.name!r}: names must be absolute (start with /)')
        split_type(self.type)
        qos_profile(self.qos)


def type_hash(typename: str) -> str:
    """RIHS01 type description hash from the message package's generated .json (or '')."""
    package, kind, name = split_type(typename)
    for root in share_roots():
        path = root / package / kind / f'{name}.json'
        if path.is_file():
            for entry in json.loads(path.read_text()).get('type_hashes', []):
                if entry.get('type_name') == f'{package}/{kind}/{name}':
                    return entry['hash_string']
    return ''


@dataclass
class _Channel:
    topic: TopicInfo
    channel_id: int
    definition_hash: str
    count: int = 0
    sequence: int = 0


@dataclass
class BagStats:
    message_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    counts: dict = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return 0 if self.start_ns is None else self.end_ns - self.start_ns


class BagWriter:
    """One episode bag. Not thread-safe: callers serialise `write`/`flush`/`close`."""

    def __init__(self, bag_dir: str | Path, topics, compression: str = 'zstd',
                 chunk_bytes: int = 4 << 20, flush_seconds: float = 0.5,
                 custom_data: Mapping[str, str] | None = None, fsync: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 staging_suffix: str = PARTIAL_SUFFIX):
        if compression not in COMPRESSIONS:
            raise ValueError(f'compression {compression!r} must be one of {list(COMPRESSIONS)}')
        self.final_dir = Path(bag_dir)
        self.name = self.final_dir.name
        self.partial_dir = self.final_dir.with_name(self.name + staging_suffix)
        if self.final_dir.exists() or self.partial_dir.exists():
            raise BagError(f'{self.final_dir}: a bag with this name already exists; choose '
                           'another name or move the old one away')
        self.custom_data = {str(k): str(v) for k, v in (custom_data or {}).items()}
        self.flush_seconds = flush_seconds
        self._fsync = fsync
        self._clock = clock
        self.stats = BagStats()
        self.partial_dir.mkdir(parents=True)
        self.mcap_name = f'{self.name}_0.mcap'
        self._file = open(self.partial_dir / self.mcap_name, 'wb')
        self._writer = Writer(self._file, chunk_size=chunk_bytes,
                              compression=COMPRESSIONS[compression])
        self._writer.start(profile='ros2', library='cosmos_policy_ros')
        # Episode facts first, outside any chunk: a recovered bag gets them back.
        self._writer.add_metadata(EPISODE_METADATA, dict(self.custom_data))
        self._schemas: dict = {}
        self._channels: dict = {}
        for topic in topics:
            self.add_topic(topic)
        self._last_flush = clock()
        self.closed = False

    def add_topic(self, topic: TopicInfo, definition: str | None = None) -> None:
        if topic.name in self._channels:
            return
        if topic.type not in self._schemas:
            text = full_definition(topic.type) if definition is None else definition
            self._schemas[topic.type] = self._writer.register_schema(
                topic.type, 'ros2msg', text.encode())
        digest = type_hash(topic.type)
        qos_yaml = yaml.safe_dump([qos_profile(topic.qos)], sort_keys=False)
        channel_id = self._writer.register_channel(
            topic.name, 'cdr', self._schemas[topic.type],
            {'offered_qos_profiles': qos_yaml, 'topic_type_hash': digest})
        self._channels[topic.name] = _Channel(topic, channel_id, digest)

    def write(self, topic: str, data: bytes, log_time_ns: int,
              publish_time_ns: int | None = None) -> None:
        """Add one CDR message. OSError (e.g. ENOSPC) propagates to the caller."""
        channel = self._channels.get(topic)
        if channel is None:
            raise KeyError(f'topic {topic!r} was not declared for bag {self.name}; known: '
                           f'{sorted(self._channels)}')
        self._writer.add_message(channel.channel_id, log_time_ns, bytes(data),
                                 log_time_ns if publish_time_ns is None else publish_time_ns,
                                 channel.sequence)
        channel.sequence += 1
        channel.count += 1
        stats = self.stats
        stats.message_count += 1
        stats.start_ns = log_time_ns if stats.start_ns is None else min(stats.start_ns,
                                                                         log_time_ns)
        stats.end_ns = log_time_ns if stats.end_ns is None else max(stats.end_ns, log_time_ns)
        if self._clock() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk and push it to disk (what a crash may lose ends here)."""
        # mcap's Writer closes chunks only by size; this is its own chunk-closing step.
        self._writer._Writer__finalize_chunk()
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self._last_flush = self._clock()

    def close(self, extra_custom_data: Mapping[str, str] | None = None) -> Path:
        """Finish the MCAP, write metadata.yaml, rename `<name>.partial` -> `<name>`."""
        self.custom_data.update({str(k): str(v) for k, v in (extra_custom_data or {}).items()})
        metadata = bag_metadata(self.mcap_name, self.stats,
                                [(c.topic, c.count, c.definition_hash)
                                 for c in self._channels.values()], self.custom_data)
        self._writer.add_metadata('rosbag2', {'serialized_metadata': yaml.safe_dump(
            metadata['rosbag2_bagfile_information'], sort_keys=False)})
        self._writer.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        _write_synced(self.partial_dir / METADATA_FILE, yaml.safe_dump(metadata, sort_keys=False))
        os.rename(self.partial_dir, self.final_dir)
        _fsync_dir(self.final_dir.parent)
        self.closed = True
        return self.final_dir

    def abandon(self) -> Path:
        """Stop writing without finishing (e.g. disk full): the flushed part stays recoverable."""
        try:
            self._file.close()
        except OSError:
            pass        # the unflushed tail is lost by design; what was flushed is on disk
        self.closed = True
        return self.partial_dir

    def discard(self) -> None:
        self.abandon()
        shutil.rmtree(self.partial_dir, ignore_errors=True)


def bag_metadata(mcap_name: str, stats: BagStats, topics, custom_data: Mapping[str, str]) -> dict:
    """rosbag2 metadata.yaml content; `topics` is [(TopicInfo, message_count, type_hash)]."""
    start = stats.start_ns or 0
    return {'rosbag2_bagfile_information': {
        'version': ROSBAG2_VERSION,
        'storage_identifier': 'mcap',
        'duration': {'nanoseconds': stats.duration_ns},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': stats.message_count,
        'topics_with_message_count': [
            {'topic_metadata': {'name': topic.name, 'type': topic.type,
                                'serialization_format': 'cdr',
                                'offered_qos_profiles': [qos_profile(topic.qos)],
                                'type_description_hash': digest},
             'message_count': count}
            for topic, count, digest in topics],
        'compression_format': '',
        'compression_mode': '',
        'relative_file_paths': [mcap_name],
        'files': [{'path': mcap_name, 'starting_time': {'nanoseconds_since_epoch': start},
                   'duration': {'nanoseconds': stats.duration_ns},
                   'message_count': stats.message_count}],
        'custom_data': dict(custom_data) or None,
        'ros_distro': os.environ.get('ROS_DISTRO', 'kilted'),
    }}


def read_custom_data(bag_dir: str | Path) -> dict:
    """custom_data of a finished bag's metadata.yaml (episode facts written by the recorder)."""
    path = Path(bag_dir) / METADATA_FILE
    try:
        info = yaml.safe_load(path.read_text())['rosbag2_bagfile_information']
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise BagError(f'{path}: not a readable rosbag2 metadata.yaml ({exc}); if the episode '
                       'was interrupted, run `cosmos-policy-ros export --recover`') from None
    return dict(info.get('custom_data') or {})


def find_partials(directory: str | Path) -> list:
    return sorted(p for p in Path(directory).glob('*' + PARTIAL_SUFFIX) if p.is_dir())


@dataclass
class Recovery:
    bag_dir: Path
    message_count: int
    duration_s: float
    stopped_by: str          # why reading stopped: 'end of data' or the error


def recover_partial(partial_dir: str | Path, compression: str = 'zstd') -> Recovery:
    """Copy every complete chunk of `<name>.partial/*.mcap` into a finished bag `<name>/`
    (custom_data gains recovered=true), then delete the partial directory."""
    partial_dir = Path(partial_dir)
    if not partial_dir.name.endswith(PARTIAL_SUFFIX):
        raise BagError(f'{partial_dir}: not a partial bag (name must end in {PARTIAL_SUFFIX})')
    files = sorted(partial_dir.glob('*.mcap'))
    if not files:
        raise BagError(f'{partial_dir}: no .mcap file inside; nothing to recover (delete the '
                       'directory)')
    final_dir = partial_dir.with_name(partial_dir.name[:-len(PARTIAL_SUFFIX)])
    if final_dir.exists():
        raise BagError(f'{final_dir} exists next to {partial_dir.name}; move one of them away '
                       'and recover again')
    writer = None
    schemas, channels, custom = {}, {}, {}
    stopped_by = 'end of data'
    staging = final_dir.with_name(final_dir.name + '.recovering')
    shutil.rmtree(staging, ignore_errors=True)
    with open(files[0], 'rb') as stream:
        try:
            for record in StreamReader(stream, validate_crcs=True).records:
                if isinstance(record, Metadata) and record.name == EPISODE_METADATA:
                    custom = dict(record.metadata)
                    continue
                if writer is None and isinstance(record, (Schema, Channel, Message)):
                    custom.update(recovered='true', recovered_from=partial_dir.name)
                    writer = BagWriter(final_dir, [], compression=compression,
                                       custom_data=custom, staging_suffix='.recovering')
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record.topic
                    schema = schemas[record.schema_id]
                    qos = _qos_kind(record.metadata.get('offered_qos_profiles', ''))
                    writer.add_topic(TopicInfo(record.topic, schema.name, qos),
                                     schema.data.decode())
                elif isinstance(record, Message):
                    writer.write(channels[record.channel_id], record.data, record.log_time,
                                 record.publish_time)
        except (McapError, CRCValidationError, EOFError, ValueError, struct.error) as exc:
            stopped_by = f'{type(exc).__name__}: {exc}'.strip(' :')
    if writer is None:
        raise BagError(f'{partial_dir}: no complete chunk was flushed before the crash; '
                       'nothing to recover (delete the directory)')
    writer.close()
    shutil.rmtree(partial_dir)
    _fsync_dir(final_dir.parent)
    stats = writer.stats
    return Recovery(final_dir, stats.message_count, stats.duration_ns / 1e9, stopped_by)


def _qos_kind(qos_yaml: str) -> str:
    try:
        profile = (yaml.safe_load(qos_yaml) or [{}])[0]
    except (yaml.YAMLError, IndexError, TypeError):
        return 'reliable'
    if profile.get('durability') == 'transient_local':
        return 'latched'
    return 'sensor' if profile.get('reliability') == 'best_effort' else 'reliable'


def _write_synced(path: Path, text: str) -> None:
    with open(path, 'w') as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ['BagError', 'BagWriter', 'Recovery', 'TopicInfo', 'bag_metadata', 'find_partials',
           'msg_text', 'qos_profile', 'read_custom_data', 'recover_partial', 'type_hash']
