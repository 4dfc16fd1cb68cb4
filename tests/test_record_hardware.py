"""`cosmos-policy-ros record --hardware` as an operator runs it: the CLI in its own process on a
pseudo-terminal, keys typed into it (a foot pedal typing Page Down included), against four
emulated Dynamixel buses in this process (arm drivers, teleop with its opening ceremony and the
recorder each in their own process; no cameras). Start, stop-and-save, discard, quit with an
episode open, then the export of the saved episodes."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest
import yaml

from cosmos_policy_ros.hardware.arm_config import DEFAULT_IDS
from cosmos_policy_ros.names import ARMS, COMMAND_JOINTS, LEADERS
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.rosenv import loopback_env

pytestmark = pytest.mark.slow
TICKS_PER_RAD = 4096 / (2 * 3.141592653589793)
# Leader poses the operator moves through (6 arm joints + gripper [rad]); the gripper starts
# closed, so teleop follows as soon as the followers reach the start pose.
POSES = ((0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.04), (0.3, -0.3, 0.4, 0.2, -0.2, 0.3, 0.4),
         (-0.2, -0.1, 0.2, -0.3, 0.3, -0.4, 0.1))


class Terminal:
    """The CLI's side of a pty, read in a thread; `expect` waits for a pattern in new output."""

    def __init__(self, fd: int):
        self.fd, self.text, self._seen = fd, '', 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.text += data.decode(errors='replace')

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def expect(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                match = re.compile(pattern).search(self.text, self._seen)
                if match:
                    self._seen = match.end()
                    return match
            time.sleep(0.05)
        raise AssertionError(f'no {pattern!r} within {timeout:.0f} s; output:\n{self.text}')


def hold_leaders(emulators, pose) -> None:
    for arm in LEADERS:
        for joint, value in zip(COMMAND_JOINTS, pose):
            emulators[arm].set_position(DEFAULT_IDS[joint], round(2048 + value * TICKS_PER_RAD))


def operate(emulators, seconds: float) -> None:
    """The operator moves the leaders through POSES for `seconds` (every joint changes)."""
    for pose in POSES[1:] + POSES[:1]:
        hold_leaders(emulators, pose)
        time.sleep(seconds / len(POSES))


def robot_yaml(tmp_path, emulators) -> str:
    data = yaml.safe_load(share_path('calibration', 'aloha_stationary.yaml').read_text())
    data['arms'] = {arm: {'port': emulators[arm].port_path} for arm in ARMS}
    data.pop('cameras')
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def children(pid: int) -> list:
    """PIDs whose parent is `pid` (the node processes the CLI started)."""
    found = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def stop(cli: subprocess.Popen) -> None:
    """Ctrl-C (the CLI then stops its nodes itself); kill it and its nodes only if it hangs."""
    if cli.poll() is None:
        cli.send_signal(signal.SIGINT)
        try:
            cli.wait(60)
            return
        except subprocess.TimeoutExpired:
            pass
        for pid in children(cli.pid):
            try:
                os.killpg(pid, signal.SIGKILL)       # each node leads its own process group
            except ProcessLookupError:
                pass
        cli.kill()
        cli.wait(10)


def test_keys_start_save_discard_and_quit_then_export(arm_emulators, tmp_path):
    hold_leaders(arm_emulators, POSES[0])
    output = tmp_path / 'out'
    controller, operator = os.openpty()
    cli = subprocess.Popen(
        [sys.executable, '-m', 'cosmos_policy_ros.cli', 'record', '--hardware',
         '--calibration', robot_yaml(tmp_path, arm_emulators), '--output', str(output),
         '--pedal-key', 'pagedown'],
        stdin=operator, stdout=operator, stderr=operator, env=loopback_env(),
        start_new_session=True)
    os.close(operator)
    terminal = Terminal(controller)
    try:
        terminal.expect(r'keys: \[space\]', 120)
        time.sleep(5.0)                                    # the followers' opening move (4 s)
        terminal.type(b' ')
        terminal.expect(r'recording episode_0', 30)
        operate(arm_emulators, 3.0)
        terminal.type(b'\x1b[6~')                          # the pedal: stop and save
        terminal.expect(r'saved episode_0: [0-9.]+ s, [0-9]+ messages \(1 saved\)', 60)
        terminal.type(b's')
        discarded = terminal.expect(r'recording (episode_\d+)', 30).group(1)
        terminal.type(b'd')
        terminal.expect(rf'discarded: {discarded}', 30)
        terminal.type(b' ')
        terminal.expect(r'recording episode_\d+', 30)
        operate(arm_emulators, 3.0)
        terminal.type(b'q')                                # quit saves the open episode
        terminal.expect(r'2 episode\(s\) saved, 1 discarded', 60)
        terminal.expect(r'exported 2 of 2 episode\(s\)', 180)
        assert cli.wait(60) == 0, terminal.text
    finally:
        stop(cli)
        os.close(controller)
    bags = sorted(p.name for p in (output / 'bags').iterdir())
    assert bags == ['episode_0', 'episode_1'], bags        # the discarded one is gone
    for path in sorted((output / 'hdf5').glob('episode_*.hdf5')):
        with h5py.File(path) as f:
            qpos = f['/observations/qpos']
            assert qpos.shape[1] == 14 and qpos.shape[0] >= 10, (path, qpos.shape)
            assert f.attrs['sim'] == False                 # noqa: E712 (numpy bool)
