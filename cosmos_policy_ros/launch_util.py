"""Turn a graph (cosmos_policy_ros.graph) into a launch description for `ros2 launch`.

launch/launch_ros are imported lazily: they exist on a system ROS install, not in the PyPI
wheels, while the node list itself is plain Python shared with the CLI.
"""
from cosmos_policy_ros.graphs import build_graph, get_graph

PACKAGE = 'cosmos_policy_ros'


def launch_specs(graph_name: str, context) -> list:
    """The NodeSpecs for the launch arguments in `context` (a launch LaunchContext)."""
    graph = get_graph(graph_name)
    values = {name: context.launch_configurations.get(name, arg.default)
              for name, arg in graph.args.items()}
    return build_graph(graph_name, values)


def generate(graph_name: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    graph = get_graph(graph_name)

    def nodes(context):
        return [Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                     namespace=spec.namespace or None, parameters=[dict(spec.parameters)],
                     output='screen', emulate_tty=True)
                for spec in launch_specs(graph_name, context)]

    arguments = [DeclareLaunchArgument(name, default_value=arg.default,
                                       description=arg.description,
                                       **({'choices': list(arg.choices)} if arg.choices else {}))
                 for name, arg in graph.args.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=nodes)])
