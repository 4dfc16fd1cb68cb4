"""What a node graph is made of, for both `ros2 launch` files and the pip CLI.

A graph (cosmos_policy_ros.graphs, the registry) is a function from its arguments to a list of
NodeSpec. launch/<graph>.launch.py turns the specs into launch_ros Node actions
(cosmos_policy_ros.launch_util); `cosmos-policy-ros up <graph>` turns the same specs into
processes (cosmos_policy_ros.procs). Every argument is a Param, usually a node's own
(cosmos_policy_ros.schemas), so its type, default, choices and range are declared once.
"""
import argparse
import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cosmos_policy_ros.executables import NODES
from cosmos_policy_ros.params import Param, ParamError


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    namespace: str = ''
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.executable not in NODES:
            raise ValueError(f'node {self.name!r}: unknown executable {self.executable!r}; '
                             f'known: {sorted(NODES)}')

    @property
    def full_name(self) -> str:
        namespace = self.namespace.strip('/')
        return f'/{namespace}/{self.name}' if namespace else f'/{self.name}'

    def ros_args(self) -> list:
        """Command-line arguments equivalent to what launch_ros passes."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:  # rcl needs an absolute namespace; launch_ros adds the slash itself
            args += ['-r', f'__ns:=/{self.namespace.strip("/")}']
        for key, value in self.parameters.items():
            args += ['-p', f'{key}:={json.dumps(value)}']
        return args


def as_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ('true', '1', 'yes', 'on'):
        return True
    if lowered in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'expected true/false, got {text!r}')


def to_text(value) -> str:
    """A typed value as a launch argument string ('true', '2.0', '1,3,5')."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return ','.join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class GraphArg:
    """A launch argument: its Param gives the type, default, description, choices and range.

    Launch passes strings; `parse` turns one into the typed value the graph builder gets.
    """
    param: Param

    @property
    def default(self) -> str:
        return to_text(self.param.default)

    @property
    def description(self) -> str:
        return self.param.description

    @property
    def choices(self) -> tuple:
        if isinstance(self.param.default, bool):
            return ('true', 'false')
        return tuple(to_text(choice) for choice in self.param.choices)

    def parse(self, value):
        """Typed value of a launch string (or of an already typed value); ValueError if bad."""
        kind = type(self.param.default)
        if not isinstance(value, str):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            return [*value] if kind is list else value
        if kind is bool:
            return as_bool(value)
        if kind is list:
            item = type(self.param.default[0])
            return [item(part.strip()) for part in value.split(',') if part.strip()]
        return kind(value)


def arg(param: Param, **changes) -> GraphArg:
    """A graph argument from a node parameter; `changes` (default=, description=) mark where
    the graph differs from the node on purpose."""
    return GraphArg(dataclasses.replace(param, **changes) if changes else param)


def graph_args(*params: Param) -> dict:
    """{name: GraphArg} of `params` (graph-only switches are Params too)."""
    return {param.name: GraphArg(param) for param in params}


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    args: Mapping[str, GraphArg]
    build: Callable[[Mapping[str, Any]], list]


def resolve_args(graph: Graph, overrides: Mapping[str, Any]) -> dict:
    """Typed values of every argument (defaults filled); reject unknown arguments and values
    of the wrong type, outside `choices` or out of range, naming the fix."""
    unknown = set(overrides) - set(graph.args)
    if unknown:
        raise ValueError(f'graph {graph.name!r}: unknown argument(s) {sorted(unknown)}; '
                         f'known: {sorted(graph.args)}')
    values = {}
    for name, graph_arg in graph.args.items():
        given = overrides.get(name, graph_arg.param.default)
        if graph_arg.choices and isinstance(given, str) and given not in graph_arg.choices:
            raise ValueError(f'graph {graph.name!r}: {name}:={given!r} is not one of '
                             f'{list(graph_arg.choices)}')
        try:
            value = graph_arg.parse(given)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'graph {graph.name!r}: {name}:={given!r} must be of type '
                             f'{type(graph_arg.param.default).__name__} '
                             f'(default {graph_arg.default!r}): {exc}') from None
        try:
            graph_arg.param.check(value)
        except ParamError as exc:
            raise ValueError(f'graph {graph.name!r}: {name}:={given!r}: {exc}') from None
        values[name] = value
    return values


def add_flags(parser: argparse.ArgumentParser, graph: Graph, *names: str) -> None:
    """`--name` flags for the graph arguments `names` (underscores as dashes), with the same
    type, default, choices and help; read them back with `flag_values`."""
    for name in names:
        param = graph.args[name].param
        flag = '--' + name.replace('_', '-')
        help_text = f'{param.description} (graph argument {name})'
        if isinstance(param.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=param.default, help=help_text)
            continue
        parser.add_argument(flag, type=graph.args[name].parse, default=param.default,
                            choices=list(param.choices) or None,
                            metavar=None if param.choices else name.upper(),
                            help=f'{help_text}; default {to_text(param.default)!r}')


def flag_values(args: argparse.Namespace, *names: str) -> dict:
    return {name: getattr(args, name) for name in names}
