"""cosmos_policy_ros: Cosmos Policy on a bimanual ALOHA, from simulation to hardware.

The core subpackages (model, hardware, control, data, planning, sim) never import rclpy;
`nodes` holds thin ROS 2 adapters over them.
"""
__version__ = '0.1.0'
