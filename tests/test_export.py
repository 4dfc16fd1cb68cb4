"""Exporter: synthetic bags with known stamps -> ALOHA HDF5 at 25 Hz + statistics JSON."""
import json

import cv2
import h5py
import numpy as np
import pytest

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import get_gripper_preset
from cosmos_policy_ros.data.export import ExportConfig, export_dataset
from cosmos_policy_ros.data.synthetic import SyntheticEpisode

CAMS = ('cam_high', 'cam_left_wrist')
# Cameras start 30 ms late: the exporter must drop that leading span.
EPISODE = SyntheticEpisode(seconds=1.0, camera_hz=10.0, cameras=CAMS, camera_delay_ns=30_000_000,
                           success_s=0.5)
CONFIG = ExportConfig(cameras=CAMS)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    bags = [EPISODE.write(root / 'bags' / f'episode_{i}') for i in range(2)]
    summaries, failures, stats = export_dataset(bags, root / 'hdf5', CONFIG, progress=False)
    assert failures == {}
    return summaries, stats


def test_hdf5_layout_stamps_and_zero_order_hold(exported):
    summaries, _ = exported
    preset = get_gripper_preset('aloha1_ros1')
    with h5py.File(summaries[0].hdf5) as f:
        grid = f['timestamps/grid'][:]
        steps = len(grid)
        assert grid[0] == EPISODE.start_ns + 30_000_000           # leading span dropped
        assert np.all(np.diff(grid) == 40_000_000)                # 25 Hz
        assert steps == 23                     # 30 ms .. 910 ms (last frame at 930 ms)
        for key in ('qpos', 'qvel', 'effort'):
            assert f[f'observations/{key}'].shape == (steps, 14)
        assert f['action'].shape == (steps, 14)
        for cam in CAMS:
            assert f[f'observations/images/{cam}'].shape == (steps, 480, 640, 3)
            assert f[f'observations/images/{cam}'].dtype == np.uint8
        # Zero-order hold: each source's stamp is the newest at or before the grid time.
        joint_stamp = f['timestamps/follower_right'][:]
        expected = EPISODE.start_ns + (grid - EPISODE.start_ns) // 20_000_000 * 20_000_000
        np.testing.assert_array_equal(joint_stamp, expected)
        camera_stamp = f['timestamps/cam_high'][:]
        frame = (grid - EPISODE.start_ns - 30_000_000) // 100_000_000
        np.testing.assert_array_equal(camera_stamp,
                                      EPISODE.start_ns + 30_000_000 + frame * 100_000_000)
        image = f['observations/images/cam_high']
        assert image[steps - 1, 5, 5, 0] == frame[-1] and tuple(image[3, 0, 0]) == (1, 2, 3)
        t = (joint_stamp - EPISODE.start_ns) / 1e9
        qpos, action = f['observations/qpos'][:], f['action'][:]
        np.testing.assert_allclose(qpos[:, 7:13], EPISODE.arm_positions('follower_right', 0)
                                   + t[:, None], atol=1e-5)
        np.testing.assert_allclose(qpos[:, 13], preset.follower_position_normalize(
            EPISODE.finger(t)), atol=1e-5)
        command_t = (f['timestamps/command_left'][:] - EPISODE.start_ns) / 1e9
        np.testing.assert_allclose(action[:, :6], EPISODE.arm_positions('follower_left', 0)
                                   + command_t[:, None] + 0.5, atol=1e-5)
        leader_t = (f['timestamps/leader_left'][:] - EPISODE.start_ns) / 1e9
        np.testing.assert_allclose(action[:, 6], preset.leader_joint_normalize(
            EPISODE.gripper_angle(leader_t)), atol=1e-5)
        np.testing.assert_allclose(f['observations/qvel'][:, 6],
                                   preset.follower_velocity_normalize(0.01), atol=1e-5)
        np.testing.assert_allclose(f['observations/effort'][0, :7], np.arange(7) * 0.5)
        assert f.attrs['sim'] and not f.attrs['compress'] and f.attrs['fps'] == 25
        assert f.attrs['gripper_preset'] == 'aloha1_ros1'
        assert json.loads(f.attrs['gripper_constants'])['follower_position_open'] == 0.058
        assert f.attrs['task'] == 'transfer_cube' and 'cube' in f.attrs['instruction']
        assert f.attrs['success'] and f.attrs['source_bag'].endswith('episode_0')
        np.testing.assert_array_equal(f['success'][:], grid - EPISODE.start_ns >= 500_000_000)
    lag = summaries[0].lag_ms
    assert lag['cam_high'][1] == pytest.approx(80.0)        # frames 100 ms apart, grid 40 ms
    assert lag['follower_left'][1] == pytest.approx(10.0) and summaries[0].steps == 23


def test_statistics_json_format(exported):
    summaries, stats_path = exported
    stats = json.loads(stats_path.read_text())
    assert set(stats) == {f'{g}_{s}' for g in ('actions', 'proprio')
                          for s in ('min', 'max', 'mean', 'std', 'median')}
    assert all(len(values) == 14 for values in stats.values())
    with h5py.File(summaries[1].hdf5) as f:
        np.testing.assert_allclose(stats['proprio_max'], f['observations/qpos'][:].max(0),
                                   rtol=1e-5)


def test_bad_camera_frames_refused_or_dropped(tmp_path):
    bag = EPISODE.write(tmp_path / 'episode_0', bad_camera_encoding='mono8')
    summaries, failures, _ = export_dataset([bag], tmp_path / 'out', CONFIG, progress=False)
    assert summaries == []
    message = failures[str(bag)]
    assert "encoding 'mono8'" in message and '--skip-bad-frames' in message
    skip = ExportConfig(cameras=CAMS, skip_bad_frames=True)
    summaries, failures, _ = export_dataset([bag], tmp_path / 'out', skip, progress=False)
    assert failures == {} and summaries[0].bad_frames == {'cam_high': 1, 'cam_left_wrist': 1}
    with h5py.File(summaries[0].hdf5) as f:
        assert json.loads(f.attrs['bad_frames']) == {'cam_high': 1, 'cam_left_wrist': 1}
        held = f['observations/images/cam_high'][:, 5, 5, 0]
    assert 1 not in held and 0 in held           # frame 1 dropped, frame 0 held instead


def test_jpeg_layout_and_missing_topic_error(tmp_path):
    bag = EPISODE.write(tmp_path / 'episode_0')
    jpeg = ExportConfig(cameras=CAMS, compress=True)
    summaries, failures, _ = export_dataset([bag], tmp_path / 'out', jpeg, progress=False)
    assert failures == {}
    with h5py.File(summaries[0].hdf5) as f:
        lengths = f['compress_len'][:]
        assert lengths.shape == (2, summaries[0].steps) and f.attrs['compress']
        blob = f['observations/images/cam_left_wrist'][4, :lengths[1, 4]]
        decoded = cv2.imdecode(blob, cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)
    three = ExportConfig()          # cam_right_wrist was not recorded
    _, failures, _ = export_dataset([bag], tmp_path / 'out3', three, progress=False)
    assert names.camera_topic('cam_right_wrist') in failures[str(bag)]
    with pytest.raises(ValueError, match='ExportConfig.cameras'):
        ExportConfig(cameras=('cam_low',))
