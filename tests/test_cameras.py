"""Camera backends on real video files (OpenCV encode/decode), the `cameras:` YAML schema, and
the bad-input errors (missing device, missing file, wrong size, unknown key)."""
import os
import time

import numpy as np
import pytest
import yaml
from polling import eventually

from cosmos_policy_ros.calibration import CalibrationError, load_calibration
from cosmos_policy_ros.hardware.cameras import (
    Camera,
    CameraConfigError,
    CameraError,
    OpenCVCameraConfig,
    RealSenseCameraConfig,
    VideoFileCameraConfig,
    make_camera,
    parse_cameras_section,
)
from cosmos_policy_ros.hardware.cameras.configs import camera_config_for
from cosmos_policy_ros.hardware.cameras.video_file import write_video_file
from cosmos_policy_ros.paths import share_path

FRAMES = 10


def level(index: int) -> int:
    """Frame `index` is a flat image of this red level (JPEG keeps flat colours within ~2)."""
    return 10 + 20 * index


def make_video(path, count=FRAMES, size=(480, 640)):
    frames = [np.full((*size, 3), (level(i), 128, 255 - level(i)), np.uint8)
              for i in range(count)]
    return write_video_file(path, frames, fps=30)


def frame_number(frame) -> int:
    return int(round((int(frame.image[240, 320, 0]) - 10) / 20))


@pytest.fixture
def video(tmp_path):
    return make_video(tmp_path / 'cam.avi')


def video_camera(path, **overrides):
    return make_camera(VideoFileCameraConfig(name='cam_high', path=str(path), **overrides))


def test_backends_implement_the_camera_abc(tmp_path):
    configs = (OpenCVCameraConfig(name='cam_high', device='/dev/video0'),
               RealSenseCameraConfig(name='cam_left_wrist'),
               VideoFileCameraConfig(name='cam_right_wrist', path=str(tmp_path / 'x.avi')))
    for config in configs:
        camera = make_camera(config)
        assert isinstance(camera, Camera)
        assert config.name in str(camera)


def test_video_frames_rgb_in_order_looping_and_paced(video):
    fps = 50.0
    with video_camera(video, fps=fps) as camera:
        frames = [camera.async_read(timeout=2.0) for _ in range(2 * FRAMES)]
        stats = camera.stats()
        with pytest.raises(CameraError, match='the read thread owns the device'):
            camera.read()
    first = frames[0].image
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    # RGB order: red carries the level, blue its complement (BGR would swap them).
    assert abs(int(first[240, 320, 0]) - level(0)) <= 3
    assert abs(int(first[240, 320, 2]) - (255 - level(0))) <= 3
    numbers = [frame_number(frame) for frame in frames]
    # async_read gives the newest frame: in video order, looping back to frame 0; a frame may
    # be skipped only when this reader falls behind (a busy CI CPU).
    steps = [(b - a) % FRAMES for a, b in zip(numbers, numbers[1:])]
    assert set(steps) <= {1, 2} and steps.count(1) >= len(steps) - 3, numbers
    assert any(b < a for a, b in zip(numbers, numbers[1:])), numbers   # looped
    stamps = np.array([frame.captured_ns for frame in frames], dtype=np.int64)
    assert np.all(np.diff(stamps) > 0)
    indices = [frame.index for frame in frames]
    assert indices == sorted(set(indices))
    mean_period = np.diff(stamps).mean() / 1e9
    # Paced at fps (loose upper bound: the CI CPU is shared).
    assert 0.8 / fps < mean_period < 3.0 / fps, mean_period
    assert stats.connected and stats.frames >= 2 * FRAMES and stats.reconnects == 0


def test_gaps_are_counted_as_dropped_frames(video):
    fps = 50.0
    camera = video_camera(video, fps=fps)
    camera.connect(background=False)
    try:
        before = camera.read()
        dropped_before = camera.stats().dropped
        time.sleep(0.2)                            # ten periods without a frame
        after = camera.read()
        stats = camera.stats()
        with pytest.raises(CameraError, match='already connected'):
            camera.connect()
    finally:
        camera.disconnect()
    periods = (after.captured_ns - before.captured_ns) / 1e9 * fps
    assert stats.dropped - dropped_before == round(periods) - 1
    assert stats.dropped - dropped_before >= 9


