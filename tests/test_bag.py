"""rosbag2 MCAP writer and recovery, read back by two independent readers (rosbags, mcap)."""
import shutil

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from cosmos_policy_ros import names
from cosmos_policy_ros.data import synthetic
from cosmos_policy_ros.data.bag import (
    BagError,
    BagWriter,
    TopicInfo,
    find_partials,
    read_custom_data,
    recover_partial,
)
from cosmos_policy_ros.data.msgdefs import DELIMITER, full_definition

EPISODE = synthetic.SyntheticEpisode(seconds=1.0, camera_hz=5.0, cameras=('cam_high',))


def test_full_definition_lists_each_nested_type_once():
    text = full_definition('sensor_msgs/msg/Image')
    assert text.startswith('# This message contains an uncompressed image')
    assert text.count('MSG: std_msgs/msg/Header\n') == 1
    assert text.count('MSG: builtin_interfaces/msg/Time\n') == 1
    assert text.count(DELIMITER) == 2
    assert 'MSG: ' not in full_definition('std_msgs/msg/Bool')


def test_episode_bag_reads_back_with_rosbags_and_mcap(tmp_path):
    bag = EPISODE.write(tmp_path / 'episode_0')
    assert not (tmp_path / 'episode_0.partial').exists()
    joint_hz_count = int(EPISODE.seconds * EPISODE.joint_hz) + 1
    # Reader 1: rosbags, which builds its types from the schemas stored in the bag.
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts[names.joint_states_topic('follower_left')] == joint_hz_count
        assert counts[names.camera_topic('cam_high')] == 6
        assert counts[names.SUCCESS_TOPIC] == 5
        topic = names.joint_states_topic('leader_right')
        connection = next(c for c in reader.connections if c.topic == topic)
        first = next(reader.messages(connections=[connection]))
        msg = reader.deserialize(first[2], connection.msgtype)
        assert list(msg.name) == list(names.JOINT_STATE_NAMES)
        np.testing.assert_allclose(msg.position[:6], EPISODE.arm_positions('leader_right', 0.0))
        assert first[1] == EPISODE.start_ns
    # Reader 2: mcap + mcap_ros2's dynamic decoder (parses our ros2msg text independently).
    with open(bag / 'episode_0_0.mcap', 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {'ros2msg'}
        assert {c.message_encoding for c in summary.channels.values()} == {'cdr'}
        frames = [(message.log_time, decoded) for _, channel, message, decoded
                  in reader.iter_decoded_messages(topics=[names.camera_topic('cam_high')])]
    assert len(frames) == 6
    log_time, last = frames[-1]
    assert (last.height, last.width, last.encoding) == (480, 640, 'rgb8')
    assert last.data[3] == 5 and log_time == EPISODE.start_ns + 1_000_000_000
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'] == ['episode_0_0.mcap']
    assert info['message_count'] == sum(t['message_count']
                                        for t in info['topics_with_message_count'])
    image_topic = next(t['topic_metadata'] for t in info['topics_with_message_count']
                       if t['topic_metadata']['type'] == 'sensor_msgs/msg/Image')
    assert image_topic['offered_qos_profiles'][0]['reliability'] == 'best_effort'
    assert image_topic['type_description_hash'].startswith('RIHS01_')
    assert read_custom_data(bag)['task'] == 'transfer_cube'


def _bool_bag(path, flush_after: int, total: int) -> BagWriter:
    writer = BagWriter(path, [TopicInfo('/flag', synthetic.BOOL)], compression='lz4',
                       flush_seconds=1e9, custom_data={'task': 'insertion'})
    for i in range(total):
        writer.write('/flag', synthetic.boolean(i % 2 == 0), 1_000 + i)
        if i + 1 == flush_after:
            writer.flush()
    return writer


def test_partial_bag_recovers_flushed_chunks(tmp_path):
    finished = _bool_bag(tmp_path / 'episode_0', 10, 10).close()
    before = (finished / 'episode_0_0.mcap').read_bytes()
    # A writer that "crashes": 40 messages flushed, 25 more only in memory, never closed.
    _bool_bag(tmp_path / 'episode_1', 40, 65)
    assert find_partials(tmp_path) == [tmp_path / 'episode_1.partial']
    result = recover_partial(tmp_path / 'episode_1.partial')
    assert result.bag_dir == tmp_path / 'episode_1' and result.message_count == 40
    assert not (tmp_path / 'episode_1.partial').exists()
    with AnyReader([result.bag_dir]) as reader:
        stamps = [t for _, t, _ in reader.messages()]
    assert stamps == list(range(1_000, 1_040))
    custom = read_custom_data(result.bag_dir)
    assert custom['recovered'] == 'true' and custom['task'] == 'insertion'
    assert (finished / 'episode_0_0.mcap').read_bytes() == before


def test_truncated_file_keeps_complete_chunks(tmp_path):
    writer = _bool_bag(tmp_path / 'episode_2', 0, 0)
    mcap = tmp_path / 'episode_2.partial' / 'episode_2_0.mcap'
    two_chunks = 0          # file size once the second chunk is flushed
    for i in range(30):
        writer.write('/flag', synthetic.boolean(True), i)
        if i % 10 == 9:
            writer.flush()
            if i == 19:
                two_chunks = mcap.stat().st_size
    writer.abandon()
    mcap.write_bytes(mcap.read_bytes()[:two_chunks + 30])     # the third chunk is cut mid-record
    result = recover_partial(tmp_path / 'episode_2.partial')
    assert result.message_count == 20 and result.stopped_by != 'end of data'


def test_writer_errors_name_the_fix(tmp_path):
    writer = _bool_bag(tmp_path / 'episode_3', 0, 1)
    with pytest.raises(KeyError, match='not declared'):
        writer.write('/other', b'', 0)
    with pytest.raises(BagError, match='already exists'):
        BagWriter(tmp_path / 'episode_3', [])
    writer.discard()
    assert not (tmp_path / 'episode_3.partial').exists()
    with pytest.raises(ValueError, match='absolute'):
        TopicInfo('relative', synthetic.BOOL)
    empty = tmp_path / 'episode_4.partial'
    empty.mkdir()
    with pytest.raises(BagError, match='nothing to recover'):
        recover_partial(empty)
    shutil.rmtree(empty)
