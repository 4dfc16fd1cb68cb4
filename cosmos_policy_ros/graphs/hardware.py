"""hardware: the real ALOHA drivers (Dynamixel arm drivers + cameras) from one calibration.

`hardware_nodes` is shared by record_demos (use_sim:=false) and aloha_policy; the `hardware`
graph runs the drivers alone (bring-up checks).
"""
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.graph import Graph, GraphArg, NodeSpec, as_bool, register
from cosmos_policy_ros.hardware.arm_config import parse_arms
from cosmos_policy_ros.names import ARMS, FOLLOWERS


def hardware_nodes(calibration_name: str, leaders: bool) -> list:
    """An arm_driver per follower (+ leader) in the calibration's `arms:` and a camera node per
    entry of its `cameras:`. Raises CalibrationError naming a missing follower arm."""
    calibration = load_calibration(calibration_name)
    arms = parse_arms(calibration.arms, calibration.source)
    missing = [arm for arm in FOLLOWERS if arm not in arms]
    if missing:
        raise ValueError(f'{calibration.source}: `arms:` lacks {missing}; the hardware graph '
                         'needs both followers (port, ...)')
    wanted = [arm for arm in ARMS if arm in arms and (leaders or arms[arm].is_follower)]
    nodes = [NodeSpec('arm_driver', 'arm_driver', namespace=f'/{arm}',
                      parameters={'arm': arm, 'calibration': calibration_name})
             for arm in wanted]
    nodes += [NodeSpec('camera', 'camera', namespace=f'/{camera}',
                       parameters={'camera': camera, 'calibration': calibration_name})
              for camera in calibration.cameras]
    return nodes


GRAPH = register(Graph(
    name='hardware',
    description='Real ALOHA drivers: Dynamixel arm drivers and cameras from a calibration.',
    args={
        'calibration': GraphArg('aloha_stationary', 'calibration/<name>.yaml with arms: and '
                                'cameras:'),
        'leaders': GraphArg('true', 'also drive the leader arms (read-only)', ('true', 'false')),
    },
    build=lambda args: hardware_nodes(args['calibration'], as_bool(args['leaders'])),
))
