"""Episodes for fine-tuning: joint data + lazily read camera frames, from every ALOHA layout.

Layouts read (shared/reference/cosmos_policy.md §8, aloha_stacks.md §2.3):
- ours (`cosmos-policy-ros export`) and raw ALOHA: /observations/images/<cam> as uint8
  (T, H, W, 3), or JPEG bytes (T, L) zero-padded with /compress_len (cams, T) (compress=True);
- the released Cosmos Policy preprocessed layout: /observations/video_paths/<cam> naming an
  mp4 (256x256) beside the HDF5 file;
- rollout files: attrs success / success_score, optional top-level JPEG datasets
  primary_images_jpeg / wrist_left_images_jpeg / wrist_right_images_jpeg. Our extension:
  an optional /frame_steps (int) lists the steps that have frames (the others are empty rows),
  for rollouts rendered every k-th control tick (`eval --rollout-frame-stride k`); only steps
  whose frame and future frame both exist are sampled (Episode.sample_steps).
Joint data: /observations/qpos (T, 14) and /action (T, 14), the 14-d [left 6, left gripper,
right 6, right gripper] layout. Images come back as stored (RGB for ROS rgb8 recordings; mp4s
are converted from OpenCV's BGR, as the reference loader does).
"""
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from cosmos_policy_ros.names import CAMERAS, CHUNK_LENGTH, STATE_DIM

DEMO, ROLLOUT = 'demo', 'rollout'
KINDS = (DEMO, ROLLOUT)
# Rollout JPEG datasets of the reference's rollout files, per camera.
ROLLOUT_JPEG_KEYS = {'cam_high': 'primary_images_jpeg', 'cam_left_wrist': 'wrist_left_images_jpeg',
                     'cam_right_wrist': 'wrist_right_images_jpeg'}
_INSTRUCTION_ATTRS = ('instruction', 'task_description', 'language_instruction')


def future_index(t: int, length: int, chunk: int = CHUNK_LENGTH) -> int:
    """A sample's future step: the end of its action chunk, clipped to the episode."""
    return min(t + chunk, length - 1)


def frame_steps_valid(steps: np.ndarray, length: int) -> bool:
    """A rollout's /frame_steps: non-empty, strictly increasing, inside 0..length-1."""
    return bool(steps.size and steps.min() >= 0 and steps.max() < length
                and np.all(np.diff(steps) > 0))


class EpisodeError(ValueError):
    """An episode file is missing data, malformed or inconsistent with the others."""


class FrameReader:
    """frames(indices) -> (n, H, W, 3) uint8 for one camera of one episode file."""

    def __init__(self, path: Path, camera: str, length: int):
        self.path, self.camera, self.length = path, camera, length

    def frames(self, indices) -> np.ndarray:
        raise NotImplementedError

    def _check(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.length):
            raise EpisodeError(f'{self.path}: {self.camera} frame index out of range '
                               f'0..{self.length - 1}: {indices.min()}..{indices.max()}')
        return indices


class ArrayFrames(FrameReader):
    """Raw uint8 (T, H, W, 3) HDF5 dataset."""

    def __init__(self, path: Path, camera: str, length: int, key: str):
        super().__init__(path, camera, length)
        self.key = key

    def frames(self, indices) -> np.ndarray:
        indices = self._check(indices)
        order = np.argsort(indices)
        unique, inverse = np.unique(indices[order], return_inverse=True)
        with h5py.File(self.path, 'r') as f:
            data = f[self.key][unique.tolist()]
        out = np.empty((len(indices),) + data.shape[1:], dtype=np.uint8)
        out[order] = data[inverse]
        return out


class JpegFrames(FrameReader):
    """JPEG bytes per frame: zero-padded rows with their lengths, or variable-length rows."""

    def __init__(self, path: Path, camera: str, length: int, key: str,
                 lengths: np.ndarray | None):
        super().__init__(path, camera, length)
        self.key, self.lengths = key, lengths

    def frames(self, indices) -> np.ndarray:
        import cv2
        indices = self._check(indices)
        images = []
        with h5py.File(self.path, 'r') as f:
            data = f[self.key]
            for index in indices.tolist():
                raw = np.asarray(data[index], dtype=np.uint8).reshape(-1)
                if self.lengths is not None:
                    raw = raw[:int(self.lengths[index])]
                if raw.size == 0:
                    raise EpisodeError(f'{self.path}: {self.key}[{index}] has no frame (a '
                                       'rollout rendered every k-th step: read only the '
                                       'steps in its /frame_steps)')
                image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
                if image is None:
                    raise EpisodeError(f'{self.path}: {self.key}[{index}] is not a decodable '
                                       'JPEG; re-export the episode')
                images.append(image)
        return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)


