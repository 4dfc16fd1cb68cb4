"""Node shutdown: a node whose launcher is killed outright exits instead of spinning on as an
orphan, and a launcher sent SIGTERM stops its nodes itself."""
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


GRAPH_LAUNCHER = """
import sys, time
from pathlib import Path
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.ros.client import GraphClient
specs = [NodeSpec('teleop', 'teleop', parameters={'calibration': 'aloha_sim'})]
with GraphProcesses(specs, Path(sys.argv[1])) as procs:
    client = GraphClient('sigterm_test')     # a launcher with rclpy up, as the CLI jobs
    try:
        print(procs.processes[0].popen.pid, flush=True)
        time.sleep(120)
    finally:
        client.close()
        print('launcher cleanup ran', flush=True)
"""


def test_sigterm_to_a_launcher_stops_its_nodes_in_order(tmp_path):
    """`docker stop` / systemd / `timeout` send SIGTERM: the launcher's cleanup runs and it stops
    its nodes itself (SIGINT), instead of dying at once and leaving them orphaned."""
    launcher = subprocess.Popen([sys.executable, '-c', GRAPH_LAUNCHER, str(tmp_path)],
                                stdout=subprocess.PIPE, env=loopback_env())
    node_pid = int(launcher.stdout.readline())
    log = tmp_path / 'teleop.log'
    try:
        started = eventually(lambda: b'teleop at' in log.read_bytes(), 60, period=0.1)
        assert started, log.read_text()
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) == 128 + signal.SIGTERM
        assert launcher.stdout.read().decode().strip() == 'launcher cleanup ran'
        assert gone(node_pid), 'the launcher returned before its node exited'
        assert 'is gone' not in log.read_text(), 'the node was orphaned, not stopped'
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if not gone(node_pid):
            os.kill(node_pid, signal.SIGKILL)
