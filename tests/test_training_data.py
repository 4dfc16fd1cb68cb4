"""Training data (ROS-free): episode readers for every layout, sample windows and the data mix,
augmentation, the latent cache and batch assembly, on real HDF5 / JPEG / mp4 files."""
import copy
import dataclasses
import json
import os
import re

import cv2
import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.config import VAEConfig
from cosmos_policy_ros.model.layout import SampleKind
from cosmos_policy_ros.model.preprocess import (
    center_crop_resize,
    preprocess_image,
    to_model_tensor,
)
from cosmos_policy_ros.model.vae import WanVAE
from cosmos_policy_ros.names import CAMERAS
from cosmos_policy_ros.training.augment import (
    AugmentConfig,
    AugmentParams,
    apply,
    augmented_view,
)
from cosmos_policy_ros.training.config import DataConfig
from cosmos_policy_ros.training.dataset import (
    DataError,
    TrainingData,
    load_episodes,
    split_episodes,
    statistics_of,
    validation_rows,
)
from cosmos_policy_ros.training.episodes import (
    EpisodeError,
    find_episode_files,
    read_episode,
    read_episodes,
)
from cosmos_policy_ros.training.latent_cache import (
    CacheError,
    CacheKey,
    LatentCache,
    SampleEncoder,
    state_hash,
)
from cosmos_policy_ros.training.samples import (
    MixConfig,
    SampleMix,
    episode_returns,
    window,
)

pytestmark = pytest.mark.usefixtures('one_torch_thread')

H, W = 48, 64
ALL_CAMERAS = CAMERAS + ('cam_low',)
ROLLOUT_KEYS = {'cam_high': 'primary_images_jpeg', 'cam_left_wrist': 'wrist_left_images_jpeg',
                'cam_right_wrist': 'wrist_right_images_jpeg'}


