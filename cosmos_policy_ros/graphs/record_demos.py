"""record_demos: sim ALOHA + scripted leader arms + teleop + recorder (or real leaders/followers:
`cosmos-policy-ros record --hardware`)."""
from cosmos_policy_ros.graph import Graph, NodeSpec, graph_args
from cosmos_policy_ros.graphs.hardware import DRIVER_ARG, hardware_nodes
from cosmos_policy_ros.params import Param, pick
from cosmos_policy_ros.schemas.recorder import RECORDER
from cosmos_policy_ros.schemas.sim_robot import SIM_ROBOT


def build(args) -> list:
    use_sim = args['use_sim']
    common = {'use_sim_time': use_sim}
    nodes = []
    if not use_sim:
        nodes += hardware_nodes(args['calibration'], leaders=True, driver=args['driver'])
    else:
        nodes.append(NodeSpec('sim_robot', 'sim_robot', parameters={
            **common, 'task': args['task'], 'seed': args['seed'],
            'camera_rate': args['camera_rate'], 'calibration': args['calibration']}))
        nodes.append(NodeSpec('scripted_leader', 'scripted_leader', parameters={
            **common, 'task': args['task'], 'calibration': args['calibration']}))
    # On hardware the opening ceremony runs: followers move to the start pose, and teleop starts
    # when the operator closes both leader grippers. The scripted sim leaders need neither.
    ceremony = {} if use_sim else {'move_to_start_seconds': 4.0, 'wait_for_grippers': True}
    nodes.append(NodeSpec('teleop', 'teleop', parameters={
        **common, 'calibration': args['calibration'], **ceremony}))
    nodes.append(NodeSpec('recorder', 'recorder', parameters={
        **common, 'output_dir': args['output_dir'], 'task': args['task'],
        'calibration': args['calibration']}))
    return nodes


GRAPH = Graph(
    name='record_demos',
    description='Record teleoperated demonstrations (sim: scripted leader arms) to rosbag2 MCAP.',
    args={
        **graph_args(
            Param('use_sim', True, 'run the MuJoCo ALOHA instead of the hardware drivers'),
            *pick(SIM_ROBOT, 'task', 'seed', 'camera_rate', 'calibration'),
            *pick(RECORDER, 'output_dir')),
        'driver': DRIVER_ARG,      # hardware arm driver (use_sim:=false)
    },
    build=build,
)
