"""ros2 launch cosmos_policy_ros record_demos.launch.py [use_sim:=true task:=transfer_cube ...]

Same node list as `cosmos-policy-ros up record_demos` (cosmos_policy_ros/graphs/record_demos.py).
"""
from cosmos_policy_ros.launch_util import generate

GRAPH = 'record_demos'


def generate_launch_description():
    return generate(GRAPH)
