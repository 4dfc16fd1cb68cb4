"""`cd ros2_ws && colcon build` (colcon from PyPI) installs every launch file and node
executable."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cosmos_policy_ros.executables import NODES
from cosmos_policy_ros.paths import REPO_ROOT

COLCON = Path(sys.executable).with_name('colcon')


@pytest.fixture(scope='module')
def install_space(tmp_path_factory):
    if not COLCON.exists():
        pytest.skip(f'colcon not installed next to {sys.executable} (pip install -e .[dev])')
    base = tmp_path_factory.mktemp('colcon')
    # The same workspace users build; build/install/log go to a temp dir to keep the tree clean.
    result = subprocess.run(
        [str(COLCON), '--log-base', str(base / 'log'), 'build', '--base-paths',
         str(REPO_ROOT / 'ros2_ws' / 'src'), '--build-base', str(base / 'build'),
         '--install-base', str(base / 'install')],
        cwd=REPO_ROOT / 'ros2_ws', capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return base / 'install' / 'cosmos_policy_ros'


def test_workspace_src_links_to_the_package_root():
    link = REPO_ROOT / 'ros2_ws' / 'src' / 'cosmos_policy_ros'
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == REPO_ROOT.resolve()


def test_install_space_has_every_executable(install_space):
    lib = install_space / 'lib' / 'cosmos_policy_ros'
    missing = [name for name in NODES if not os.access(lib / name, os.X_OK)]
    assert not missing, f'executables missing from {lib}: {missing}'


def test_install_space_has_every_launch_and_share_file(install_space):
    share = install_space / 'share' / 'cosmos_policy_ros'
    for folder, pattern in (('launch', '*.launch.py'), ('calibration', '*.yaml'),
                            ('config', '*.yaml'), ('models', '*.yaml'), ('rviz', '*.rviz'),
                            ('urdf', '*.urdf')):
        expected = sorted(p.name for p in (REPO_ROOT / folder).glob(pattern))
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == expected, folder
    assert (share / 'package.xml').is_file()
    assert (install_space / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'cosmos_policy_ros').is_file()


def test_installed_package_finds_its_share_dir_through_the_ament_index(install_space, tmp_path):
    site = next((install_space / 'lib').glob('python3*/site-packages'))
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(install_space))
    code = ('import cosmos_policy_ros.paths as p, cosmos_policy_ros.calibration as c;'
            'print(p.__file__); print(p.share_dir()); '
            'print(c.load_calibration("aloha_sim").robot)')
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    module_file, share, robot = out.stdout.split()
    assert module_file.startswith(str(site))
    assert Path(share) == install_space / 'share' / 'cosmos_policy_ros'
    assert robot == 'aloha_sim'
    shutil.rmtree(tmp_path, ignore_errors=True)
