"""ros2 launch cosmos_policy_ros aloha_policy.launch.py [use_sim:=true planning:=false ...]

Same node list as `cosmos-policy-ros up aloha_policy` (cosmos_policy_ros/graphs/aloha_policy.py).
"""
from cosmos_policy_ros.launch_util import generate

GRAPH = 'aloha_policy'


def generate_launch_description():
    return generate(GRAPH)
