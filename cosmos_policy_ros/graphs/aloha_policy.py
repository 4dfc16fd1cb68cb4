"""aloha_policy: Cosmos Policy (or best-of-N planner) + arm controller on the sim or hardware.

planning:=false -> policy node publishes chunks on names.ACTION_CHUNK_TOPIC;
planning:=true  -> planner node (policy model + planning model, best-of-N) publishes on
names.PLANNED_CHUNK_TOPIC, and the policy node is left out (it would load the same policy
weights a second time and compete for the GPU). The controller follows whichever is on.

robot_model:=true adds the robot_state node: the URDF on /robot_description and TF from the
followers' joint states, for RViz's RobotModel (off by default: nothing but RViz needs it).

Every argument but the graph's own switches (use_sim, planning, robot_model, driver) is a node
parameter (cosmos_policy_ros/schemas): type, default, choices and range come from there.
"""
from cosmos_policy_ros import names
from cosmos_policy_ros.graph import Graph, NodeSpec, arg, graph_args
from cosmos_policy_ros.graphs.hardware import DRIVER_ARG, hardware_nodes
from cosmos_policy_ros.params import Param, pick
from cosmos_policy_ros.schemas.controller import CONTROLLER
from cosmos_policy_ros.schemas.policy import MODEL, PLANNER, POLICY
from cosmos_policy_ros.schemas.sim_robot import SIM_ROBOT

# Model arguments go to the policy or the planner node, whichever runs.
MODEL_ARGS = tuple(param.name for param in MODEL)
PLANNING_ARGS = ('planning_checkpoint', 'num_candidates', 'aggregation', 'value_mode',
                 'future_steps', 'value_steps')


def check_steps(args, name: str) -> list:
    """An ensemble's denoising steps (one member per entry), each >= 1."""
    steps = args[name]
    if not steps or min(steps) < 1:
        raise ValueError(f'{name}:={",".join(map(str, steps))!r} must be comma-separated step '
                         'counts >= 1, e.g. 1,3,5')
    return steps


def build(args) -> list:
    use_sim, planning, locked = args['use_sim'], args['planning'], args['lockstep']
    if args['backend'] == 'remote' and planning:
        raise ValueError('backend:=remote drives the policy node; planning:=true runs the '
                         'planner in this graph (use backend:=local)')
    if locked and not use_sim:
        raise ValueError('lockstep:=true needs use_sim:=true (the sim waits for the controller)')
    common = {'use_sim_time': use_sim}
    model = {name: args[name] for name in MODEL_ARGS}
    observe = {'task': args['task'], 'calibration': args['calibration'], 'mode': args['mode'],
               'freshness': args['freshness'], 'lockstep': locked,
               'execute_steps': args['execute_steps']}
    nodes = []
    if use_sim:
        nodes.append(NodeSpec('sim_robot', 'sim_robot', parameters={
            **common, 'task': args['task'], 'seed': args['seed'],
            'camera_rate': args['camera_rate'], 'calibration': args['calibration'],
            # Never faster than real time: the 25 Hz controller and the policy's latency
            # live in sim time, and a sim racing ahead starves them of wall time.
            'realtime_factor_cap': 1.0, 'lockstep': locked,
            'success_rate': 25.0 if locked else 10.0,
            'episode_seconds': args['episode_seconds']}))
    else:
        nodes += hardware_nodes(args['calibration'], leaders=False, driver=args['driver'])
    if planning:
        check_steps(args, 'future_steps')
        check_steps(args, 'value_steps')
        nodes.append(NodeSpec('planner', 'planner', parameters={
            **common, **model, **observe, **{name: args[name] for name in PLANNING_ARGS}}))
    else:
        nodes.append(NodeSpec('policy', 'policy', parameters={
            **common, **model, **observe, 'decode_future': args['decode_future'],
            'backend': args['backend'], 'server': args['server']}))
    nodes.append(NodeSpec('controller', 'controller', parameters={
        **common, 'calibration': args['calibration'], 'mode': args['mode'],
        'chunk_topic': names.PLANNED_CHUNK_TOPIC if planning else names.ACTION_CHUNK_TOPIC,
        'execute_steps': args['execute_steps'], 'ensemble': args['ensemble'],
        'ensemble_decay': args['ensemble_decay'], 'chunk_smoothing': args['chunk_smoothing'],
        'max_chunk_age': args['max_chunk_age'], 'max_step_rad': args['max_step_rad'],
        'max_jump_rad': args['max_jump_rad'],
        'steady_timer': not use_sim, 'lockstep': locked}))
    if args['robot_model']:
        nodes.append(NodeSpec('robot_state', 'robot_state', parameters=common))
    return nodes


GRAPH = Graph(
    name='aloha_policy',
    description='Deploy Cosmos Policy: policy (or best-of-N planner) + 25 Hz arm controller.',
    args={
        **graph_args(
            Param('use_sim', True, 'run the MuJoCo ALOHA instead of the hardware drivers'),
            Param('planning', False, 'best-of-N planning (planner node drives the arms)'),
            Param('robot_model', False, 'robot_state node: URDF and TF for RViz'),
            *pick(POLICY, 'task', *(name for name in MODEL_ARGS if name != 'seed'), 'mode',
                  'decode_future', 'freshness', 'backend', 'server'),
            *pick(PLANNER, *PLANNING_ARGS),
            *pick(CONTROLLER, 'execute_steps', 'ensemble', 'ensemble_decay', 'chunk_smoothing',
                  'max_chunk_age', 'max_step_rad', 'max_jump_rad', 'calibration'),
            *pick(SIM_ROBOT, 'camera_rate', 'episode_seconds')),
        'seed': arg(*pick(POLICY, 'seed'), description='first sim episode seed and base '
                    'noise seed'),
        'lockstep': arg(*pick(SIM_ROBOT, 'lockstep'), description='sim advances only while a '
                        'chunk runs (evaluation: the result does not depend on machine speed)'),
        'driver': DRIVER_ARG,      # hardware arm driver (use_sim:=false)
    },
    build=build,
)
