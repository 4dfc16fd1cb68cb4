"""A node whose launcher is killed outright shuts down instead of spinning on as an orphan."""
import os
import signal
import subprocess
import sys

from polling import eventually

from cosmos_policy_ros.rosenv import loopback_env

LAUNCHER = """
import subprocess, sys, time
log = open(sys.argv[1], 'wb')
node = subprocess.Popen([sys.executable, '-m', 'cosmos_policy_ros.run_node', 'teleop',
                         '--ros-args', '-p', 'calibration:=aloha_sim'],
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
print(node.pid, flush=True)
time.sleep(120)
"""


def gone(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] == 'Z'     # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_a_node_exits_when_its_launcher_is_killed(tmp_path):
    log = tmp_path / 'teleop.log'
    launcher = subprocess.Popen([sys.executable, '-c', LAUNCHER, str(log)],
                                stdout=subprocess.PIPE, env=loopback_env())
    node_pid = int(launcher.stdout.readline())
    try:
        started = eventually(lambda: b'teleop at' in log.read_bytes(), 60, period=0.1)
        assert started, log.read_text()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        exited = eventually(lambda: gone(node_pid), 10, period=0.1)
        assert exited, 'the orphaned node is still running'
        assert 'launcher' in log.read_text() and 'is gone' in log.read_text()
    finally:
        if not gone(node_pid):
            os.kill(node_pid, signal.SIGKILL)