class VideoFrames(FrameReader):
    """An mp4 beside the HDF5 (released preprocessed layout), decoded once and kept."""

    def __init__(self, path: Path, camera: str, length: int, video: Path):
        super().__init__(path, camera, length)
        self.video = video
        self._cache: np.ndarray | None = None

    def decode(self) -> np.ndarray:
        import cv2
        if self._cache is None:
            capture = cv2.VideoCapture(str(self.video))
            if not capture.isOpened():
                raise EpisodeError(f'{self.path}: cannot open video {self.video} of '
                                   f'{self.camera}; is the mp4 beside the HDF5 file?')
            frames = []
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            capture.release()
            if len(frames) < self.length:
                raise EpisodeError(f'{self.video}: {len(frames)} frames but the episode has '
                                   f'{self.length} steps; re-run the preprocessing')
            self._cache = np.stack(frames[:self.length])
        return self._cache

    def frames(self, indices) -> np.ndarray:
        return self.decode()[self._check(indices)]


@dataclass
class Episode:
    path: Path
    qpos: np.ndarray                  # (T, 14) float64, robot units
    actions: np.ndarray               # (T, 14) float64, robot units
    kind: str                         # demo | rollout
    success: bool
    reward: float                     # terminal reward: success_score, or 1.0 / 0.0
    instruction: str
    readers: dict = field(repr=False)  # camera -> FrameReader
    image_shape: tuple = ()           # (H, W, 3) of the stored frames
    frame_steps: np.ndarray | None = None  # steps with frames; None = every step

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def steps_with_frames(self) -> np.ndarray:
        return np.arange(self.length) if self.frame_steps is None else self.frame_steps

    @property
    def sample_steps(self) -> np.ndarray:
        """Steps t that can be samples: t and its future index both have frames."""
        if self.frame_steps is None:
            return self.steps_with_frames
        have = set(self.frame_steps.tolist())
        return np.array([t for t in self.frame_steps.tolist()
                         if future_index(t, self.length) in have], dtype=np.int64)

    @property
    def cameras(self) -> tuple:
        return tuple(self.readers)

    def images(self, camera: str, indices) -> np.ndarray:
        if camera not in self.readers:
            raise EpisodeError(f'{self.path}: no camera {camera!r}; it has {list(self.readers)}')
        return self.readers[camera].frames(indices)

    @property
    def fingerprint(self) -> str:
        """Identity of the file's current contents for caches: path, size and mtime."""
        stat = self.path.stat()
        return f'{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}'


def find_episode_files(paths) -> list[Path]:
    """HDF5 files among `paths` (files, or directories searched non-recursively and
    recursively for *.hdf5 / *.h5), in natural order (episode_2 before episode_10)."""
    files = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted((p for p in path.rglob('*') if p.suffix in ('.hdf5', '.h5')
                            and not p.name.endswith('.tmp')), key=_natural_key)
            files += found
        else:
            raise EpisodeError(f'{path}: no such file or directory; pass episode HDF5 files or '
                               'directories holding them')
    return files


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', str(path))]


