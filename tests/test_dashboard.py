"""The browser dashboard (cosmos_policy_ros.dashboard): a recorded episode bag replayed into the
dashboard state, served over HTTP, and drawn by headless Chromium (Debian package `chromium`),
whose screenshot must show the robot, the cameras and the plots."""
import json
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
from dashboard_episode import CHUNK_TIMES, DIAGNOSTIC_NAME, VALUES, write_episode

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.replay import load_bag
from cosmos_policy_ros.dashboard.server import DashboardServer
from cosmos_policy_ros.robot.description import urdf_path
from cosmos_policy_ros.robot.kinematics import Kinematics, ee_paths
from cosmos_policy_ros.sim.aloha_sim import DT

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARM_RGB = {'follower_left': (77, 140, 255), 'follower_right': (255, 140, 64)}
VALUE_RGB = (95, 211, 141)


@pytest.fixture(scope='module')
def kinematics():
    return Kinematics.from_urdf(urdf_path().read_text())


@pytest.fixture(scope='module')
def episode(tmp_path_factory, kinematics):
    bag = tmp_path_factory.mktemp('dashboard') / 'episode_0'
    written = write_episode(bag)
    return bag, written, load_bag(bag, kinematics)


def test_replayed_bag_gives_robot_chunks_values_latency_and_frames(episode, kinematics):
    _, written, state = episode
    end = state.snapshot()
    assert end['end'] == pytest.approx(written['seconds'], abs=0.03)
    assert [v for _, v in end['value']] == pytest.approx(VALUES)
    assert [c['t'] - DT for c in end['chunks']] == pytest.approx(CHUNK_TIMES, abs=1e-3)
    # Step sizes: the chunk's largest per-tick change; the first chunk starts at the robot.
    first, second = end['chunks']
    assert first['max_step'] == pytest.approx(0.5 / 49, rel=1e-3)
    assert first['boundary_jump'] < 0.02 < second['boundary_jump']
    np.testing.assert_allclose(end['preview']['follower_left'],
                               ee_paths(kinematics, written['chunks'][1])['follower_left'],
                               atol=1e-4)
    assert end['latency'][1][1]['model'] == pytest.approx(0.5)
    assert end['latency'][1][1]['model/denoise'] == pytest.approx(0.25)
    assert end['diagnostics'] == [{'name': DIAGNOSTIC_NAME, 'level': 'WARN',
                                   'message': 'tick 100'}]
    assert end['info']['untrained'] is True and end['controller']['state'] == 'executing'
    assert set(end['frames']) == {c for c in names.CAMERAS} | {
        f'{c}_predicted' for c in names.CAMERAS}
    assert not end['skipped']
    # The slider: half-way through the episode there is one chunk and the arm was elsewhere.
    middle = state.snapshot(0.5)
    assert len(middle['chunks']) == 1 and len(middle['value']) == 1
    assert middle['robot']['follower_left'] != end['robot']['follower_left']
    assert state.frame('cam_high', 0.5) != state.frame('cam_high')


def test_server_serves_page_state_and_frames_on_loopback(episode):
    _, _, state = episode
    server = DashboardServer(state, 'replay', port=0).start()
    try:
        assert server.url.startswith('http://127.0.0.1:')
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert '<canvas id="robot"' in page and 'http' not in page.split('<script>')[1]
        snapshot = json.load(urllib.request.urlopen(server.url + 'api/state?t=0.5', timeout=5))
        assert snapshot['mode'] == 'replay' and snapshot['time'] == 0.5
        jpeg = urllib.request.urlopen(server.url + 'api/frame/cam_high_predicted?t=1',
                                      timeout=5).read()
        assert jpeg[:2] == b'\xff\xd8'
        with pytest.raises(urllib.error.HTTPError, match='400'):
            urllib.request.urlopen(server.url + 'api/state?t=soon', timeout=5)
    finally:
        server.close()


def chromium_screenshot(url: str, path, profile) -> np.ndarray:
    """Headless Chromium, as root, loopback only; the page's timers run for 4 s of virtual
    time before the shot."""
    import cv2
    command = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', f'--user-data-dir={profile}',
               '--window-size=1400,1000', '--virtual-time-budget=4000',
               f'--screenshot={path}', url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0 and path.is_file(), result.stderr[-2000:]
    return cv2.imread(str(path))[..., ::-1]


def color_pixels(rgb: np.ndarray, color, tolerance: int = 30) -> int:
    return int(np.all(np.abs(rgb.astype(int) - color) <= tolerance, axis=2).sum())


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (apt-get install '
                    'chromium; scripts/test.sh installs it in CI)')
def test_browser_screenshot_shows_robot_cameras_and_plots(episode, tmp_path):
    bag, _, state = episode
    server = DashboardServer(state, 'replay', port=0).start()
    try:
        shot = chromium_screenshot(server.url, tmp_path / 'dashboard.png', tmp_path / 'profile')
    finally:
        server.close()
    robot, right = shot[:, :540], shot[:, 540:]
    for arm, rgb in ARM_RGB.items():       # both arms and their chunk previews
        assert color_pixels(robot, rgb) > 800, arm
    assert color_pixels(right, VALUE_RGB) > 100          # the value plot
    assert color_pixels(shot[520:], ARM_RGB['follower_right']) > 30   # step-size dots
    # The camera frames: the sim's red cube on the table, real and predicted (tinted).
    cameras = right[:600]
    assert color_pixels(cameras, (150, 20, 20), tolerance=60) > 50
    assert cameras.std() > 20


def test_a_demonstration_bag_replays_the_robot_and_cameras(tmp_path, kinematics):
    """A bag in the recorder's layout (episode_topics: joints, commands, cameras) without the
    policy's topics shows the robot and the cameras, and the plots stay empty."""
    from cosmos_policy_ros.data.synthetic import SyntheticEpisode
    episode = SyntheticEpisode(seconds=1.0, camera_hz=5.0)
    bag = episode.write(tmp_path / 'demo_0')
    state = load_bag(bag, kinematics)
    snapshot = state.snapshot()
    assert all(snapshot['robot_known'].values())
    assert set(snapshot['frames']) == set(names.CAMERAS)
    assert snapshot['chunks'] == [] and snapshot['value'] == [] and not snapshot['skipped']
    # The drawn arm follows the recorded joint states: its waist is the bag's.
    waist = episode.arm_positions('follower_left', snapshot['time'])[0]
    shoulder = np.array(snapshot['robot']['follower_left'][1])
    upper = np.array(snapshot['robot']['follower_left'][3])
    heading = np.arctan2(*(upper - shoulder)[1::-1])
    assert heading == pytest.approx(waist, abs=0.02)