# ---------------------------------------------------------------------------- synthetic files
def frame(step: int, camera: str, shape=(H, W)) -> np.ndarray:
    """Smooth gradient background + a coloured square whose position encodes the step;
    cam_low is a flat grey (tiny JPEGs)."""
    h, w = shape
    index = ALL_CAMERAS.index(camera)
    if camera == 'cam_low':
        return np.full((h, w, 3), 100 + step, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.empty((h, w, 3), np.uint8)
    image[..., 0] = 40 + 80 * xx // w
    image[..., 1] = 60 + 40 * index
    image[..., 2] = 50 + 100 * yy // h
    side = max(h // 4, 2)
    top, left = (2 * step + 3 * index) % (h - side), (3 * step) % (w - side)
    image[top:top + side, left:left + side] = (230, 40 + 60 * index, 30)
    return image


def frames(camera: str, length: int, shape=(H, W)) -> np.ndarray:
    return np.stack([frame(t, camera, shape) for t in range(length)])


def joints(length: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """qpos and actions (T, 14), varying in every dimension."""
    steps, dims = np.arange(length)[:, None], np.arange(14)[None]
    qpos = 0.01 * steps * (dims + 1) + 0.1 * dims + offset
    return qpos, qpos + 0.5 + 0.001 * steps ** 2


def _joints(f, length, offset, qpos, actions):
    q, a = joints(length, offset)
    f.create_dataset('observations/qpos', data=q if qpos is None else qpos)
    f.create_dataset('action', data=a if actions is None else actions)


def write_raw(path, length=12, cameras=CAMERAS, shape=(H, W), attrs=None, offset=0.0,
              qpos=None, actions=None, image_steps=None):
    """Raw uint8 /observations/images/<cam> (T, H, W, 3) (ours / raw ALOHA)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        _joints(f, length, offset, qpos, actions)
        for camera in cameras:
            f.create_dataset(f'observations/images/{camera}',
                             data=frames(camera, image_steps or length, shape))
        f.attrs.update(attrs or {})
    return path


def jpeg(image: np.ndarray) -> np.ndarray:
    ok, buffer = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buffer.reshape(-1)


def write_aloha_jpeg(path, length=12, cameras=('cam_high', 'cam_low', 'cam_left_wrist',
                                                'cam_right_wrist'), attrs=None):
    """ALOHA record_episodes compress=True: one padded width for all cameras, /compress_len
    rows in the recorder's camera order (stationary ALOHA: cam_low second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {camera: [jpeg(image) for image in frames(camera, length)] for camera in cameras}
    lengths = np.array([[len(b) for b in encoded[camera]] for camera in cameras])
    width = lengths.max()
    with h5py.File(path, 'w') as f:
        _joints(f, length, 0.0, None, None)
        for camera in cameras:
            padded = np.zeros((length, width), np.uint8)
            for t, blob in enumerate(encoded[camera]):
                padded[t, :len(blob)] = blob
            f.create_dataset(f'observations/images/{camera}', data=padded)
        f.create_dataset('compress_len', data=lengths)
        f.attrs.update({'compress': True, 'sim': False, **(attrs or {})})
    return path


def write_preprocessed(directory, index=0, length=12, cameras=CAMERAS, shape=(H, W)):
    """The released layout: episode_<i>.hdf5 + episode_<i>_<cam>.mp4 (RGB->BGR, mp4v)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f'episode_{index}.hdf5'
    with h5py.File(path, 'w') as f:
        _joints(f, length, 0.0, None, None)
        for camera in cameras:
            name = f'episode_{index}_{camera}.mp4'
            writer = cv2.VideoWriter(str(directory / name), cv2.VideoWriter_fourcc(*'mp4v'), 25,
                                     (shape[1], shape[0]))
            assert writer.isOpened()
            for image in frames(camera, length, shape):
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            writer.release()
            f.create_dataset(f'observations/video_paths/{camera}', data=name.encode('utf-8'))
        f.attrs['sim'] = False
    return path


def write_rollout(path, length=12, success=True, score=1.0, cameras=CAMERAS, shape=(H, W),
                  offset=0.0, frame_steps=None):
    """Reference rollout file: attrs + top-level variable-length JPEG datasets; with
    frame_steps, frames at those steps only and /frame_steps (our sparse extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        _joints(f, length, offset, None, None)
        if frame_steps is not None:
            f['frame_steps'] = np.asarray(frame_steps, np.int32)
        for camera in cameras:
            data = f.create_dataset(ROLLOUT_KEYS[camera], (length,),
                                    dtype=h5py.vlen_dtype(np.uint8))
            for t, image in enumerate(frames(camera, length, shape)):
                if frame_steps is None or t in frame_steps:
                    data[t] = jpeg(image)
        f.attrs.update({'success': success, 'success_score': score,
                        'policy_name': 'cosmos_policy', 'task_description': 'fold the towel'})
    return path


def mean_abs(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def check_frames(episode, camera, indices, tolerance):
    """Frames come back in the asked order, each closest to its own original."""
    got = episode.images(camera, indices)
    assert got.dtype == np.uint8 and got.shape == (len(indices), H, W, 3)
    for image, t in zip(got, indices):
        error = mean_abs(image, frame(t, camera))
        assert error < tolerance, (camera, t, error)
        others = [mean_abs(image, frame(s, camera)) for s in range(episode.length) if s != t]
        assert error < min(others), (camera, t)


# ---------------------------------------------------------------------------- 1. readers
def test_read_raw_uint8_layout(tmp_path):
    path = write_raw(tmp_path / 'demos' / 'episode_0.hdf5',
                     attrs={'success': True, 'instruction': 'transfer the cube'})
    episode = read_episode(path)
    q, a = joints(12)
    np.testing.assert_array_equal(episode.qpos, q)
    np.testing.assert_array_equal(episode.actions, a)
    assert episode.qpos.dtype == np.float64 and episode.length == 12
    assert (episode.kind, episode.success, episode.reward) == ('demo', True, 1.0)
    assert episode.instruction == 'transfer the cube'
    assert episode.cameras == CAMERAS and episode.image_shape == (H, W, 3)
    for camera in CAMERAS:
        got = episode.images(camera, [7, 2, 7, 11])      # unsorted, repeated
        np.testing.assert_array_equal(got, frames(camera, 12)[[7, 2, 7, 11]])
    with pytest.raises(EpisodeError, match='cam_high frame index out of range 0..11'):
        episode.images('cam_high', [12])
    with pytest.raises(EpisodeError, match="no camera 'cam_low'"):
        episode.images('cam_low', [0])
    # An explicit instruction wins over the attrs; a failed demo keeps kind demo.
    with h5py.File(path, 'a') as f:
        f.attrs['success'] = False
    episode = read_episode(path, instruction='stack the cups')
    assert (episode.instruction, episode.kind, episode.success, episode.reward) == (
        'stack the cups', 'demo', False, 0.0)


def test_read_aloha_compressed_jpeg_layout(tmp_path):
    path = write_aloha_jpeg(tmp_path / 'aloha' / 'episode_0.hdf5',
                            attrs={'language_instruction': 'open the drawer'})
    episode = read_episode(path)          # the three policy cameras of a 4-camera recording
    q, a = joints(12)
    np.testing.assert_array_equal(episode.qpos, q)
    np.testing.assert_array_equal(episode.actions, a)
    assert (episode.kind, episode.success, episode.reward) == ('demo', True, 1.0)
    assert episode.instruction == 'open the drawer' and episode.image_shape == (H, W, 3)
    for camera in CAMERAS:
        check_frames(episode, camera, [9, 0, 4], tolerance=3.0)
    low = read_episode(path, cameras=('cam_low',)).images('cam_low', [5])
    assert mean_abs(low[0], frame(5, 'cam_low')) < 1.0


def test_read_released_preprocessed_mp4_layout(tmp_path):
    path = write_preprocessed(tmp_path / 'put_candies_in_bowl' / 'train')
    episode = read_episode(path)
    q, a = joints(12)
    np.testing.assert_array_equal(episode.qpos, q)
    np.testing.assert_array_equal(episode.actions, a)
    assert (episode.kind, episode.success, episode.reward) == ('demo', True, 1.0)
    # No instruction attr: the task folder, <task>/{train,val}/ as the reference reads it.
    assert episode.instruction == 'put candies in bowl'
    assert episode.image_shape == (H, W, 3)
    for camera in CAMERAS:
        check_frames(episode, camera, [0, 6, 11, 3], tolerance=12.0)
    # Colour order: the square is red in RGB (BGR would put 230 in the blue channel).
    image = episode.images('cam_high', [0])[0]
    assert image[2:12, 2:12, 0].mean() > 200 and image[2:12, 2:12, 2].mean() < 60
    # Without a split folder the parent names the task; a missing mp4 is a clear error.
    path = write_preprocessed(tmp_path / 'transfer_cube', index=1, length=4)
    assert read_episode(path).instruction == 'transfer cube'
    os.unlink(tmp_path / 'transfer_cube' / 'episode_1_cam_right_wrist.mp4')
    with pytest.raises(EpisodeError, match='cannot open video .*episode_1_cam_right_wrist.mp4'):
        read_episode(path, cameras=('cam_right_wrist',))


def test_read_rollout_jpeg_layout(tmp_path):
    path = write_rollout(tmp_path / 'rollouts' / 'rollout_0.hdf5', success=False, score=0.4)
    episode = read_episode(path)
    q, a = joints(12)
    np.testing.assert_array_equal(episode.qpos, q)
    np.testing.assert_array_equal(episode.actions, a)
    assert (episode.kind, episode.success, episode.reward) == ('rollout', False, 0.4)
    assert episode.instruction == 'fold the towel' and episode.image_shape == (H, W, 3)
    for camera in CAMERAS:
        check_frames(episode, camera, [11, 5, 1], tolerance=3.0)
    success = read_episode(write_rollout(tmp_path / 'rollouts' / 'rollout_1.hdf5'))
    assert (success.kind, success.success, success.reward) == ('rollout', True, 1.0)
    # A rollout's images that are not JPEG say so.
    with h5py.File(path, 'a') as f:
        f['primary_images_jpeg'][3] = np.arange(20, dtype=np.uint8)
    with pytest.raises(EpisodeError, match=r'/primary_images_jpeg\[3\] is not a decodable JPEG'):
        read_episode(path).images('cam_high', [3])


# ---------------------------------------------------------------------------- 2. bad input
def test_bad_episodes_give_clear_errors(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(EpisodeError, match='no episode files'):
        read_episodes([tmp_path / 'empty'])
    with pytest.raises(EpisodeError, match='no episode files'):
        load_episodes(DataConfig(episodes=(str(tmp_path / 'empty'),)))
    with pytest.raises(DataError, match='data.episodes and data.rollouts are empty'):
        load_episodes(DataConfig())
    with pytest.raises(EpisodeError, match='no such file or directory'):
        read_episodes([tmp_path / 'nowhere'])

    def broken(name, **kwargs):
        return write_raw(tmp_path / 'bad' / f'{name}.hdf5', length=6, shape=(8, 8), **kwargs)

    path = broken('no_action')
    with h5py.File(path, 'a') as f:
        del f['action']
    with pytest.raises(EpisodeError, match='missing /action'):
        read_episode(path)
    with pytest.raises(EpisodeError, match=re.escape('/observations/qpos must be (T, 14)')):
        read_episode(broken('qpos13', qpos=np.zeros((6, 13))))
    with pytest.raises(EpisodeError, match='/observations/qpos has 6 steps but /action 5'):
        read_episode(broken('misaligned', actions=joints(5)[1]))
    actions = joints(6)[1]
    actions[3, 2] = np.nan
    with pytest.raises(EpisodeError, match=re.escape('/action has NaN/inf at rows [3]')):
        read_episode(broken('nan', actions=actions))
    with pytest.raises(EpisodeError, match="no images for camera 'cam_right_wrist'"):
        read_episode(broken('two_cams', cameras=('cam_high', 'cam_left_wrist')))
    with pytest.raises(EpisodeError, match=re.escape(
            '/observations/images/cam_high must be uint8 (6, H, W, 3), got uint8 (5, 8, 8, 3)')):
        read_episode(broken('short_images', image_steps=5))
    short = write_rollout(tmp_path / 'bad' / 'rollout.hdf5', length=6, shape=(8, 8))
    with h5py.File(short, 'a') as f:
        del f['action'], f['observations/qpos']
        _joints(f, 7, 0.0, None, None)
    with pytest.raises(EpisodeError, match='/primary_images_jpeg has 6 frames but /action has 7'):
        read_episode(short)
    (tmp_path / 'text.hdf5').write_text('not hdf5')
    with pytest.raises(EpisodeError, match='not a readable HDF5 file'):
        read_episode(tmp_path / 'text.hdf5')

    mixed = tmp_path / 'mixed'
    write_raw(mixed / 'episode_0.hdf5', length=4, shape=(H, W))
    write_raw(mixed / 'episode_1.hdf5', length=4, shape=(32, 32))
    with pytest.raises(EpisodeError, match=re.escape('images are (32, 32, 3) but')):
        read_episodes([mixed])
    # Across the demo and rollout folders the dataset check names the shapes.
    with pytest.raises(DataError, match='different image shapes'):
        load_episodes(DataConfig(episodes=(str(mixed / 'episode_0.hdf5'),),
                                 rollouts=(str(mixed / 'episode_1.hdf5'),)))


# ---------------------------------------------------------------------------- 3. samples
def test_windows_against_hand_computed_targets(tmp_path):
    length, gamma = 70, 0.9
    cams = ('cam_high',)
    demo = read_episode(write_raw(tmp_path / 'demo.hdf5', length, cams, (8, 8)), cams)
    failed = read_episode(write_rollout(tmp_path / 'fail.hdf5', length, False, 0.0, cams,
                                        (8, 8)), cams)
    partial = read_episode(write_rollout(tmp_path / 'part.hdf5', length, False, 0.4, cams,
                                         (8, 8)), cams)
    assert (failed.kind, partial.kind, partial.reward) == ('rollout', 'rollout', 0.4)
    q, a = joints(length)
    returns = episode_returns(demo, gamma)
    # t = 0: no padding, future index t + 50, G = gamma^(T-1-50).
    w = window(demo, 0, returns)
    assert (w.t, w.future_t) == (0, 50)
    np.testing.assert_array_equal(w.actions, a[0:50])
    np.testing.assert_array_equal(w.proprio, q[0])
    np.testing.assert_array_equal(w.future_proprio, q[50])
    assert w.value == pytest.approx(2 * gamma ** 19 - 1, rel=1e-6)
    # t = 10: future 60.
    w = window(demo, 10, returns)
    assert w.future_t == 60 and w.value == pytest.approx(2 * gamma ** 9 - 1, rel=1e-6)
    np.testing.assert_array_equal(w.actions, a[10:60])
    np.testing.assert_array_equal(w.future_proprio, q[60])
    # t = 65: 5 real actions then the last one repeated 45 times; future clipped to T-1.
    w = window(demo, 65, returns)
    assert w.future_t == 69 and w.value == pytest.approx(1.0)
    np.testing.assert_array_equal(w.actions[:5], a[65:70])
    np.testing.assert_array_equal(w.actions[5:], np.repeat(a[69:70], 45, 0))
    assert w.actions.shape == (50, 14)
    np.testing.assert_array_equal(w.future_proprio, q[69])
    # t = 19: future exactly T-1 without clipping; t = 20 clips.
    assert window(demo, 19, returns).future_t == 69 and window(demo, 20, returns).future_t == 69
    with pytest.raises(IndexError, match='step 70 outside 0..69'):
        window(demo, 70, returns)
    # A failure is -1 everywhere; a partial score maps like a success (reference quirk).
    failed_returns = episode_returns(failed, gamma)
    np.testing.assert_array_equal(failed_returns, -np.ones(length, np.float32))
    assert window(failed, 0, failed_returns).value == -1.0
    partial_returns = episode_returns(partial, gamma)
    np.testing.assert_allclose(partial_returns, returns, rtol=1e-6)
    expected = 2 * gamma ** (length - 1 - np.arange(length)) - 1
    np.testing.assert_allclose(returns, expected, rtol=1e-5, atol=1e-6)
    for t in (0, 10, 65):
        assert window(partial, t, partial_returns).value == pytest.approx(
            window(demo, t, returns).value)


def _kind_shares(draws):
    kinds = [kind for _, _, kind in draws]
    return {kind.value: kinds.count(kind) / len(kinds) for kind in SampleKind}


def test_sample_mix_proportions_and_draws(tmp_path):
    cams = ('cam_high',)

    def episode(name, length, **rollout):
        path = tmp_path / f'{name}.hdf5'
        if rollout:
            return read_episode(write_rollout(path, length, cameras=cams, shape=(8, 8),
                                              **rollout), cams)
        return read_episode(write_raw(path, length, cams, (8, 8)), cams)

    demos = [episode('demo_0', 5), episode('demo_1', 9)]
    # The released base policy: demos only, also used as successful rollouts.
    mix = SampleMix(demos, MixConfig())
    assert mix.proportions() == {'policy': 0.5, 'world_model': 0.25, 'value': 0.25}
    draws = mix.draw(np.random.default_rng(0), 4000)
    shares = _kind_shares(draws)
    for kind, expected in mix.proportions().items():
        assert abs(shares[kind] - expected) < 0.03, (kind, shares)
    assert all(t < demos[e].length for e, t, _ in draws)
    # Every step equally likely: episode 1 (9 of 14 steps) gets ~9/14 of the draws.
    assert abs(np.mean([e == 1 for e, _, _ in draws]) - 9 / 14) < 0.03
    assert mix.draw(np.random.default_rng(5), 50) == mix.draw(np.random.default_rng(5), 50)

    # The planning model: demos at 0.1, rollouts split 50/50 success/failure.
    episodes = demos + [episode('success', 6, success=True, score=1.0),
                        episode('failure', 7, success=False, score=0.0)]
    mix = SampleMix(episodes, MixConfig(demo_sampling_prob=0.1,
                                        demos_as_success_rollouts=False))
    proportions = mix.proportions()
    assert proportions['policy'] == pytest.approx(0.1)
    assert proportions['world_model'] == pytest.approx(0.45)
    assert proportions['value'] == pytest.approx(0.45)
    draws = mix.draw(np.random.default_rng(1), 4000)
    shares = _kind_shares(draws)
    for kind, expected in proportions.items():
        assert abs(shares[kind] - expected) < 0.03, (kind, shares)
    assert all((kind is SampleKind.POLICY) == (e < 2) for e, _, kind in draws)
    rollout_draws = [e for e, _, kind in draws if kind is not SampleKind.POLICY]
    assert abs(np.mean([e == 2 for e in rollout_draws]) - 0.5) < 0.03
    with pytest.raises(ValueError, match='demo_sampling_prob must be in'):
        MixConfig(demo_sampling_prob=1.5)


# ---------------------------------------------------------------------------- 4. augment
def _smooth_images(count=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 4, 4, 3)).astype(np.uint8)
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
                     for image in small])


def test_augmentation_draws():
    config = AugmentConfig()
    images = _smooth_images()
    view0 = augmented_view(images, config, 0, (3, 7))
    np.testing.assert_array_equal(view0, np.stack([center_crop_resize(i) for i in images]))
    assert view0.dtype == np.uint8 and view0.shape == images.shape
    first = augmented_view(images, config, 1, (3, 7))
    assert first.dtype == np.uint8 and first.shape == images.shape
    np.testing.assert_array_equal(first, augmented_view(images, config, 1, (3, 7)))
    for other in (augmented_view(images, config, 2, (3, 7)),
                  augmented_view(images, config, 1, (3, 8)),
                  augmented_view(images, config, 1, (4, 7))):
        assert not np.array_equal(first, other)
    assert not np.array_equal(first, view0)
    # One parameter draw for every image of the call.
    twins = np.stack([images[0], images[0], images[1]])
    out = augmented_view(twins, config, 3, (1, 2))
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])
    # Black stays black (zero-filled rotation, colour jitter of zero).
    black = np.zeros_like(images)
    for draw in (1, 2, 3, 4):
        np.testing.assert_array_equal(augmented_view(black, config, draw, (9, 9)), black)
    # Disabled: every draw is the test-time view.
    disabled = AugmentConfig(enabled=False)
    np.testing.assert_array_equal(augmented_view(images, disabled, 5, (3, 7)), view0)
    # Identity parameters change nothing; a brightness of 0.5 halves the pixels.
    identity = AugmentParams(0, 0, 32, 0.0, 1.0, 1.0, 1.0, 0.0)
    np.testing.assert_array_equal(apply(images, identity), images)
    half = apply(images, dataclasses.replace(identity, brightness=0.5))
    assert np.abs(half.astype(int) - np.round(images / 2)).max() <= 1
    with pytest.raises(ValueError, match='augment.contrast'):
        AugmentConfig(contrast=(1.4, 0.6))


# ---------------------------------------------------------------------------- 5. latent cache
class RecordingEncoder(SampleEncoder):
    """A real SampleEncoder that also records which (episode, t, draw) it encodes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def encode(self, episode, items):
        self.calls += [(episode.path.name, t, d) for t, d in items]
        return super().encode(episode, items)


def _vae(seed=0, dim=4):
    torch.manual_seed(seed)
    return WanVAE(VAEConfig(dim=dim, num_res_blocks=1)).eval()


def _key(vae, size, draws, augment=AugmentConfig()):
    return CacheKey(vae_hash=state_hash(vae), vae_config=repr(vae.cfg), image_size=size,
                    augment=json.loads(json.dumps(vars(augment), default=list)), draws=draws,
                    layout=L.ALOHA_LAYOUT.name, cameras=CAMERAS)


def test_latent_cache_build_resume_and_errors(tmp_path):
    size, draws = 32, 2
    vae = _vae()
    episodes = read_episodes([write_raw(tmp_path / 'demos' / 'episode_0.hdf5', 5),
                              write_raw(tmp_path / 'demos' / 'episode_1.hdf5', 4, offset=1.0)])
    encoder = RecordingEncoder(vae, L.ALOHA_LAYOUT, size, AugmentConfig())
    key = _key(vae, size, draws)
    cache = LatentCache(tmp_path / 'cache', key, encoder, batch_size=4)
    assert cache.dir == tmp_path / 'cache' / key.digest()
    report = cache.build(episodes, progress=False)
    assert report['encoded'] == (5 + 4) * draws
    expected_calls = [(e.path.name, t, d) for e in episodes for t in range(e.length)
                      for d in range(draws)]
    assert sorted(encoder.calls) == sorted(expected_calls)
    assert len(set(encoder.calls)) == len(encoder.calls)          # each exactly once
    shards = sorted(p.name for p in cache.dir.glob('*.safetensors'))
    assert shards == sorted([cache.shard_path(e).name for e in episodes] +
                                    ['blank.safetensors'])
    assert json.loads((cache.dir / 'key.json').read_text())['draws'] == draws

    roles = [2, 3, 4, 7, 8, 9]
    plain = SampleEncoder(vae, L.ALOHA_LAYOUT, size, AugmentConfig())
    for episode in episodes:
        latents = cache.load(episode)
        assert latents.dtype == torch.float16
        assert tuple(latents.shape) == (episode.length, draws, 6, 16, 4, 4)
        items = [(t, d) for t in range(episode.length) for d in range(draws)]
        direct = plain.encode(episode, items).reshape(episode.length, draws, 6, 16, 4, 4)
        torch.testing.assert_close(latents.float(), direct, rtol=2e-3, atol=2e-3)
        assert not torch.allclose(latents[:, 0].float(), latents[:, 1].float(), atol=1e-2)
        # Draw 0 = the deployed policy's view: preprocess with the test-time crop, encode.
        future = episode.length - 1                    # T < 50: every future index is T-1
        current = {c: to_model_tensor(np.stack([
            preprocess_image(frame(t, c), c, size, raw_hw=(H, W)) for t in range(episode.length)
        ])) for c in CAMERAS}
        later = {c: to_model_tensor(np.stack([preprocess_image(frame(future, c), c, size,
                                                               raw_hw=(H, W))] * episode.length))
                 for c in CAMERAS}
        with torch.no_grad():
            video = L.build_pixel_sequence(L.ALOHA_LAYOUT, current, later)
            by_hand = vae.encode(video)[:, :, roles].permute(0, 2, 1, 3, 4)
        torch.testing.assert_close(latents[:, 0].float(), by_hand, rtol=2e-3, atol=2e-3)
    with torch.no_grad():
        blank = vae.encode(torch.full((1, 3, 1, size, size), -1.0))[0, :, 0]
    torch.testing.assert_close(cache.blank(), blank)

    # Resumable: nothing left to encode.
    encoder.calls.clear()
    assert cache.build(episodes, progress=False)['encoded'] == 0 and encoder.calls == []
    # A rewritten (touched) episode file is re-encoded alone.
    stat = episodes[1].path.stat()
    os.utime(episodes[1].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert [e.path for e in cache.missing(episodes)] == [episodes[1].path]
    assert cache.build(episodes, progress=False)['encoded'] == 4 * draws
    assert {name for name, _, _ in encoder.calls} == {'episode_1.hdf5'}
    assert len(encoder.calls) == 4 * draws
    assert tuple(cache.load(episodes[1]).shape[:2]) == (4, draws)

    # Another key (draws, VAE weights, augmentation) lives in another directory.
    other_vae = copy.deepcopy(vae)
    with torch.no_grad():
        next(other_vae.parameters()).add_(1e-3)
    assert state_hash(other_vae) != key.vae_hash
    for other in (dataclasses.replace(key, draws=1), _key(other_vae, size, draws),
                  _key(vae, size, draws, AugmentConfig(rotation_deg=2.0))):
        assert other.digest() != key.digest()
        other_cache = LatentCache(tmp_path / 'cache', other, plain)
        assert other_cache.dir != cache.dir
        assert len(other_cache.missing(episodes)) == len(episodes)
    # An edited key.json, a corrupt shard and a shard of the wrong shape are CacheErrors.
    key_file = cache.dir / 'key.json'
    text = key_file.read_text()
    key_file.write_text(text.replace('"draws": 2', '"draws": 3'))
    with pytest.raises(CacheError, match='key.json: written for another key'):
        LatentCache(tmp_path / 'cache', key, plain)
    key_file.write_text(text)
    shard = cache.shard_path(episodes[0])
    shard.write_bytes(b'not a safetensors file')
    with pytest.raises(CacheError, match=re.escape(f'{shard}: unreadable cache shard')):
        cache.load(episodes[0])
    save_file({'latents': torch.zeros(2, draws, 6, 16, 4, 4, dtype=torch.float16)}, str(shard))
    with pytest.raises(CacheError, match=re.escape(f'{shard}: shape (2, 2, 6, 16, 4, 4) does '
                                                   'not match (5, 2, 6)')):
        cache.load(episodes[0])


def test_sparse_rollouts_sample_and_cache_only_steps_with_both_frames(tmp_path):
    """A rollout rendered at some steps: t is a sample only if frames exist at t and at its
    future index min(t + 50, T - 1); the mix draws and the cache encodes just those."""
    size, length = 32, 60
    steps = [0, 5, 10, 55, 59]          # futures: 0->50 (none), 5->55, 10/55/59->59
    sparse = read_episode(write_rollout(tmp_path / 'r' / 'rollout_0.hdf5', length, False, 0.0,
                                        frame_steps=steps))
    assert sparse.frame_steps.tolist() == steps
    assert sparse.sample_steps.tolist() == [5, 10, 55, 59]
    check_frames(sparse, 'cam_high', [5, 59], tolerance=6)
    with pytest.raises(EpisodeError, match=r'\[50\] has no frame'):
        sparse.images('cam_high', [50])
    demo = read_episode(write_raw(tmp_path / 'd' / 'episode_0.hdf5', 3))
    assert demo.frame_steps is None and demo.sample_steps.tolist() == [0, 1, 2]
    mix = SampleMix([demo, sparse], MixConfig(demo_sampling_prob=0.1,
                                              demos_as_success_rollouts=True))
    draws = mix.draw(np.random.default_rng(0), 2000)
    assert {t for e, t, _ in draws if e == 1} == {5, 10, 55, 59}
    assert [t for _, t in validation_rows([sparse], 10)] == [5, 10, 55, 59]

    vae = _vae()
    encoder = RecordingEncoder(vae, L.ALOHA_LAYOUT, size, AugmentConfig())
    cache = LatentCache(tmp_path / 'cache', _key(vae, size, 1), encoder, batch_size=3)
    assert cache.build([sparse], progress=False)['encoded'] == 4
    assert sorted(encoder.calls) == [('rollout_0.hdf5', t, 0) for t in (5, 10, 55, 59)]
    latents = cache.load(sparse)
    assert tuple(latents.shape[:2]) == (length, 1)
    plain = SampleEncoder(vae, L.ALOHA_LAYOUT, size, AugmentConfig())
    direct = plain.encode(sparse, [(t, 0) for t in (5, 10, 55, 59)])
    torch.testing.assert_close(latents[[5, 10, 55, 59], 0].float(), direct, rtol=2e-3,
                               atol=2e-3)
    others = [t for t in range(length) if t not in (5, 10, 55, 59)]
    assert not latents[others].any()                # never sampled, never encoded

    with h5py.File(sparse.path, 'a') as f:
        del f['frame_steps']
        f['frame_steps'] = np.array([5, 3], np.int32)
    with pytest.raises(EpisodeError, match='/frame_steps must be increasing steps'):
        read_episode(sparse.path)


# ---------------------------------------------------------------------------- 6. dataset
def test_split_episodes(tmp_path):
    cams = ('cam_high',)
    for i in range(11):
        write_raw(tmp_path / 'demos' / f'episode_{i}.hdf5', 3, cams, (8, 8), offset=i)
    files = find_episode_files([tmp_path / 'demos'])
    assert [p.name for p in files] == [f'episode_{i}.hdf5' for i in range(11)]   # natural order
    episodes = read_episodes([tmp_path / 'demos'], cams)
    names = [e.path.name for e in episodes]

    def check(split, held):
        train, val = [e.path.name for e in split.train], [e.path.name for e in split.val]
        assert len(val) == held and len(train) == 11 - held
        assert not set(train) & set(val) and sorted(train + val) == sorted(names)
        assert train == [n for n in names if n in train]                  # order kept
        return val

    val = check(split_episodes(episodes, 3, seed=0), 3)
    assert check(split_episodes(episodes, 3, seed=0), 3) == val            # deterministic
    assert any(check(split_episodes(episodes, 3, seed=s), 3) != val for s in (1, 2, 3))
    check(split_episodes(episodes, 0.3, seed=4), 3)                       # round(3.3)
    check(split_episodes(episodes, 0.01, seed=4), 1)                      # at least one
    check(split_episodes(episodes, 0, seed=4), 0)
    for val_episodes in (11, 20, 0.99):
        with pytest.raises(DataError, match=f'data.val_episodes={val_episodes} holds out'):
            split_episodes(episodes, val_episodes, seed=0)


def test_training_data_statistics_and_assemble(tmp_path):
    gamma = 0.9
    shape = (8, 8)
    for i, length in enumerate((8, 56, 8, 8)):
        write_raw(tmp_path / 'demos' / f'episode_{i}.hdf5', length, shape=shape, offset=i,
                  attrs={'success': True, 'instruction': 'transfer the cube'})
    write_raw(tmp_path / 'demos' / 'episode_4.hdf5', 8, shape=shape,
              attrs={'success': False})                           # a failed demo: skipped
    write_rollout(tmp_path / 'rollouts' / 'rollout_0.hdf5', 8, success=False, score=0.0,
                  shape=shape, offset=-2.0)
    cfg = DataConfig(episodes=(str(tmp_path / 'demos'),), rollouts=(str(tmp_path / 'rollouts'),),
                     val_episodes=1, split_seed=0, gamma=gamma)
    data = TrainingData(cfg)
    everything = data.split.train + data.split.val
    assert len(everything) == 5 and 'episode_4.hdf5' not in {e.path.name for e in everything}
    assert len(data.split.val) == 1
    assert data.instructions == ['fold the towel', 'transfer the cube']
    assert data.describe()['train_steps'] == sum(e.length for e in data.split.train)
    # Failed demos as failure rollouts when asked.
    kinds = {e.path.name: (e.kind, e.success)
             for e in load_episodes(dataclasses.replace(cfg, failed_demos='rollout'))}
    assert kinds['episode_4.hdf5'] == ('rollout', False)

    # Statistics from the training split only (the held-out episode has its own offset).
    train_actions = np.concatenate([e.actions for e in data.split.train])
    train_qpos = np.concatenate([e.qpos for e in data.split.train])
    all_actions = np.concatenate([e.actions for e in everything])
    np.testing.assert_allclose(data.statistics.actions.min, train_actions.min(0))
    np.testing.assert_allclose(data.statistics.actions.max, train_actions.max(0))
    np.testing.assert_allclose(data.statistics.actions.mean, train_actions.mean(0))
    np.testing.assert_allclose(data.statistics.proprio.mean, train_qpos.mean(0))
    assert not np.allclose(data.statistics.actions.mean, all_actions.mean(0))
    assert statistics_of(data.split.train).to_json_dict() == data.statistics.to_json_dict()
    written = json.loads(data.write_statistics(tmp_path / 'stats.json').read_text())
    assert written['actions_min'] == train_actions.min(0).tolist()

    by_name = {e.path.name: e for e in everything}
    long, short = by_name['episode_1.hdf5'], by_name['episode_0.hdf5']
    failed = by_name['rollout_0.hdf5']
    rows = [(long, 0), (long, 20), (failed, 3), (short, 7)]
    generator = torch.Generator().manual_seed(0)
    image_latents = torch.randn(len(rows), 6, 16, 8, 8, generator=generator).half()
    blank = torch.randn(16, 8, 8, generator=generator)
    x0 = data.assemble(rows, image_latents, blank)
    assert x0.shape == (4, 16, 11, 8, 8) and x0.dtype == torch.float32
    torch.testing.assert_close(x0[:, :, 0], blank.expand(4, -1, -1, -1))
    for slot, frame_index in enumerate((2, 3, 4, 7, 8, 9)):
        torch.testing.assert_close(x0[:, :, frame_index], image_latents[:, slot].float())

    lo_a, hi_a = train_actions.min(0), train_actions.max(0)
    lo_q, hi_q = train_qpos.min(0), train_qpos.max(0)

    def norm(x, lo, hi):
        return 2 * (x - lo) / (hi - lo) - 1

    values = [2 * gamma ** 5 - 1, 1.0, -1.0, 1.0]         # futures 50, 55 (T-1), any, 7 (T-1)
    futures = [50, 55, 7, 7]
    for row, ((episode, t), value, future) in enumerate(zip(rows, values, futures)):
        chunk = np.concatenate([episode.actions[t:t + 50],
                                np.repeat(episode.actions[-1:], max(0, t + 50 - episode.length),
                                          0)])
        proprio = L.read_back(x0[row:row + 1], 1, 14)[0].numpy()
        actions = L.read_back(x0[row:row + 1], 5, 700)[0].numpy().reshape(50, 14)
        future_proprio = L.read_back(x0[row:row + 1], 6, 14)[0].numpy()
        np.testing.assert_allclose(proprio, norm(episode.qpos[t], lo_q, hi_q), atol=1e-5)
        np.testing.assert_allclose(actions, norm(chunk, lo_a, hi_a), atol=1e-5)
        np.testing.assert_allclose(future_proprio, norm(episode.qpos[future], lo_q, hi_q),
                                   atol=1e-5)
        assert float(L.read_value(x0[row:row + 1], 10)[0]) == pytest.approx((value + 1) / 2,
                                                                            abs=1e-6)
        assert data.normalized(episode, t)['future_t'] == future
