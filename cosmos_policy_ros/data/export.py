"""Episode bags -> ALOHA HDF5 at 25 Hz, plus dataset statistics (ROS-free; reads with rosbags).

Layout (shared/reference/aloha_stacks.md §2.3, 14-d order [left 6, left gripper, right 6,
right gripper]):
    /observations/qpos|qvel|effort (T,14) float32, /observations/images/<cam> (T,480,640,3)
    uint8 (or JPEG bytes (T,L) + /compress_len (cams,T) with compress=True), /action (T,14),
    /success (T,) bool, /timestamps/grid and /timestamps/<source> (T,) int64 ns;
    attrs sim, compress, fps, task, instruction, success, gripper_preset, gripper_constants,
    calibration, source_bag, recovered, bad_frames.
Gripper semantics: qpos = follower finger position normalised with the calibration's preset,
qvel = follower finger velocity normalised, action = leader gripper motor angle normalised;
action arm joints = the command sent to the follower (leader joint positions if no command
was recorded). Every source is resampled onto one grid by zero-order hold on the bag's clock
(sim time in sim), and each step keeps the actual stamp of every source.
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from rosbags.highlevel import AnyReader

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.data.bag import read_custom_data
from cosmos_policy_ros.data.resample import ResampleError, common_grid, hold_indices
from cosmos_policy_ros.sim.tasks import TASKS

STATISTICS_FILE = 'dataset_statistics.json'
IMAGE_SHAPE = (names.IMAGE_HEIGHT, names.IMAGE_WIDTH, 3)
IMAGE_ENCODINGS = ('rgb8', 'bgr8')


class ExportError(ValueError):
    """An episode cannot be exported; the message names the bag, the topic/field and the fix."""


@dataclass(frozen=True)
class ExportConfig:
    fps: float = names.CONTROL_HZ
    cameras: tuple = names.CAMERAS
    calibration: str = ''            # '' = the one the recorder stored in the bag
    compress: bool = False           # JPEG (ALOHA compress=True layout) instead of raw uint8
    jpeg_quality: int = 50
    skip_bad_frames: bool = False    # drop wrong-encoding/size frames instead of refusing
    require_cameras: bool = True     # every camera in `cameras` must be in the bag

    def __post_init__(self):
        if not self.fps > 0:
            raise ValueError(f'ExportConfig.fps must be > 0, got {self.fps}')
        unknown = set(self.cameras) - set(names.CAMERAS)
        if unknown:
            raise ValueError(f'ExportConfig.cameras: unknown {sorted(unknown)}; known: '
                             f'{list(names.CAMERAS)}')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f'ExportConfig.jpeg_quality must be 1..100, got {self.jpeg_quality}')


@dataclass
class EpisodeSummary:
    name: str
    hdf5: Path
    steps: int
    duration_s: float
    success: bool
    gripper_min: float
    gripper_max: float
    lag_ms: dict                    # source -> (mean, max) age of the held message [ms]
    recovered: bool = False
    bad_frames: dict = field(default_factory=dict)

    def line(self) -> str:
        worst = max(self.lag_ms.items(), key=lambda item: item[1][1])
        flags = ' recovered' if self.recovered else ''
        flags += f' bad_frames={self.bad_frames}' if self.bad_frames else ''
        return (f'{self.name}: {self.steps} steps, {self.duration_s:.2f} s, success='
                f'{self.success}, gripper {self.gripper_min:.2f}..{self.gripper_max:.2f}, '
                f'worst lag {worst[0]} {worst[1][1]:.0f} ms{flags}')


@dataclass
class _Stream:
    """One source's messages, sorted by stamp: stamps (N,) int64 and values (N, ...)."""
    stamps: np.ndarray
    values: np.ndarray


def source_topics(cameras=names.CAMERAS) -> dict:
    topics = {}
    for side in names.SIDES:
        topics[f'follower_{side}'] = names.joint_states_topic(f'follower_{side}')
        topics[f'leader_{side}'] = names.joint_states_topic(f'leader_{side}')
        topics[f'command_{side}'] = names.joint_command_topic(f'follower_{side}')
    for camera in cameras:
        topics[camera] = names.camera_topic(camera)
    return topics


def _stamp_ns(msg, log_time: int) -> int:
    header = getattr(msg, 'header', None)
    if header is None:
        return int(log_time)
    ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return ns if ns > 0 else int(log_time)


def _by_name(msg, field_name: str, joints, topic: str, allow_empty: bool = False) -> np.ndarray:
    values = np.asarray(getattr(msg, field_name), dtype=np.float64)
    if values.size == 0 and allow_empty:
        return np.zeros(len(joints))
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [j for j in joints if j not in index]
    if missing or values.size != len(msg.name):
        raise ExportError(f'{topic}: JointState {field_name} lacks joints {missing} (names '
                          f'{list(msg.name)}, {values.size} values); publish '
                          f'{list(names.JOINT_STATE_NAMES)}')
    return values[[index[j] for j in joints]]