def _attr(f, name, default=None):
    value = f.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode('utf-8')
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _vector(f, key: str, path: Path) -> np.ndarray:
    if key not in f:
        raise EpisodeError(f'{path}: missing /{key}; an ALOHA episode needs /observations/qpos '
                           'and /action of shape (T, 14)')
    values = np.asarray(f[key][()], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != STATE_DIM or len(values) == 0:
        raise EpisodeError(f'{path}: /{key} must be (T, {STATE_DIM}) with T >= 1 [left 6, left '
                           f'gripper, right 6, right gripper], got {values.shape}')
    if not np.all(np.isfinite(values)):
        raise EpisodeError(f'{path}: /{key} has NaN/inf at rows '
                           f'{np.flatnonzero(~np.isfinite(values).all(1))[:5].tolist()}; drop '
                           'or repair the episode')
    return values


def _reader(f, path: Path, camera: str, length: int) -> FrameReader:
    images = f.get('observations/images')
    if images is not None and camera in images:
        data = images[camera]
        if data.ndim == 4:
            if data.shape[0] != length or data.shape[3] != 3 or data.dtype != np.uint8:
                raise EpisodeError(f'{path}: /observations/images/{camera} must be uint8 '
                                   f'({length}, H, W, 3), got {data.dtype} {data.shape}')
            return ArrayFrames(path, camera, length, data.name)
        if data.shape[0] != length:
            raise EpisodeError(f'{path}: /observations/images/{camera} has {data.shape[0]} '
                               f'frames but /action has {length} steps')
        # Zero-padded rows decode as stored (the decoder stops at the JPEG end marker), as
        # ALOHA's own loaders do. /compress_len is not used: its rows follow the recorder's
        # camera list, which HDF5 does not keep (groups list cameras alphabetically, so
        # stationary ALOHA's cam_low would lend its lengths to cam_left_wrist).
        return JpegFrames(path, camera, length, data.name, None)
    videos = f.get('observations/video_paths')
    if videos is not None and camera in videos:
        name = videos[camera][()]
        name = name.decode('utf-8') if isinstance(name, bytes) else str(name)
        video = Path(name) if Path(name).is_absolute() else path.parent / name
        return VideoFrames(path, camera, length, video)
    key = ROLLOUT_JPEG_KEYS.get(camera)
    if key and key in f:
        if f[key].shape[0] != length:
            raise EpisodeError(f'{path}: /{key} has {f[key].shape[0]} frames but /action has '
                               f'{length} steps')
        return JpegFrames(path, camera, length, f'/{key}', None)
    raise EpisodeError(f'{path}: no images for camera {camera!r} (looked for '
                       f'/observations/images/{camera}, /observations/video_paths/{camera}'
                       f'{", /" + key if key else ""}); pass the cameras the data has')


def _frame_steps(f, path: Path, length: int) -> np.ndarray | None:
    if 'frame_steps' not in f:
        return None
    steps = np.asarray(f['frame_steps'][()], dtype=np.int64).reshape(-1)
    if not frame_steps_valid(steps, length):
        raise EpisodeError(f'{path}: /frame_steps must be increasing steps in 0..{length - 1}, '
                           f'got {steps[:5].tolist()}...; re-record the rollout')
    return steps


def read_episode(path: str | Path, cameras=CAMERAS, kind: str | None = None,
                 instruction: str = '') -> Episode:
    """One episode file. kind None: 'rollout' if the file has success/success_score attrs
    and no demo marker, else 'demo'. instruction '' takes the file's attrs."""
    path = Path(path)
    try:
        f = h5py.File(path, 'r')
    except OSError as exc:
        raise EpisodeError(f'{path}: not a readable HDF5 file ({exc})') from None
    with f:
        qpos = _vector(f, 'observations/qpos', path)
        actions = _vector(f, 'action', path)
        if len(qpos) != len(actions):
            raise EpisodeError(f'{path}: /observations/qpos has {len(qpos)} steps but /action '
                               f'{len(actions)}; the episode is truncated or misaligned')
        readers = {camera: _reader(f, path, camera, len(actions)) for camera in cameras}
        frame_steps = _frame_steps(f, path, len(actions))
        has_score = 'success_score' in f.attrs
        if kind is None:
            kind = ROLLOUT if (has_score or _attr(f, 'policy_name')) else DEMO
        if kind not in KINDS:
            raise EpisodeError(f'{path}: kind {kind!r} is not one of {list(KINDS)}')
        success = bool(_attr(f, 'success', kind == DEMO))
        reward = float(_attr(f, 'success_score', 1.0 if success else 0.0))
        if not 0.0 <= reward <= 1.0:
            raise EpisodeError(f'{path}: success_score {reward} must be in [0, 1]')
        text = instruction or next((str(_attr(f, k)) for k in _INSTRUCTION_ATTRS
                                    if _attr(f, k)), '')
    if not text:   # the reference names tasks by folder: <task>/{train,val}/episode_i.hdf5
        folder = path.parent.parent if path.parent.name in ('train', 'val') else path.parent
        text = folder.name.replace('_', ' ')
    first = 0 if frame_steps is None else int(frame_steps[0])
    shape = readers[cameras[0]].frames([first]).shape[1:] if cameras else ()
    return Episode(path, qpos, actions, kind, success, reward, text, readers, tuple(shape),
                   frame_steps)


def read_episodes(paths, cameras=CAMERAS, kind: str | None = None,
                  instruction: str = '') -> list[Episode]:
    """Every episode under `paths`; all must have the same cameras and image size."""
    files = find_episode_files(paths)
    if not files:
        raise EpisodeError(f'no episode files (*.hdf5) found in {[str(p) for p in paths]}; '
                           'record and export demonstrations first (cosmos-policy-ros record)')
    episodes = [read_episode(file, cameras, kind, instruction) for file in files]
    first = episodes[0]
    for episode in episodes[1:]:
        if episode.image_shape != first.image_shape:
            raise EpisodeError(f'{episode.path}: images are {episode.image_shape} but '
                               f'{first.path} has {first.image_shape}; export all episodes '
                               'from the same cameras')
    return episodes
