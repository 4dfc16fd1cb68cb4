"""cosmos-policy-ros dashboard: the operator dashboard in a browser, live or on a recorded bag.

Live: subscribes to the graph's topics (robot joint states, cameras, predicted frames, chunks,
value, latency, controller status, diagnostics) and serves http://127.0.0.1:8765/.
--bag DIR: the same page on a recorded rosbag2 MCAP episode, with a time slider (no ROS needed).
"""
import sys
import time

from cosmos_policy_ros.dashboard.server import DashboardServer
from cosmos_policy_ros.robot.kinematics import aloha_kinematics


def add_arguments(parser) -> None:
    parser.add_argument('--bag', default='', help='replay this rosbag2 MCAP episode (a bag '
                        'directory or its .mcap file) instead of the live graph')
    parser.add_argument('--host', default='127.0.0.1', help='address to serve on (the page '
                        'has no authentication: keep it on loopback or a trusted network)')
    parser.add_argument('--port', type=int, default=8765, help='HTTP port (0: any free one)')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='live: time the messages on /clock (sim graphs)')
    parser.add_argument('--seconds', type=float, default=0.0,
                        help='stop after this long (0: until Ctrl-C)')


def run(args) -> int:
    kinematics = aloha_kinematics()
    try:
        if args.bag:
            from cosmos_policy_ros.dashboard.replay import load_bag
            state = load_bag(args.bag, kinematics)
            return serve(state, 'replay', args, spin=None)
        from cosmos_policy_ros.dashboard.state import DashboardState
        return serve(DashboardState(kinematics), 'live', args, spin=_live_spin(args))
    except (OSError, ValueError) as exc:     # no bag, an unreadable one, port taken
        print(f'dashboard: {exc}', file=sys.stderr)
        return 2


def _live_spin(args):
    def spin(state, until):
        import rclpy
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from cosmos_policy_ros.ros.dashboard import DashboardNode
        from cosmos_policy_ros.ros.main import use_large_frame_transport
        use_large_frame_transport()
        rclpy.init()
        node = DashboardNode(state)
        node.set_parameters([Parameter('use_sim_time', value=args.use_sim_time)])
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while rclpy.ok() and until():
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    return spin


def serve(state, mode: str, args, spin) -> int:
    try:
        server = DashboardServer(state, mode, args.host, args.port).start()
    except OSError as exc:
        raise OSError(f'cannot serve on {args.host}:{args.port} ({exc}); choose another '
                      '--port (0: any free one)') from exc
    print(f'dashboard ({mode}): {server.url}', flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else float('inf')

    def running() -> bool:
        return time.monotonic() < deadline

    try:
        if spin is not None:
            spin(state, running)
        else:
            while running():
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
