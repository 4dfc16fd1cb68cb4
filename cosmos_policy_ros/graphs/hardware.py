"""hardware: the real ALOHA drivers (Dynamixel arm drivers + cameras) from one calibration.

`hardware_nodes` is shared by record_demos (use_sim:=false) and aloha_policy; the `hardware`
graph runs the drivers alone (bring-up checks).

driver:=dynamixel (default) runs our arm_driver on every arm of the calibration's `arms:`.
driver:=interbotix is for robots already driven by Interbotix's xs_sdk (`ros2 launch aloha
aloha_bringup.launch.py`): xs_sdk owns the ports and publishes /<arm>/joint_states for all four
arms, and one interbotix_bridge per follower turns our joint commands into its
JointGroupCommand/JointSingleCommand. `arms:` is then not needed; cameras still come from
`cameras:` (start Interbotix's with use_cameras:=false, or list none here).
driver:=external starts no arm or camera node: they already run elsewhere, e.g. in the robot
service of docker/compose.yaml, while this graph's other nodes run in the GPU service.
"""
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.graph import Graph, GraphArg, NodeSpec, graph_args
from cosmos_policy_ros.hardware.arm_config import parse_arms
from cosmos_policy_ros.names import ARMS, FOLLOWERS
from cosmos_policy_ros.params import Param

DRIVERS = ('dynamixel', 'interbotix', 'external')


def hardware_nodes(calibration_name: str, leaders: bool, driver: str = 'dynamixel') -> list:
    """Arm nodes for `driver` and a camera node per entry of the calibration's `cameras:`.

    dynamixel: an arm_driver per follower (+ leader) in the calibration's `arms:`; raises
    CalibrationError naming a missing follower arm. interbotix: an interbotix_bridge per
    follower (xs_sdk drives every arm, leaders included). external: none at all.
    """
    if driver not in DRIVERS:
        raise ValueError(f'driver:={driver!r} is not one of {list(DRIVERS)}')
    if driver == 'external':
        return []
    calibration = load_calibration(calibration_name)
    cameras = [NodeSpec('camera', 'camera', namespace=f'/{camera}',
                        parameters={'camera': camera, 'calibration': calibration_name})
               for camera in calibration.cameras]
    if driver == 'interbotix':
        return [NodeSpec('interbotix_bridge', 'interbotix_bridge', namespace=f'/{arm}',
                         parameters={'arm': arm, 'calibration': calibration_name})
                for arm in FOLLOWERS] + cameras
    arms = parse_arms(calibration.arms, calibration.source, calibration.joint_limits)
    missing = [arm for arm in FOLLOWERS if arm not in arms]
    if missing:
        raise ValueError(f'{calibration.source}: `arms:` lacks {missing}; the hardware graph '
                         'needs both followers (port, ...)')
    wanted = [arm for arm in ARMS if arm in arms and (leaders or arms[arm].is_follower)]
    return [NodeSpec('arm_driver', 'arm_driver', namespace=f'/{arm}',
                     parameters={'arm': arm, 'calibration': calibration_name})
            for arm in wanted] + cameras


# Shared by every graph that can run on the hardware (record_demos, aloha_policy).
DRIVER_ARG = GraphArg(Param(
    'driver', 'dynamixel', "arm driver: ours (dynamixel), Interbotix's xs_sdk (already "
    'running) through interbotix_bridge (interbotix), or drivers and cameras started '
    'elsewhere (external)', choices=DRIVERS))

GRAPH = Graph(
    name='hardware',
    description='Real ALOHA drivers: Dynamixel arm drivers and cameras from a calibration.',
    args={
        **graph_args(
            Param('calibration', 'aloha_stationary', 'calibration/<name>.yaml with arms: and '
                  'cameras:'),
            Param('leaders', True, 'also drive the leader arms (read-only)')),
        'driver': DRIVER_ARG,
    },
    build=lambda args: hardware_nodes(args['calibration'], args['leaders'], args['driver']),
)
