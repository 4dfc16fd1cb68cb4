"""Node parameter schemas (ROS-free), one module per node family, each declared once.

The nodes declare them as ROS parameters (cosmos_policy_ros.ros.params), the graphs derive
their launch arguments from them (cosmos_policy_ros.graph.args_from) and the CLI derives its
flags from the graphs' arguments (cosmos_policy_ros.graph.add_flags), so a default changed
here is the default of the node, of `ros2 launch` / `cosmos-policy-ros up` and of the CLI.
"""
