"""The RViz dashboard: the config holds every display the operator needs, and the chunk
preview / planner candidate markers (cosmos_policy_ros.dashboard.markers) are FK of the chunks,
coloured by value, and convert to visualization_msgs."""
import numpy as np
import pytest
import yaml

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.markers import (
    CHOSEN_WIDTH,
    LineStrip,
    Text,
    chunk_preview,
    controller_text,
    planner_candidates,
    policy_text,
    value_color,
)
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.robot.description import urdf_path
from cosmos_policy_ros.robot.kinematics import Kinematics, ee_paths


@pytest.fixture(scope='module')
def kinematics():
    return Kinematics.from_urdf(urdf_path().read_text())


def _chunks(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, 50)[None, :, None]
    return ramp * rng.uniform(-0.5, 0.5, (count, 1, 14))


def test_rviz_config_holds_every_dashboard_display():
    config = yaml.safe_load(share_path('rviz', 'aloha_policy.rviz').read_text())
    displays = config['Visualization Manager']['Displays']
    by_class: dict = {}
    for display in displays:
        by_class.setdefault(display['Class'].split('/')[-1], []).append(display)
        assert display['Enabled'] is True, display['Name']
    robot, = by_class['RobotModel']
    assert robot['Description Source'] == 'Topic'
    assert robot['Description Topic']['Value'] == names.ROBOT_DESCRIPTION_TOPIC
    assert robot['Description Topic']['Durability Policy'] == 'Transient Local'
    assert len(by_class['TF']) == 1
    images = {d['Topic']['Value'] for d in by_class['Image']}
    assert images == ({names.camera_topic(c) for c in names.CAMERAS}
                      | {names.future_image_topic(c) for c in names.CAMERAS})
    markers = {d['Topic']['Value']: d for d in by_class['MarkerArray']}
    assert set(markers) == {names.POLICY_MARKERS_TOPIC, names.PLANNER_MARKERS_TOPIC,
                            names.CONTROLLER_MARKERS_TOPIC}
    # The namespaces the publishers use are shown (RViz hides unlisted ones set to false).
    assert {'chunk_preview', 'policy'} <= set(markers[names.POLICY_MARKERS_TOPIC]['Namespaces'])
    assert 'planner_candidates' in markers[names.PLANNER_MARKERS_TOPIC]['Namespaces']
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'world'


def test_chunk_preview_is_the_end_effector_path_of_each_arm(kinematics):
    chunk = _chunks(1)[0]
    strips = chunk_preview(kinematics, chunk)
    paths = ee_paths(kinematics, chunk)
    assert [s.id for s in strips] == [0, 1]
    for strip, points in zip(strips, paths.values()):
        assert strip.points.shape == (50, 3) and strip.colors.shape == (50, 4)
        np.testing.assert_array_equal(strip.points, points)
        assert strip.colors[0, 3] > strip.colors[-1, 3]     # fades into the future
    # A moving chunk moves the end effectors (the path is not a point).
    assert np.linalg.norm(strips[0].points[-1] - strips[0].points[0]) > 0.05


def test_planner_candidates_are_coloured_by_value(kinematics):
    actions, scores = _chunks(4, seed=1), np.array([0.1, 0.9, 0.5, np.nan])
    items = planner_candidates(kinematics, actions, scores, chosen=1)
    strips = [i for i in items if isinstance(i, LineStrip)]
    labels = [i for i in items if isinstance(i, Text)]
    assert len(strips) == 8 and len(labels) == 4
    red, green = strips[0].colors[0], strips[2].colors[0]
    assert red[0] > red[1] and green[1] > green[0]           # low red, high green
    assert strips[2].width == strips[3].width == CHOSEN_WIDTH
    assert tuple(strips[6].colors[0, :3]) == (0.5, 0.5, 0.5)  # a NaN value is grey
    assert labels[1].text == '0.90 *'
    assert value_color(3.0, 3.0, 3.0)[1] == 1.0
    with pytest.raises(ValueError, match='chosen candidate 4'):
        planner_candidates(kinematics, actions, scores, chosen=4)


def test_markers_convert_to_visualization_msgs(kinematics):
    from visualization_msgs.msg import Marker

    from cosmos_policy_ros.ros.markers import marker_array
    items = planner_candidates(kinematics, _chunks(2), np.array([0.2, 0.4]), chosen=0)
    array = marker_array(items, stamp_ns=1_500_000_000)
    assert array.markers[0].action == Marker.DELETEALL
    strip = array.markers[1]
    assert strip.type == Marker.LINE_STRIP and len(strip.points) == len(strip.colors) == 50
    assert strip.header.frame_id == 'world' and strip.header.stamp.sec == 1
    assert strip.points[7].x == pytest.approx(items[0].points[7, 0])
    text = [m for m in array.markers if m.type == Marker.TEXT_VIEW_FACING]
    assert [m.text for m in text] == ['0.20 *', '0.40']


def test_robot_and_dashboard_cores_are_ros_free():
    import subprocess
    import sys
    code = ('import sys\n'
            'import cosmos_policy_ros.robot.kinematics, cosmos_policy_ros.dashboard.markers\n'
            'import cosmos_policy_ros.dashboard.state, cosmos_policy_ros.dashboard.server\n'
            'import cosmos_policy_ros.dashboard.replay\n'
            'print(sorted(m for m in sys.modules if m.startswith(("rclpy", "rosidl"))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == '[]'


def test_status_texts_say_value_latency_and_controller_state():
    assert policy_text(0.734, 1.25, untrained=True).text == \
        'value 0.73  model 1.25 s  UNTRAINED'
    text = controller_text({'state': 'holding', 'reason': 'chunk finished', 'remaining': 0,
                            'counts': {'chunks_accepted': 3, 'chunks_rejected': 1}})
    assert text.text == ('controller holding (chunk finished)  remaining 0  '
                         'chunks_accepted 3  chunks_rejected 1')
    assert text.position[2] < policy_text(0, 0, False).position[2]    # one line below
