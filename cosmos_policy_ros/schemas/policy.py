"""Parameters of the policy and planner nodes (they share the model, observation and query
parameters; the planner adds best-of-N's)."""
from cosmos_policy_ros.control.chunks import MODES
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.planning.aggregate import AGGREGATIONS
from cosmos_policy_ros.planning.best_of_n import VALUE_MODES
from cosmos_policy_ros.runtime import RUNTIMES
from cosmos_policy_ros.schemas.controller import EXECUTE_STEPS
from cosmos_policy_ros.sim.tasks import TASKS

MODEL = (
    Param('preset', 'tiny', 'model preset (models/<preset>.yaml: tiny, small, 2b)',
          read_only=True),
    Param('checkpoint', '', "policy weights; '' runs the preset UNTRAINED (random weights)",
          read_only=True),
    Param('statistics', '', "dataset statistics JSON; '' = the checkpoint's, else "
          'config/sim_statistics.json', read_only=True),
    Param('text', 'minilm', "text embeddings: T5 pickle/safetensors cache path or 'minilm'",
          read_only=True),
    Param('device', 'cpu', 'torch device (cpu, cuda, cuda:1)', read_only=True),
    Param('dtype', 'float32', 'model dtype', choices=('float32', 'bfloat16', 'float16'),
          read_only=True),
    Param('runtime', 'eager', 'network runtime (docs/inference.md): eager, compile, '
          'cuda_graphs, onnxruntime, tensorrt', choices=RUNTIMES, read_only=True),
    Param('engine_cache', '', "onnxruntime/tensorrt engine cache directory ('' = "
          '$COSMOS_POLICY_ENGINE_CACHE or ~/.cache/cosmos_policy_ros/engines)', read_only=True),
    Param('num_steps', 10, 'denoising steps for the action chunk', min=1, max=100),
    Param('seed', 0, 'base noise seed (incremented per query)', min=0),
    Param('torch_threads', 0, 'torch CPU threads (0: torch default)', min=0),
)

# The remote backend drives the policy node only (the planner runs its models in-process).
REMOTE = (
    Param('backend', 'local', 'local: run the model in this process; remote: query a policy '
          'server (cosmos-policy-ros serve)', choices=('local', 'remote'), read_only=True),
    Param('server', 'ws://127.0.0.1:8000', 'remote: policy server URI (ws:// or wss://)',
          read_only=True),
    Param('server_timeout', 10.0, 'remote: longest wait for a chunk [s, wall]; a later reply '
          'is dropped with its connection', min=0.1, read_only=True),
)

OBSERVATION = (
    Param('freshness', 1.0, 'newest usable observation age [s, node clock]', min=0.01),
    Param('sync_slop', 0.1, 'largest stamp difference between sources of one observation [s]',
          min=0.0),
)

QUERY = (
    Param('task', 'transfer_cube', 'task; its instruction conditions the policy',
          choices=tuple(TASKS), read_only=True),
    Param('instruction', '', "override the task's instruction text ('' = the task's)",
          read_only=True),
    Param('calibration', 'aloha_sim', 'calibration (gripper constants for proprio)',
          read_only=True),
    Param('mode', 'sync', 'sync: query when the chunk ends; async: query ahead of it',
          choices=MODES, read_only=True),
    Param('async_trigger_steps', -1, 'async: query when <= this many actions remain '
          '(-1: from the measured latency + margin)', min=-1, max=50),
    Param('lockstep', False, 'sim lockstep (control.lockstep): query on finished chunks with '
          'observations after them; noise seeds from the episode seed and chunk index',
          read_only=True),
    EXECUTE_STEPS,
)

POLICY = MODEL + REMOTE + OBSERVATION + QUERY + (
    Param('decode_future', False, 'decode and publish predicted future images'),
)

PLANNER = MODEL + REMOTE + OBSERVATION + QUERY + (
    Param('planning_checkpoint', '', "planning model weights ('' = use the policy model)",
          read_only=True),
    Param('num_candidates', 8, 'candidate chunks per query (one batched call)', min=1,
          max=64),
    Param('future_steps', [1, 3, 5], 'future-state ensemble: denoising steps per sample'),
    Param('value_steps', [1, 2, 3, 4, 5], 'value ensemble: denoising steps per sample'),
    Param('aggregation', 'majority_mean', 'value ensemble aggregation', choices=AGGREGATIONS),
    Param('value_mode', 'v_sprime', "V(s') from predicted futures or Q(s,a)",
          choices=VALUE_MODES),
)
