"""ros2 launch cosmos_policy_ros hardware.launch.py [calibration:=my_aloha driver:=dynamixel ...]

Same node list as `cosmos-policy-ros up hardware` (cosmos_policy_ros/graphs/hardware.py): the arm
drivers (or the Interbotix bridges) and the cameras of one robot file.
"""
from cosmos_policy_ros.launch_util import generate

GRAPH = 'hardware'


def generate_launch_description():
    return generate(GRAPH)
