"""Node executables: name -> 'module:function'.

setup.py installs each as a console script in lib/cosmos_policy_ros (for `ros2 run` and launch
files); `python -m cosmos_policy_ros.run_node NAME` runs the same entry without installation.
This module must stay importable by setup.py on its own (standard library only).
"""
NODES = {
    'sim_robot': 'cosmos_policy_ros.nodes.sim_robot:main',
    'scripted_leader': 'cosmos_policy_ros.nodes.scripted_leader:main',
    'teleop': 'cosmos_policy_ros.nodes.teleop:main',
    'recorder': 'cosmos_policy_ros.nodes.recorder:main',
    'policy': 'cosmos_policy_ros.nodes.policy:main',
    'controller': 'cosmos_policy_ros.nodes.controller:main',
    'planner': 'cosmos_policy_ros.nodes.planner:main',
    'arm_driver': 'cosmos_policy_ros.nodes.arm_driver:main',
    'camera': 'cosmos_policy_ros.nodes.camera:main',
    'interbotix_bridge': 'cosmos_policy_ros.nodes.interbotix_bridge:main',
    'robot_state': 'cosmos_policy_ros.nodes.robot_state:main',
}
