"""A preset's camera_crops: the workspace region of a camera kept before the resize. Validated
with errors naming the field, saved with checkpoints, applied the same way at inference
(policy.prepare) and in training (FrameStore, the latent cache key), ROS-free."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from cosmos_policy_ros.model.config import (
    ConfigError,
    get_preset,
    preset_from_dict,
    preset_to_dict,
)
from cosmos_policy_ros.model.preprocess import crop_fraction, preprocess_image, resize
from cosmos_policy_ros.training.augment import AugmentConfig
from cosmos_policy_ros.training.latent_cache import CacheKey, FrameStore

BOX = (0.25, 0.5, 0.5, 0.25)               # top, left, height, width


def marked_frame(height=480, width=640) -> np.ndarray:
    """Grey frame with a red block inside BOX and a blue block outside it."""
    image = np.full((height, width, 3), 80, np.uint8)
    image[int(0.4 * height):int(0.5 * height), int(0.6 * width):int(0.65 * width)] = (220, 20, 20)
    image[:int(0.1 * height), :int(0.1 * width)] = (20, 20, 220)
    return image


def test_crop_fraction_selects_the_same_region_of_raw_and_client_frames():
    raw = marked_frame()
    cropped = crop_fraction(raw, BOX)
    assert cropped.shape == (240, 160, 3)
    np.testing.assert_array_equal(cropped, raw[120:360, 320:480])
    client = resize(raw, 256)
    assert crop_fraction(client, BOX).shape == (128, 64, 3)


def test_preprocess_with_a_crop_zooms_into_the_box():
    raw = marked_frame()
    plain = preprocess_image(raw, 'cam_high', 64, test_time_crop=False)
    zoomed = preprocess_image(raw, 'cam_high', 64, test_time_crop=False, crop=BOX)
    red = lambda im: int(((im[..., 0] > 150) & (im[..., 2] < 80)).sum())     # noqa: E731
    blue = lambda im: int(((im[..., 2] > 150) & (im[..., 0] < 80)).sum())    # noqa: E731
    assert blue(plain) > 0 and blue(zoomed) == 0          # outside the box: gone
    assert red(zoomed) >= 6 * red(plain) > 0              # 1/8 of the frame: ~8x the pixels
    # An image already at the model size is taken as preprocessed: no second crop.
    np.testing.assert_array_equal(
        preprocess_image(zoomed, 'cam_high', 64, test_time_crop=False, crop=BOX), zoomed)


@pytest.mark.parametrize('box, message', [
    ((0.5, 0.5, 0.6, 0.2), 'top \\+ height <= 1'),
    ((0.1, 0.1, 0.0, 0.5), 'height, width > 0'),
    ((0.1, 0.1, 0.5), r'\[top, left, height, width\]'),
    ('centre', r'\[top, left, height, width\]'),
])
def test_bad_crop_boxes_name_the_camera_and_the_rule(box, message):
    data = preset_to_dict(get_preset('tiny'))
    data['camera_crops'] = {'cam_high': box}
    with pytest.raises(ConfigError, match=f'camera_crops.cam_high.*{message}'):
        preset_from_dict(data)


def test_crops_round_trip_through_the_preset_dict_and_a_saved_policy(tmp_path):
    from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
    preset = dataclasses.replace(get_preset('tiny'), image_size=64,
                                 camera_crops={'cam_high': list(BOX)})
    assert preset.camera_crops == {'cam_high': BOX}
    assert preset_from_dict(preset_to_dict(preset)) == preset
    from cosmos_policy_ros.model.checkpoint import save_checkpoint
    policy = CosmosPolicy.from_config(preset)
    save_checkpoint(tmp_path / 'cropped', {'dit': policy.dit, 'vae': policy.vae}, preset)
    loaded = CosmosPolicy.from_config('tiny', checkpoint=tmp_path / 'cropped',
                                      text=policy.text)
    assert loaded.preset.camera_crops == {'cam_high': BOX}
    # prepare() crops cam_high only: its model image is the box, the wrists the whole frame.
    raw = marked_frame()
    obs = Observation(images={c: raw for c in ('cam_high', 'cam_left_wrist',
                                                'cam_right_wrist')},
                      proprio=np.zeros(14), task='transfer the red cube to the other arm')
    images, _, _ = loaded.prepare([obs])
    expect = {c: preprocess_image(raw, c, 64, crop=BOX if c == 'cam_high' else None)
              for c in images}
    for camera, tensor in images.items():
        pixels = ((tensor[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(pixels, expect[camera], err_msg=camera)


def test_training_frames_and_cache_key_follow_the_crops(tmp_path):
    from episode_files import write_episode

    from cosmos_policy_ros.training.episodes import read_episode
    episode = read_episode(write_episode(tmp_path / 'episode_0.hdf5', seed=3, steps=4,
                                         size=256))
    plain = FrameStore(64, ['cam_high'])(episode)['cam_high']
    cropped = FrameStore(64, ['cam_high'], crops={'cam_high': BOX})(episode)['cam_high']
    raw = episode.images('cam_high', range(4))
    for t in range(4):
        np.testing.assert_array_equal(cropped[t], preprocess_image(
            raw[t], 'cam_high', 64, raw_hw=raw.shape[1:3], test_time_crop=False, crop=BOX))
    assert not np.array_equal(plain, cropped)
    key = dict(vae_hash='h', vae_config='c', image_size=64, augment=json.loads(json.dumps(
        vars(AugmentConfig()), default=list)), draws=1, layout='aloha', cameras=('cam_high',))
    assert CacheKey(**key).digest() == CacheKey(**key, camera_crops={}).digest()
    assert CacheKey(**key).digest() != CacheKey(**key, camera_crops={'cam_high': BOX}).digest()
