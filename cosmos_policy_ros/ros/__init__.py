"""Thin rclpy helpers shared by the nodes (the only package besides nodes/ that imports rclpy)."""
