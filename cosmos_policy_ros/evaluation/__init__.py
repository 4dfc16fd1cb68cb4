"""Closed-loop evaluation on the simulated ALOHA (ROS-free core; the ROS driver is
cosmos_policy_ros.ros.evaluation): the in-process loop, results, videos and rollout files."""
