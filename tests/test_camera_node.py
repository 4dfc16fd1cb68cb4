"""The camera node in its own process: a video file on the ALOHA camera topic, and a missing
device that is reported on /diagnostics and picked up once it appears."""
import time

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image

from cosmos_policy_ros import names
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.hardware.cameras.video_file import write_video_file
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.ros.image import to_rgb
from cosmos_policy_ros.ros.stamps import to_ns

FPS = 20.0
FRAMES = 8


def write_video(path):
    frames = [np.full((names.IMAGE_HEIGHT, names.IMAGE_WIDTH, 3), (20 + 25 * i, 200, 60),
                      np.uint8) for i in range(FRAMES)]
    return write_video_file(path, frames, fps=FPS)


@pytest.fixture(scope='module')
def camera_graph(tmp_path_factory):
    """cam_high plays a video (explicit backend/device parameters); cam_left_wrist comes from
    a robot YAML's `cameras:` entry whose (relative) file does not exist yet."""
    folder = tmp_path_factory.mktemp('camera_node')
    present = write_video(folder / 'high.avi')
    missing = folder / 'left.avi'
    robot = yaml.safe_load(share_path('calibration', 'aloha_sim.yaml').read_text())
    robot['cameras'] = {'cam_left_wrist': {'backend': 'video_file', 'path': 'left.avi',
                                           'fps': FPS}}
    (folder / 'robot.yaml').write_text(yaml.safe_dump(robot))
    specs = [
        NodeSpec('camera', 'cam_high', parameters={
            'camera': 'cam_high', 'backend': 'video_file', 'device': str(present), 'fps': FPS}),
        NodeSpec('camera', 'camera', namespace='/cam_left_wrist', parameters={
            'camera': 'cam_left_wrist', 'calibration': str(folder / 'robot.yaml'),
            'retry_period': 0.2, 'diagnostics_period': 0.25}),
    ]
    with GraphProcesses(specs, folder / 'logs') as procs:
        yield procs, missing


def test_publishes_rgb8_frames_stamped_at_capture(camera_graph, graph_client):
    procs, _ = camera_graph
    topic = names.camera_topic('cam_high')
    images = graph_client.subscribe(topic, Image, sensor=True)
    diagnostics = graph_client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray)
    assert graph_client.wait_for_messages(topic, 30, timeout=40.0), procs.check_alive()
    timed = images.timed()
    messages = [msg for _, msg in timed]
    for msg in messages:
        assert (msg.encoding, msg.height, msg.width) == ('rgb8', 480, 640)
        assert msg.header.frame_id == 'cam_high'
    stamps = np.array([to_ns(msg.header.stamp) for msg in messages], dtype=np.int64)
    assert np.all(np.diff(stamps) > 0)
    # Stamped at capture: never later than arrival, and not much earlier (same host clock).
    arrival_lag = time.time_ns() - stamps[-1]
    assert 0 <= arrival_lag < 2e9
    rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)
    assert 0.6 * FPS < rate < 1.3 * FPS, rate
    # Frame content survives encode -> camera -> ROS: consecutive frames step through the video.
    reds = [int(to_rgb(msg)[240, 320, 0]) for msg in messages]
    indices = [round((red - 20) / 25) for red in reds]
    steps = {(b - a) % FRAMES for a, b in zip(indices, indices[1:])}
    assert 1 in steps and steps <= {1, 2, 3}, indices   # at most a couple lost in transport
    assert graph_client.wait_for(lambda: any(
        s.name.endswith('cam_high') and s.level == DiagnosticStatus.OK
        for array in diagnostics.messages() for s in array.status), timeout=5.0)
    status = next(s for array in diagnostics.messages() for s in array.status
                  if s.name.endswith('cam_high'))
    values = {kv.key: kv.value for kv in status.values}
    assert values['connected'] == 'True' and float(values['fps']) > 0.6 * FPS
    assert int(values['reconnects']) == 0


def test_missing_device_is_reported_then_picked_up(camera_graph, graph_client):
    procs, missing = camera_graph
    diagnostics = graph_client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray)
    topic = names.camera_topic('cam_left_wrist')
    graph_client.subscribe(topic, Image, sensor=True)

    def left_errors():
        return [s for array in diagnostics.messages() for s in array.status
                if s.name.endswith('cam_left_wrist') and s.level == DiagnosticStatus.ERROR]

    assert graph_client.wait_for(lambda: left_errors(), timeout=30.0), procs.check_alive()
    message = left_errors()[-1].message
    assert 'not connected' in message and str(missing) in message and 'not found' in message
    procs.check_alive()                                   # a missing camera never crashes it
    assert graph_client.records[topic].count == 0
    write_video(missing.with_name('partial.avi')).rename(missing)   # appears whole, at once
    assert graph_client.wait_for_messages(topic, 5, timeout=20.0), procs.check_alive()
    log = procs.by_name('camera').log_tail(50)
    assert 'video file not found' in log and 'streaming 640x480' in log