def _sorted(stamps: list, values: list) -> _Stream:
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind='stable')
    return _Stream(np.asarray(stamps, dtype=np.int64)[order], np.asarray(values)[order])


def _check_image(msg, topic: str) -> str | None:
    if msg.encoding not in IMAGE_ENCODINGS:
        return (f'{topic}: encoding {msg.encoding!r} is not rgb8/bgr8; set the camera driver '
                'to publish rgb8')
    if (msg.height, msg.width) != IMAGE_SHAPE[:2]:
        return (f'{topic}: size {msg.height}x{msg.width} but {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} '
                'is required; set the camera profile to 640x480')
    return None


def _to_rgb(msg) -> np.ndarray:
    data = np.frombuffer(msg.data, dtype=np.uint8)
    rows = data[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :msg.width * 3]
    image = rows.reshape(IMAGE_SHAPE)
    return image[:, :, ::-1] if msg.encoding == 'bgr8' else image


class _BagData:
    """Pass 1 over a bag: every non-image source decoded, image stamps/validity indexed."""

    def __init__(self, bag_dir: Path, config: ExportConfig):
        self.bag_dir = bag_dir
        self.topics = source_topics(config.cameras)
        self.streams: dict = {}
        self.success: _Stream | None = None
        self.episode_info: dict = {}
        self.image_order: dict = {}      # camera -> message ordinal for each sorted stamp
        self.bad_frames: dict = {}
        self.bad_reasons: dict = {}
        with AnyReader([bag_dir]) as reader:
            connections = {c.topic: c for c in reader.connections}
            self.present = set(connections)
            self._read_joints(reader, connections)
            self._read_task(reader, connections)
            for camera in config.cameras:
                topic = self.topics[camera]
                if topic in connections:
                    self._index_camera(reader, connections[topic], camera)

    def _read_joints(self, reader, connections) -> None:
        arm_and_gripper = names.COMMAND_JOINTS
        for side in names.SIDES:
            follower = self.topics[f'follower_{side}']
            leader = self.topics[f'leader_{side}']
            command = self.topics[f'command_{side}']
            for source, topic in ((f'follower_{side}', follower), (f'leader_{side}', leader)):
                if topic not in connections:
                    continue
                stamps, rows = [], []
                for conn, log_time, raw in reader.messages(connections=[connections[topic]]):
                    msg = reader.deserialize(raw, conn.msgtype)
                    position = _by_name(msg, 'position', names.JOINT_STATE_NAMES, topic)
                    velocity = _by_name(msg, 'velocity', names.JOINT_STATE_NAMES, topic, True)
                    effort = _by_name(msg, 'effort', arm_and_gripper, topic, True)
                    stamps.append(_stamp_ns(msg, log_time))
                    rows.append(np.concatenate([position, velocity, effort]))
                if rows:
                    self.streams[source] = _sorted(stamps, rows)
            if command in connections:
                latest = dict.fromkeys(names.ARM_JOINTS)
                stamps, rows = [], []
                for conn, log_time, raw in reader.messages(connections=[connections[command]]):
                    msg = reader.deserialize(raw, conn.msgtype)
                    if len(msg.position) != len(msg.name):
                        raise ExportError(f'{self.bag_dir}: {command}: {len(msg.name)} names '
                                          f'but {len(msg.position)} positions')
                    for name, value in zip(msg.name, msg.position):
                        if name in latest:
                            latest[name] = float(value)
                    if all(value is not None for value in latest.values()):
                        stamps.append(_stamp_ns(msg, log_time))
                        rows.append([latest[j] for j in names.ARM_JOINTS])
                if rows:
                    self.streams[f'command_{side}'] = _sorted(stamps, rows)

    def _read_task(self, reader, connections) -> None:
        if names.SUCCESS_TOPIC in connections:
            stamps, values = [], []
            for conn, log_time, raw in reader.messages(
                    connections=[connections[names.SUCCESS_TOPIC]]):
                stamps.append(int(log_time))
                values.append(bool(reader.deserialize(raw, conn.msgtype).data))
            if stamps:
                self.success = _sorted(stamps, values)
        if names.EPISODE_TOPIC in connections:
            for conn, _, raw in reader.messages(connections=[connections[names.EPISODE_TOPIC]]):
                try:
                    message = reader.deserialize(raw, conn.msgtype)
                    self.episode_info.update(json.loads(message.data))
                except (json.JSONDecodeError, TypeError):
                    pass    # informational only; the bag's custom_data has the task too

    def _index_camera(self, reader, connection, camera: str) -> None:
        stamps, ordinals = [], []
        for ordinal, (conn, log_time, raw) in enumerate(reader.messages(connections=[connection])):
            msg = reader.deserialize(raw, conn.msgtype)
            reason = _check_image(msg, connection.topic)
            if reason:
                self.bad_frames[camera] = self.bad_frames.get(camera, 0) + 1
                self.bad_reasons.setdefault(camera, reason)
                continue
            stamps.append(_stamp_ns(msg, log_time))
            ordinals.append(ordinal)
        if stamps:
            self.streams[camera] = _sorted(stamps, ordinals)


