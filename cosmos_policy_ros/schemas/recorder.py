"""Parameters of the episode recorder node (nodes/recorder.py)."""
from cosmos_policy_ros import names
from cosmos_policy_ros.data.bag import COMPRESSIONS
from cosmos_policy_ros.params import Param

RECORDER = (
    Param('output_dir', 'runs/demos', 'directory of the episode bags', read_only=True),
    Param('task', '', 'task name stored with each episode', read_only=True),
    Param('calibration', 'aloha_sim', 'calibration stored with each episode (gripper preset '
          'used by the exporter)', read_only=True),
    Param('cameras', list(names.CAMERAS), 'cameras to record (names.CAMERAS)', read_only=True),
    Param('compression', 'zstd', 'MCAP chunk compression', choices=tuple(COMPRESSIONS),
          read_only=True),
    Param('flush_seconds', 0.5, 'chunk flush period: the most a crash can lose [s]',
          min=0.05, max=1.0, read_only=True),
    Param('min_free_mb', 200.0, 'refuse to start an episode with less free disk [MB]', min=0.0),
    Param('recover_on_start', True, 'recover .partial episodes left by a crash at startup',
          read_only=True),
    Param('status_period', 0.5, 'status/diagnostics publish period [wall s]', min=0.05),
)
