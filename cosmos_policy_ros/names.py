"""Topic names, joint names and vector layouts: the one place they are defined.

Interbotix ROS 2 ALOHA conventions (shared/reference/aloha_stacks.md §1.3, §1.7):
arm namespaces follower_left/right and leader_left/right, per-arm joint_states with nine
names, cameras on /<cam>/camera/color/image_rect_raw, and the 14-d vector
[left 6 joints, left gripper, right 6 joints, right gripper].
"""

ARM_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')
GRIPPER = 'gripper'
# Names accepted by the per-arm joint command interface (positions in rad, gripper = motor angle).
COMMAND_JOINTS = ARM_JOINTS + (GRIPPER,)
# Names published on /<arm>/joint_states, Interbotix order; fingers are linear positions [m].
JOINT_STATE_NAMES = COMMAND_JOINTS + ('left_finger', 'right_finger')

SIDES = ('left', 'right')
FOLLOWERS = ('follower_left', 'follower_right')
LEADERS = ('leader_left', 'leader_right')
ARMS = FOLLOWERS + LEADERS

CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
IMAGE_HEIGHT = 480
IMAGE_WIDTH = 640
IMAGE_ENCODING = 'rgb8'

CONTROL_HZ = 25.0          # Cosmos Policy ALOHA control rate (one action per 40 ms)
CHUNK_LENGTH = 50          # actions per chunk (2 s at 25 Hz)
STATE_DIM = 14             # [left 6, left gripper, right 6, right gripper]

# 14-d names used in JointTrajectory chunks and in exported datasets.
VECTOR_NAMES = tuple(f'{side}_{joint}' for side in SIDES for joint in COMMAND_JOINTS)
# Where each follower arm's 7 values (6 joints, then the gripper) sit in a 14-d vector, and
# which entries are grippers / arm joints.
FOLLOWER_SLICES = {arm: slice(i * len(COMMAND_JOINTS), (i + 1) * len(COMMAND_JOINTS))
                   for i, arm in enumerate(FOLLOWERS)}
GRIPPER_INDICES = tuple(part.stop - 1 for part in FOLLOWER_SLICES.values())        # (6, 13)
ARM_JOINT_INDICES = tuple(i for i in range(STATE_DIM) if i not in GRIPPER_INDICES)


def joint_states_topic(arm: str) -> str:
    return f'/{arm}/joint_states'


def joint_command_topic(arm: str) -> str:
    """sensor_msgs/JointState with `name` ⊆ COMMAND_JOINTS and `position` in rad.

    The same interface is accepted by the sim robot and by the Dynamixel arm driver.
    """
    return f'/{arm}/commands/joint_positions'


def torque_enable_service(arm: str) -> str:
    """std_srvs/SetBool on the Dynamixel arm driver: torque on (activate) / off."""
    return f'/{arm}/torque_enable'


def reboot_service(arm: str) -> str:
    """std_srvs/Trigger on the Dynamixel arm driver: reboot the arm's motors."""
    return f'/{arm}/reboot'


def camera_topic(camera: str) -> str:
    return f'/{camera}/camera/color/image_rect_raw'


def side_of(arm: str) -> str:
    """'follower_left' -> 'left'."""
    side = arm.rsplit('_', 1)[-1]
    if side not in SIDES:
        raise ValueError(f'arm name {arm!r} must end in _left or _right')
    return side


# Simulation / episode control (std_srvs/Trigger services and std_msgs/Bool topic).
RESET_SERVICE = '/sim/reset'
SUCCESS_QUERY_SERVICE = '/sim/success'   # std_srvs/Trigger: success now (+ reward JSON)
SUCCESS_TOPIC = '/task/success'
EPISODE_TOPIC = '/task/episode'          # std_msgs/String: JSON {episode, task, seed, state}

# Demonstration recorder (std_srvs/Trigger services; status std_msgs/String JSON, latched).
RECORDER_START_SERVICE = '/recorder/start'
RECORDER_STOP_SERVICE = '/recorder/stop'         # finish and save the episode bag
RECORDER_DISCARD_SERVICE = '/recorder/discard'
RECORDER_STATUS_TOPIC = '/recorder/status'       # {state, episode, messages, error, ...}

# Deployment graph.
ACTION_CHUNK_TOPIC = '/policy/action_chunk'      # trajectory_msgs/JointTrajectory (policy)
PLANNED_CHUNK_TOPIC = '/planner/action_chunk'    # trajectory_msgs/JointTrajectory (planner)
VALUE_TOPIC = '/policy/value'                    # std_msgs/Float32
ESTOP_TOPIC = '/estop'                           # std_msgs/Bool
DIAGNOSTICS_TOPIC = '/diagnostics'               # diagnostic_msgs/DiagnosticArray

# Deployment graph: orchestration and dashboard (deploy helper).
CONTROLLER_STATUS_TOPIC = '/controller/status'   # std_msgs/String JSON: remaining steps, state
POLICY_LATENCY_TOPIC = '/policy/latency'         # std_msgs/String JSON: seconds per stage
POLICY_INFO_TOPIC = '/policy/info'               # std_msgs/String JSON (latched): model, UNTRAINED
PLANNER_VALUES_TOPIC = '/planner/candidate_values'   # std_msgs/Float32MultiArray per candidate
PLANNER_LATENCY_TOPIC = '/planner/latency'       # std_msgs/String JSON: seconds per stage
POLICY_MARKERS_TOPIC = '/policy/markers'         # visualization_msgs/MarkerArray: preview+text


def future_image_topic(camera: str) -> str:
    """Predicted future camera image (sensor_msgs/Image) for the dashboard."""
    return f'/policy/future/{camera}'

# Robot model (robot_state node): URDF, merged joint states with URDF joint names, TF.
ROBOT_DESCRIPTION_TOPIC = '/robot_description'   # std_msgs/String (latched): urdf/aloha.urdf
ROBOT_JOINT_STATES_TOPIC = '/joint_states'       # sensor_msgs/JointState, both followers
TF_TOPIC = '/tf'                                 # tf2_msgs/TFMessage
PLANNER_MARKERS_TOPIC = '/planner/markers'       # visualization_msgs/MarkerArray: candidates
CONTROLLER_MARKERS_TOPIC = '/controller/markers'  # visualization_msgs/MarkerArray: state text