def export_episode(bag_dir: str | Path, hdf5_path: str | Path,
                   config: ExportConfig = ExportConfig()) -> tuple:
    """Export one bag. Returns (EpisodeSummary, actions (T,14), qpos (T,14))."""
    bag_dir, hdf5_path = Path(bag_dir), Path(hdf5_path)
    custom = read_custom_data(bag_dir)
    data = _BagData(bag_dir, config)
    if data.bad_frames and not config.skip_bad_frames:
        details = '; '.join(f'{data.bad_frames[c]} frame(s): {data.bad_reasons[c]}'
                            for c in data.bad_frames)
        raise ExportError(f'{bag_dir}: refusing to export bad camera frames ({details}); fix '
                          'the camera and re-record, or pass --skip-bad-frames to drop them')
    required = [f'{role}_{side}' for role in ('follower', 'leader') for side in names.SIDES]
    cameras = [c for c in config.cameras if c in data.streams]
    if config.require_cameras:
        required += list(config.cameras)
    missing = [s for s in required if s not in data.streams]
    if missing:
        raise ExportError(f'{bag_dir}: no messages from {[data.topics[s] for s in missing]}; '
                          'record those topics (or export with fewer --cameras)')
    sources = required + [s for s in ('command_left', 'command_right') if s in data.streams]
    sources += [c for c in cameras if c not in sources]
    try:
        grid = common_grid({s: (int(data.streams[s].stamps[0]), int(data.streams[s].stamps[-1]))
                            for s in sources}, config.fps)
    except ResampleError as exc:
        raise ExportError(f'{bag_dir}: {exc}') from None
    held = {s: hold_indices(data.streams[s].stamps, grid) for s in sources}
    calibration_name = config.calibration or custom.get('calibration') or 'aloha_sim'
    gripper = load_calibration(calibration_name).gripper
    qpos, qvel, effort, action = (np.zeros((len(grid), names.STATE_DIM)) for _ in range(4))
    finger = names.JOINT_STATE_NAMES.index('left_finger')
    width = len(names.JOINT_STATE_NAMES)
    for side, cols in zip(names.SIDES, names.FOLLOWER_SLICES.values()):
        follower = data.streams[f'follower_{side}'].values[held[f'follower_{side}']]
        position, velocity, torque = follower[:, :width], follower[:, width:2 * width], \
            follower[:, 2 * width:]
        qpos[:, cols] = np.column_stack([position[:, :6],
                                         gripper.follower_position_normalize(position[:, finger])])
        qvel[:, cols] = np.column_stack([velocity[:, :6],
                                         gripper.follower_velocity_normalize(velocity[:, finger])])
        effort[:, cols] = torque
        leader = data.streams[f'leader_{side}'].values[held[f'leader_{side}']]
        command = f'command_{side}'
        arm = (data.streams[command].values[held[command]] if command in data.streams
               else leader[:, :6])
        action[:, cols] = np.column_stack([arm, gripper.leader_joint_normalize(leader[:, 6])])
    success_steps = np.zeros(len(grid), dtype=bool)
    if data.success is not None:
        index = np.searchsorted(data.success.stamps, grid, side='right') - 1
        success_steps = np.where(index >= 0, data.success.values[np.maximum(index, 0)], False)
    success = bool(data.success is not None and data.success.values.any())
    task = custom.get('task') or data.episode_info.get('task', '')
    attrs = {
        'sim': custom.get('sim', 'true') == 'true', 'compress': config.compress,
        'fps': config.fps, 'task': task,
        'instruction': TASKS[task].instruction if task in TASKS else custom.get('instruction', ''),
        'success': success, 'gripper_preset': gripper.name,
        'gripper_constants': json.dumps(gripper.as_dict()), 'calibration': calibration_name,
        'source_bag': str(bag_dir.resolve()), 'recovered': custom.get('recovered') == 'true',
        'bad_frames': json.dumps(data.bad_frames), 'seed': str(data.episode_info.get(
            'seed', custom.get('seed', ''))),
    }
    stamps = {s: data.streams[s].stamps[held[s]] for s in sources}
    _write_hdf5(hdf5_path, bag_dir, config, cameras, data, held, grid, stamps, attrs,
                {'qpos': qpos, 'qvel': qvel, 'effort': effort}, action, success_steps)
    lag = {s: (float(np.mean(grid - stamps[s])) / 1e6, float(np.max(grid - stamps[s])) / 1e6)
           for s in sources}
    grippers = qpos[:, list(names.GRIPPER_INDICES)]
    summary = EpisodeSummary(bag_dir.name, hdf5_path, len(grid), (len(grid) - 1) / config.fps,
                             success, float(grippers.min()), float(grippers.max()), lag,
                             attrs['recovered'], dict(data.bad_frames))
    return summary, action, qpos


