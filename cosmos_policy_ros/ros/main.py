"""Humble-safe node entry point (ros2/demos topics/talker.py shape)."""
import os

import rclpy
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)


def run(node_factory, args=None, threads: int | None = None) -> None:
    """Init, build the node, spin a MultiThreadedExecutor (threads=1: a SingleThreadedExecutor),
    and always clean up.

    A node that raises while being built exits non-zero with the error on stderr, so a
    launcher sees it (no silent crash).
    """
    use_large_frame_transport()
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        executor = (SingleThreadedExecutor() if threads == 1
                    else MultiThreadedExecutor(num_threads=threads))
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()


def use_large_frame_transport() -> None:
    """Unless the user chose a Fast DDS profile, use one whose shared memory fits camera frames
    (config/fastdds_robot.xml), for Fast DDS 2.x and 3 alike: see
    cosmos_policy_ros.rosenv.use_robot_profile. Must run before rclpy.init."""
    from cosmos_policy_ros.rosenv import use_robot_profile
    use_robot_profile(os.environ)
