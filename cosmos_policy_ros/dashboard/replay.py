"""Replay: a recorded rosbag2 MCAP episode into a DashboardState, ROS-free.

Messages are decoded by mcap_ros2 from the schemas stored in the bag (no ROS install needed),
at their log time, through the same DashboardState.feed as the live graph. Camera frames are
kept as small JPEGs every `frame_interval` seconds, so an operator can scrub the whole episode.
"""
from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.state import (
    CHUNK_TOPICS,
    LATENCY_TOPICS,
    DashboardState,
)
from cosmos_policy_ros.robot.kinematics import Kinematics


def dashboard_topics() -> tuple:
    """Every topic the dashboard draws."""
    return (tuple(names.joint_states_topic(arm) for arm in names.FOLLOWERS)
            + tuple(names.camera_topic(c) for c in names.CAMERAS)
            + tuple(names.future_image_topic(c) for c in names.CAMERAS)
            + CHUNK_TOPICS + LATENCY_TOPICS
            + (names.VALUE_TOPIC, names.CONTROLLER_STATUS_TOPIC, names.POLICY_INFO_TOPIC,
               names.DIAGNOSTICS_TOPIC))


def mcap_file(bag: str | Path) -> Path:
    """A bag directory (rosbag2: metadata.yaml + <name>_0.mcap) or an .mcap file."""
    path = Path(bag)
    if path.is_file():
        return path
    found = sorted(path.glob('*.mcap')) if path.is_dir() else []
    if not found:
        raise FileNotFoundError(f'{bag}: no .mcap file (give a rosbag2 MCAP bag directory '
                                'or the .mcap file; a .partial bag needs recovery first)')
    if len(found) > 1:
        raise ValueError(f'{bag}: {len(found)} .mcap files (split bags are not supported); '
                         'give one of them')
    return found[0]


def load_bag(bag: str | Path, kinematics: Kinematics,
             frame_interval: float = 0.1) -> DashboardState:
    state = DashboardState(kinematics, history=None, frame_history=None,
                           min_frame_interval=frame_interval)
    with open(mcap_file(bag), 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages(
                topics=list(dashboard_topics()), log_time_order=True):
            state.feed(channel.topic, decoded, message.log_time)
    return state