def _write_hdf5(path: Path, bag_dir: Path, config: ExportConfig, cameras, data: _BagData, held,
                grid, stamps, attrs, observations, action, success_steps) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with h5py.File(tmp, 'w') as f:
        f.attrs.update(attrs)
        obs = f.create_group('observations')
        for key, values in observations.items():
            obs.create_dataset(key, data=values.astype(np.float32))
        f.create_dataset('action', data=action.astype(np.float32))
        f.create_dataset('success', data=success_steps)
        times = f.create_group('timestamps')
        times.create_dataset('grid', data=grid)
        for source, values in stamps.items():
            times.create_dataset(source, data=values)
        images = obs.create_group('images')
        frames = _frames(bag_dir, data, held, cameras, len(grid))
        if config.compress:
            _write_jpeg(f, images, frames, cameras, len(grid), config.jpeg_quality)
        else:
            sets = {c: images.create_dataset(c, (len(grid),) + IMAGE_SHAPE, dtype=np.uint8,
                                             chunks=(1,) + IMAGE_SHAPE) for c in cameras}
            for camera, step, image in frames:
                sets[camera][step] = image
    os.replace(tmp, path)


def _frames(bag_dir: Path, data: _BagData, held, cameras, steps: int):
    """Pass 2: yield (camera, step, HxWx3 RGB) for every grid step, reading each frame once."""
    with AnyReader([bag_dir]) as reader:
        connections = {c.topic: c for c in reader.connections}
        for camera in cameras:
            ordinals = data.streams[camera].values[held[camera]]
            wanted: dict = {}
            for step, ordinal in enumerate(ordinals):
                wanted.setdefault(int(ordinal), []).append(step)
            connection = connections[data.topics[camera]]
            for ordinal, (conn, _, raw) in enumerate(reader.messages(connections=[connection])):
                if ordinal in wanted:
                    image = _to_rgb(reader.deserialize(raw, conn.msgtype))
                    for step in wanted[ordinal]:
                        yield camera, step, image


def _write_jpeg(f, images, frames, cameras, steps: int, quality: int) -> None:
    import cv2
    encoded = {c: [b''] * steps for c in cameras}
    for camera, step, image in frames:
        ok, buffer = cv2.imencode('.jpg', np.ascontiguousarray(image),
                                  [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ExportError(f'JPEG encoding failed for {camera} step {step}')
        encoded[camera][step] = buffer.tobytes()
    width = max((len(b) for c in cameras for b in encoded[c]), default=0)
    lengths = np.zeros((len(cameras), steps), dtype=np.int64)
    for i, camera in enumerate(cameras):
        padded = np.zeros((steps, width), dtype=np.uint8)
        for step, blob in enumerate(encoded[camera]):
            padded[step, :len(blob)] = np.frombuffer(blob, dtype=np.uint8)
            lengths[i, step] = len(blob)
        images.create_dataset(camera, data=padded, chunks=(1, max(width, 1)))
    f.create_dataset('compress_len', data=lengths)


def export_dataset(bag_dirs, output_dir: str | Path, config: ExportConfig = ExportConfig(),
                   progress: bool = True) -> tuple:
    """Export bags to <output_dir>/<bag name>.hdf5 and write dataset_statistics.json over all of
    them. Returns (summaries, failures {bag: error}, statistics path or None)."""
    from tqdm import tqdm
    output_dir = Path(output_dir)
    summaries, failures, actions, proprio = [], {}, [], []
    for bag_dir in tqdm(list(bag_dirs), desc='export', unit='episode', disable=not progress):
        bag_dir = Path(bag_dir)
        try:
            summary, action, qpos = export_episode(bag_dir, output_dir / f'{bag_dir.name}.hdf5',
                                                   config)
        except (ExportError, OSError, ValueError, KeyError) as exc:
            failures[str(bag_dir)] = str(exc)
            continue
        summaries.append(summary)
        actions.append(action)
        proprio.append(qpos)
    stats_path = None
    if summaries:
        from cosmos_policy_ros.model.normalization import StatisticsError, write_statistics
        try:
            write_statistics(output_dir / STATISTICS_FILE, np.concatenate(actions),
                             np.concatenate(proprio))
            stats_path = output_dir / STATISTICS_FILE
        except StatisticsError as exc:
            failures[str(output_dir / STATISTICS_FILE)] = str(exc)
    return summaries, failures, stats_path
