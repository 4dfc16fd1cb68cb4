"""Parameters of the 25 Hz arm controller (nodes/controller.py, control/runtime.py)."""
from cosmos_policy_ros import names
from cosmos_policy_ros.control.chunks import ENSEMBLE_DECAY as ACT_DECAY
from cosmos_policy_ros.control.chunks import MODES
from cosmos_policy_ros.params import Param

# The controller plays these actions of each chunk; the policy and planner read it too, since
# in lockstep their noise seeds count queries by it (control.lockstep). One Param for all.
EXECUTE_STEPS = Param(
    'execute_steps', names.CHUNK_LENGTH, 'actions executed of each chunk before the next one '
    '(sync: the policy re-queries after them); the reference executes all 50',
    min=1, max=names.CHUNK_LENGTH, read_only=True)

ENSEMBLE = Param(
    'ensemble', False, "temporal ensembling (ACT): each tick plays the weighted mean of the "
    'actions every chunk still covering it predicted, not only the newest one', read_only=True)
ENSEMBLE_DECAY = Param(
    'ensemble_decay', ACT_DECAY, 'ensemble weight exp(-decay * i), i = 0 for the oldest chunk '
    "(ACT's value; 0: plain mean)", min=0.0, max=10.0, read_only=True)

CHUNK_SMOOTHING = Param(
    'chunk_smoothing', 1, 'centred moving average over this many actions (odd) of each chunk '
    'before it plays: averages out the step-to-step sampling noise of a small policy (1: off, '
    'the reference)', choices=tuple(range(1, names.CHUNK_LENGTH + 1, 2)), read_only=True)

CONTROLLER = (
    Param('calibration', 'aloha_sim', 'calibration/<name>.yaml or a path (limits, gripper)',
          read_only=True),
    Param('chunk_topic', names.ACTION_CHUNK_TOPIC, 'chunks to follow (policy or planner)',
          read_only=True),
    Param('mode', 'sync', 'sync: play whole chunks; async: align by stamp and blend',
          choices=MODES, read_only=True),
    EXECUTE_STEPS,
    ENSEMBLE,
    ENSEMBLE_DECAY,
    CHUNK_SMOOTHING,
    Param('blend_steps', 5, 'async cross-fade length [ticks] (0: splice)', min=0, max=50),
    Param('output_rate', 25.0, 'command rate [Hz]; above 25 Hz targets are interpolated',
          min=25.0, max=1000.0, read_only=True),
    Param('max_step_rad', 0.1, 'largest arm joint change per 25 Hz tick [rad]', min=1e-4,
          max=1.0),
    Param('max_gripper_step', 0.25, 'largest gripper motor change per 25 Hz tick [rad]',
          min=1e-4, max=3.0),
    Param('max_chunk_age', 2.0, 'reject chunks whose observation is older [s]', min=0.01),
    # 1.2: the shipped sim policy's chunks jump up to 0.83 rad (benchmarks/chunk_jumps.py).
    Param('max_jump_rad', 1.2, 'reject chunks whose arm joints jump more than this between '
          'consecutive points or from the measured position to where the chunk starts [rad]; '
          '0: off (random-weight pipeline checks, lockstep evaluation)', min=0.0, max=3.2),
    Param('observation_timeout', 1.0, 'hold when a camera or joint state is older [s]',
          min=0.01),
    Param('chunk_timeout', 10.0, 'hold when no chunk arrived for this long [s]', min=0.1),
    Param('startup_grace', 30.0, 'sources never seen count as late only after this [s]',
          min=0.0),
    Param('steady_timer', False, 'pace the tick on the steady clock (hardware) instead of '
          'the node clock (sim time in sim)', read_only=True),
    Param('diagnostics_period', 1.0, 'diagnostics period [s, steady clock]', min=0.05),
    Param('lockstep', False, 'sim lockstep: command only while a chunk runs (evaluation)',
          read_only=True),
)
