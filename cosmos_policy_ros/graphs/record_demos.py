"""record_demos: sim ALOHA + scripted leader arms + teleop + recorder (or real leaders/followers:
`cosmos-policy-ros record --hardware`)."""
from cosmos_policy_ros.graph import Graph, GraphArg, NodeSpec, as_bool, register
from cosmos_policy_ros.graphs.hardware import DRIVER_ARG
from cosmos_policy_ros.sim.tasks import TASKS


def build(args) -> list:
    use_sim = as_bool(args['use_sim'])
    common = {'use_sim_time': use_sim}
    nodes = []
    if not use_sim:
        from cosmos_policy_ros.graphs.hardware import hardware_nodes
        nodes += hardware_nodes(args['calibration'], leaders=True, driver=args['driver'])
    else:
        nodes.append(NodeSpec('sim_robot', 'sim_robot', parameters={
            **common, 'task': args['task'], 'seed': int(args['seed']),
            'camera_rate': float(args['camera_rate']), 'calibration': args['calibration']}))
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


GRAPH = register(Graph(
    name='record_demos',
    description='Record teleoperated demonstrations (sim: scripted leader arms) to rosbag2 MCAP.',
    args={
        'use_sim': GraphArg('true', 'run the MuJoCo ALOHA instead of the hardware drivers',
                            ('true', 'false')),
        'task': GraphArg('transfer_cube', 'task name', tuple(TASKS)),
        'seed': GraphArg('0', 'first episode seed (sim)'),
        'camera_rate': GraphArg('25.0', 'sim camera rate [Hz of sim time]'),
        'driver': DRIVER_ARG,      # hardware arm driver (use_sim:=false)
        'calibration': GraphArg('aloha_sim', 'calibration/<name>.yaml (gripper preset, limits)'),
        'output_dir': GraphArg('runs/demos', 'where episode bags are written'),
    },
    build=build,
))