def test_reconnects_after_the_file_vanishes_and_returns(video, tmp_path):
    hidden = tmp_path / 'moved.avi'
    with video_camera(video, fps=60.0, reconnect_backoff_s=0.05,
                      reconnect_backoff_max_s=0.2) as camera:
        camera.async_read(timeout=2.0)
        os.rename(video, hidden)                   # "unplug": reopening at the loop end fails
        assert eventually(lambda: not camera.stats().connected, 5.0, period=0.02)
        stats = camera.stats()
        assert 'not found' in stats.last_error and str(video) in stats.last_error
        time.sleep(0.2)
        with pytest.raises(TimeoutError, match='stalled or disconnected'):
            camera.read_latest(max_age=0.1)
        frames_while_gone = camera.async_read(timeout=0.5).index   # take the last old frame
        assert frames_while_gone == camera.stats().frames
        os.rename(hidden, video)                   # "plug back in"
        assert eventually(lambda: camera.stats().reconnects == 1, 5.0, period=0.02)
        fresh = camera.async_read(timeout=2.0)
        assert fresh.index > frames_while_gone
        assert camera.read_latest(max_age=0.5).index >= fresh.index
        assert camera.stats().connected
    assert not camera.is_connected


def test_stream_ends_without_loop(video):
    with video_camera(video, fps=30.0, loop=False) as camera:
        numbers = []
        with pytest.raises(EOFError, match='ended'):
            for _ in range(FRAMES + 2):
                numbers.append(frame_number(camera.async_read(timeout=2.0)))
        # In order, ending on the last frame (newest-frame reads may skip one under load).
        assert numbers == sorted(set(numbers)) and numbers[-1] == FRAMES - 1, numbers
        assert len(numbers) >= FRAMES - 2
        assert camera.stats().finished


def test_wrong_size_video_is_refused_naming_the_size(tmp_path):
    small = make_video(tmp_path / 'small.avi', count=3, size=(240, 320))
    camera = video_camera(small)
    with pytest.raises(CameraError, match=r'320x240 .*640x480 is required'):
        camera.connect()
    assert not camera.is_connected


def test_missing_video_file_names_the_path(tmp_path):
    camera = video_camera(tmp_path / 'absent.avi')
    with pytest.raises(CameraError, match=r'absent\.avi.*not found'):
        camera.connect()


def test_missing_v4l2_device_names_device_and_fix():
    device = '/dev/v4l/by-id/usb-Nobody_Camera_0000-video-index0'
    camera = make_camera(OpenCVCameraConfig(name='cam_high', device=device, fourcc='YUYV'))
    with pytest.raises(CameraError) as info:
        camera.connect()
    message = str(info.value)
    assert message.startswith(f'OpenCVCamera(cam_high @ {device})')
    assert 'does not exist' in message and 'ls -l /dev/v4l/by-id' in message


def test_realsense_without_pyrealsense2_says_how_to_install():
    try:
        import pyrealsense2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip('pyrealsense2 is installed: its test needs a connected RealSense camera')
    camera = make_camera(RealSenseCameraConfig(name='cam_left_wrist', serial_number='123'))
    with pytest.raises(CameraError, match='pip install pyrealsense2'):
        camera.connect()


def test_async_read_before_connect_is_an_error(video):
    with pytest.raises(CameraError, match='not connected'):
        video_camera(video).async_read(timeout=0.1)


# ---- the calibration YAML `cameras:` section --------------------------------------------------

