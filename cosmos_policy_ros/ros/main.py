"""Humble-safe node entry point (ros2/demos topics/talker.py shape)."""
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


def run(node_factory, args=None, threads: int | None = None) -> None:
    """Init, build the node, spin a MultiThreadedExecutor, and always clean up.

    A node that raises while being built exits non-zero with the error on stderr, so a
    launcher sees it (no silent crash).
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        executor = MultiThreadedExecutor(num_threads=threads)
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
