"""aloha_policy: Cosmos Policy (or best-of-N planner) + arm controller on the sim or hardware.

planning:=false -> policy node publishes chunks on names.ACTION_CHUNK_TOPIC;
planning:=true  -> planner node (policy model + planning model, best-of-N) publishes on
names.PLANNED_CHUNK_TOPIC, and the policy node is left out (it would load the same policy
weights a second time and compete for the GPU). The controller follows whichever is on.
"""
from cosmos_policy_ros import names
from cosmos_policy_ros.graph import Graph, GraphArg, NodeSpec, as_bool, register
from cosmos_policy_ros.graphs.hardware import DRIVER_ARG
from cosmos_policy_ros.planning.aggregate import AGGREGATIONS
from cosmos_policy_ros.sim.tasks import TASKS


def step_list(args, name: str) -> list:
    """'1,3,5' -> [1, 3, 5] (one ensemble member per entry)."""
    try:
        steps = [int(item) for item in args[name].split(',') if item.strip()]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise ValueError(f'{name}:={args[name]!r} must be comma-separated step counts >= 1, '
                         'e.g. 1,3,5')
    return steps


# -- backend:=remote (policy server; see cosmos_policy_ros/serving) --------------------------
def remote_policy(args) -> dict:
    if args['backend'] == 'remote' and as_bool(args['planning']):
        raise ValueError('backend:=remote drives the policy node; planning:=true runs the '
                         'planner in this graph (use backend:=local)')
    return {'backend': args['backend'], 'server': args['server']}


def build(args) -> list:
    use_sim, planning = as_bool(args['use_sim']), as_bool(args['planning'])
    locked = as_bool(args['lockstep'])
    remote = remote_policy(args)
    if locked and not use_sim:
        raise ValueError('lockstep:=true needs use_sim:=true (the sim waits for the controller)')
    common = {'use_sim_time': use_sim}
    model = {'preset': args['preset'], 'checkpoint': args['checkpoint'],
             'statistics': args['statistics'], 'text': args['text'], 'device': args['device'],
             'dtype': args['dtype'], 'num_steps': int(args['num_steps']),
             'seed': int(args['seed']), 'torch_threads': int(args['torch_threads'])}
    observe = {'task': args['task'], 'calibration': args['calibration'], 'mode': args['mode'],
               'freshness': float(args['freshness']), 'lockstep': locked}
    nodes = []
    if use_sim:
        nodes.append(NodeSpec('sim_robot', 'sim_robot', parameters={
            **common, 'task': args['task'], 'seed': int(args['seed']),
            'camera_rate': float(args['camera_rate']), 'calibration': args['calibration'],
            # Never faster than real time: the 25 Hz controller and the policy's latency
            # live in sim time, and a sim racing ahead starves them of wall time.
            'realtime_factor_cap': 1.0, 'lockstep': locked,
            'success_rate': 25.0 if locked else 10.0,
            'episode_seconds': float(args['episode_seconds'])}))
    else:
        from cosmos_policy_ros.graphs.hardware import hardware_nodes
        nodes += hardware_nodes(args['calibration'], leaders=False, driver=args['driver'])
    if planning:
        nodes.append(NodeSpec('planner', 'planner', parameters={
            **common, **model, **observe,
            'planning_checkpoint': args['planning_checkpoint'],
            'num_candidates': int(args['num_candidates']),
            'aggregation': args['aggregation'], 'value_mode': args['value_mode'],
            'future_steps': step_list(args, 'future_steps'),
            'value_steps': step_list(args, 'value_steps')}))
    else:
        nodes.append(NodeSpec('policy', 'policy', parameters={
            **common, **model, **observe, 'decode_future': as_bool(args['decode_future']),
            **remote}))
    nodes.append(NodeSpec('controller', 'controller', parameters={
        **common, 'calibration': args['calibration'], 'mode': args['mode'],
        'chunk_topic': names.PLANNED_CHUNK_TOPIC if planning else names.ACTION_CHUNK_TOPIC,
        'max_chunk_age': float(args['max_chunk_age']),
        'max_step_rad': float(args['max_step_rad']), 'steady_timer': not use_sim,
        'lockstep': locked}))
    return nodes


GRAPH = register(Graph(
    name='aloha_policy',
    description='Deploy Cosmos Policy: policy (or best-of-N planner) + 25 Hz arm controller.',
    args={
        'use_sim': GraphArg('true', 'run the MuJoCo ALOHA instead of the hardware drivers',
                            ('true', 'false')),
        'task': GraphArg('transfer_cube', 'task (its instruction conditions the policy)',
                         tuple(TASKS)),
        'checkpoint': GraphArg('', "policy checkpoint ('' = UNTRAINED random weights)"),
        'planning_checkpoint': GraphArg('', "planning model checkpoint ('' = the policy's)"),
        'preset': GraphArg('tiny', 'model preset (models/<preset>.yaml)'),
        'statistics': GraphArg('', "dataset statistics JSON ('' = config/sim_statistics.json)"),
        'text': GraphArg('minilm', "T5 embedding cache path or 'minilm'"),
        'device': GraphArg('cpu', 'torch device'),
        'dtype': GraphArg('float32', 'model dtype', ('float32', 'bfloat16', 'float16')),
        'num_steps': GraphArg('10', 'denoising steps for the action chunk'),
        'torch_threads': GraphArg('0', 'torch CPU threads of the policy/planner (0: default)'),
        'seed': GraphArg('0', 'first sim episode seed and base noise seed'),
        'planning': GraphArg('false', 'best-of-N planning (planner node drives the arms)',
                             ('true', 'false')),
        'num_candidates': GraphArg('8', 'planning: candidate chunks per query'),
        'aggregation': GraphArg('majority_mean', 'planning: value ensemble aggregation',
                                AGGREGATIONS),
        'future_steps': GraphArg('1,3,5', 'planning: future-state ensemble (steps each)'),
        'value_steps': GraphArg('1,2,3,4,5', 'planning: value ensemble (steps each)'),
        'value_mode': GraphArg('v_sprime', "planning: V(s') or Q(s,a)", ('v_sprime', 'q_sa')),
        'mode': GraphArg('sync', 'chunk execution: sync (reference) or async (blended)',
                         ('sync', 'async')),
        'decode_future': GraphArg('false', 'publish predicted future images (dashboard)',
                                  ('true', 'false')),
        'freshness': GraphArg('1.0', 'newest usable observation age [s]'),
        'max_chunk_age': GraphArg('2.0', 'controller rejects chunks older than this [s]'),
        'max_step_rad': GraphArg('0.1', 'largest arm joint change per 25 Hz tick [rad]'),
        'camera_rate': GraphArg('25.0', 'sim camera rate [Hz of sim time]'),
        'lockstep': GraphArg('false', 'sim advances only while a chunk runs (evaluation: the '
                             'result does not depend on machine speed)', ('true', 'false')),
        'episode_seconds': GraphArg('0', 'lockstep: sim stops after this long per episode '
                                    '(0: never)'),
        'driver': DRIVER_ARG,      # hardware arm driver (use_sim:=false)
        'calibration': GraphArg('aloha_sim', 'calibration/<name>.yaml (limits, gripper)'),
        # backend:=remote: the policy node queries a `cosmos-policy-ros serve` server
        'backend': GraphArg('local', 'policy model in the node (local) or on a policy server '
                            '(remote)', ('local', 'remote')),
        'server': GraphArg('ws://127.0.0.1:8000', 'backend:=remote: policy server URI'),
    },
    build=build,
))
