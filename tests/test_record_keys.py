"""Keyboard controls of `record --hardware` (ROS-free): key parsing and what each key does."""
import os

import pytest

from cosmos_policy_ros.commands.record_keys import (
    KeyReader,
    RecordControls,
    check_key_name,
    parse_keys,
)


def test_parse_keys_names_characters_and_escape_sequences():
    assert parse_keys(b' sD\r\n\x1b[6~q') == ['space', 's', 'd', 'enter', 'pagedown', 'q']
    assert parse_keys(b'\x1b[15~\x1bOP\x7f\t') == ['f5', 'f1', 'backspace', 'tab']
    assert parse_keys(b'\x1b[99~x') == ['x']            # an unknown sequence is dropped whole
    assert parse_keys(b'\n\n') == ['enter', 'enter']


def test_pedal_key_names_are_checked():
    assert check_key_name('B') == 'b'
    assert check_key_name('PageDown') == 'pagedown'
    with pytest.raises(ValueError, match='pagedown'):
        check_key_name('pgdn')


class FakeRecorder:
    def __init__(self):
        self.calls, self.episode = [], 0

    def start(self):
        self.calls.append('start')
        return f'episode_{self.episode}'

    def stop(self):
        self.calls.append('stop')
        self.episode += 1
        return {'episode': f'episode_{self.episode - 1}', 'duration_s': 2.0, 'messages': 10,
                'path': f'/bags/episode_{self.episode - 1}'}

    def discard(self):
        self.calls.append('discard')
        return f'episode_{self.episode}'


def test_controls_start_save_discard_and_quit_saving_the_open_episode():
    lines = []
    recorder = FakeRecorder()
    controls = RecordControls(recorder, pedal_key='pagedown', say=lines.append)
    for key in ('space', 'x', 's', 'd', 'pagedown', 'd', 'pagedown'):
        assert controls.handle(key)
    assert recorder.calls == ['start', 'stop', 'start', 'discard', 'start']
    assert 'nothing to discard' in lines[2]
    assert controls.recording and not controls.handle('q')      # q saves, then quits
    assert recorder.calls[-1] == 'stop' and not controls.recording
    assert [s['episode'] for s in controls.saved] == ['episode_0', 'episode_1']
    assert controls.discarded == ['episode_1']
    assert any('discarded: episode_1' in line for line in lines)


def test_key_reader_reads_a_pipe_until_end_of_input():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, 'rb', buffering=0) as stream, KeyReader(stream) as reader:
        assert not reader.is_tty
        assert reader.read(0.05) == []
        os.write(write_end, b' d')
        assert reader.read(1.0) == ['space', 'd']
        os.close(write_end)
        assert reader.read(1.0) is None
