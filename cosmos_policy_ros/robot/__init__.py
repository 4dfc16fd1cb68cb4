"""The stationary ALOHA's kinematic model: URDF (description.py) and forward kinematics
(kinematics.py), ROS-free."""
