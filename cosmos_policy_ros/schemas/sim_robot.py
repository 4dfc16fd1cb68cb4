"""Parameters of the MuJoCo ALOHA node (nodes/sim_robot.py)."""
from cosmos_policy_ros import names
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.sim.tasks import TASKS

SIM_ROBOT = (
    Param('task', 'transfer_cube', 'sim task', choices=tuple(TASKS), read_only=True),
    Param('seed', 0, 'seed of the first episode; each reset uses the next', min=0,
          read_only=True),
    Param('calibration', 'aloha_sim', 'calibration/<name>.yaml or a path (gripper, limits)',
          read_only=True),
    Param('camera_rate', 25.0, 'camera publish rate [Hz of sim time]', min=0.1, max=50.0),
    Param('joint_state_rate', 50.0, 'joint_states publish rate [Hz of sim time]', min=0.1,
          max=50.0),
    Param('success_rate', 10.0, 'task success publish rate [Hz of sim time]', min=0.1,
          max=50.0),
    Param('realtime_factor_cap', 0.0, 'never run faster than this x real time (0: uncapped)',
          min=0.0),
    Param('publish_cameras', True, 'render and publish the cameras'),
    Param('disabled_cameras', [''], "cameras not published (names.CAMERAS; [''] = none)"),
    Param('diagnostics_period', 1.0, 'diagnostics publish period [wall s]', min=0.05),
    Param('lockstep', False, 'advance only on commands stamped with the sim time (eval)',
          read_only=True),
    Param('episode_seconds', 0.0, 'lockstep: stop advancing after this long per episode '
          '(0: never)', min=0.0, max=lockstep.EPISODE_PERIOD / 2, read_only=True),
    Param('joint_states_topics', [names.joint_states_topic(a) for a in names.FOLLOWERS],
          'joint_states topics [left, right]', read_only=True),
    Param('command_topics', [names.joint_command_topic(a) for a in names.FOLLOWERS],
          'joint command topics [left, right]', read_only=True),
    Param('camera_topics', [names.camera_topic(c) for c in names.CAMERAS],
          f'image topics for {list(names.CAMERAS)}', read_only=True),
)