def test_cameras_section_parses_every_backend(tmp_path):
    configs = parse_cameras_section({
        'cam_high': {'backend': 'opencv', 'device': '/dev/video4', 'fourcc': 'YUYV', 'fps': 15},
        'cam_left_wrist': {'backend': 'realsense', 'serial_number': 130322270123},
        'cam_right_wrist': {'backend': 'video_file', 'path': 'right.avi', 'loop': False},
    }, 'robot.yaml', base_dir=tmp_path)
    assert configs['cam_high'] == OpenCVCameraConfig(name='cam_high', device='/dev/video4',
                                                     fourcc='YUYV', fps=15.0)
    assert configs['cam_left_wrist'].serial_number == '130322270123'
    assert configs['cam_right_wrist'].path == str(tmp_path / 'right.avi')
    assert configs['cam_right_wrist'].loop is False


@pytest.mark.parametrize('section, message', [
    ({'cam_high': {'backend': 'opencv', 'device': '/dev/video0', 'exposure': 3}},
     r"unknown key 'exposure'; allowed keys for backend opencv: \['backend', 'fps', 'device', "
     r"'fourcc'\]"),
    ({'cam_high': {'backend': 'opencv', 'devise': '/dev/video0'}},
     r"unknown key 'devise' \(did you mean 'device'\?\)"),
    ({'cam_hihg': {'backend': 'opencv', 'device': '/dev/video0'}},
     r"unknown camera 'cam_hihg' \(did you mean 'cam_high'\?\)"),
    ({'cam_high': {'backend': 'usb', 'device': '/dev/video0'}}, r"backend='usb' must be one of"),
    ({'cam_high': {'backend': 'opencv'}}, r"cameras.cam_high: missing \['device'\]"),
    ({'cam_high': {'backend': 'opencv', 'device': '/dev/video0', 'fourcc': 'H264'}},
     r"fourcc='H264' is not one of \['MJPG', 'YUYV'\]"),
    ({'cam_high': {'backend': 'opencv', 'device': '/dev/video0', 'fps': 'fast'}},
     r'fps must be a number'),
])
def test_cameras_section_errors_name_the_field(section, message):
    with pytest.raises(CameraConfigError, match=message):
        parse_cameras_section(section, 'robot.yaml')


def test_load_calibration_rejects_an_unknown_camera_key(tmp_path):
    base = yaml.safe_load(share_path('calibration', 'aloha_sim.yaml').read_text())
    good = dict(base, cameras={'cam_high': {'backend': 'video_file', 'path': 'high.avi'}})
    (tmp_path / 'good.yaml').write_text(yaml.safe_dump(good))
    calibration = load_calibration(str(tmp_path / 'good.yaml'))
    assert calibration.cameras['cam_high']['path'] == 'high.avi'
    bad = dict(base, cameras={'cam_high': {'backend': 'video_file', 'path': 'a.avi',
                                           'resolution': [640, 480]}})
    (tmp_path / 'bad.yaml').write_text(yaml.safe_dump(bad))
    with pytest.raises(CalibrationError, match=r"bad\.yaml: cameras\.cam_high: unknown key "
                                               r"'resolution'; allowed keys"):
        load_calibration(str(tmp_path / 'bad.yaml'))


def test_node_parameters_choose_backend_or_calibration_entry(tmp_path):
    explicit = camera_config_for('cam_high', backend='opencv', device='/dev/video2',
                                 fourcc='YUYV', fps=15.0)
    assert explicit == OpenCVCameraConfig(name='cam_high', device='/dev/video2', fourcc='YUYV',
                                          fps=15.0)
    with pytest.raises(CameraConfigError, match='set `calibration`'):
        camera_config_for('cam_high')
    with pytest.raises(CameraConfigError, match=r"no `cameras.cam_high` entry \(has \[\]\)"):
        camera_config_for('cam_high', calibration=load_calibration('aloha_sim'))
    stationary = camera_config_for('cam_left_wrist',
                                   calibration=load_calibration('aloha_stationary'))
    assert isinstance(stationary, RealSenseCameraConfig) and stationary.serial_number


def test_an_empty_video_is_a_camera_error(tmp_path):
    empty = tmp_path / 'empty.avi'
    empty.write_bytes(b'')
    with pytest.raises(CameraError, match='cannot decode'):
        video_camera(empty, loop=False).connect()
