"""The node graphs, defined once, for both `ros2 launch` files and the pip CLI.

A graph is a function from its arguments to a list of NodeSpec. launch/<graph>.launch.py turns
the specs into launch_ros Node actions (cosmos_policy_ros.launch_util); `cosmos-policy-ros up
<graph>` turns the same specs into processes (cosmos_policy_ros.procs).
"""
import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from cosmos_policy_ros.executables import NODES


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


@dataclass(frozen=True)
class GraphArg:
    default: str
    description: str
    choices: tuple = ()


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    args: Mapping[str, GraphArg]
    build: Callable[[Mapping[str, str]], list]


GRAPHS: dict = {}


def register(graph: Graph) -> Graph:
    GRAPHS[graph.name] = graph
    return graph


def get_graph(name: str) -> Graph:
    _load_builtin_graphs()
    if name not in GRAPHS:
        close = difflib.get_close_matches(name, GRAPHS, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise KeyError(f'unknown graph {name!r}{hint}; known: {sorted(GRAPHS)}')
    return GRAPHS[name]


def resolve_args(graph: Graph, overrides: Mapping[str, str]) -> dict:
    """Fill defaults; reject unknown arguments and values outside `choices`, naming the fix."""
    unknown = set(overrides) - set(graph.args)
    if unknown:
        raise ValueError(f'graph {graph.name!r}: unknown argument(s) {sorted(unknown)}; '
                         f'known: {sorted(graph.args)}')
    values = {name: str(overrides.get(name, arg.default)) for name, arg in graph.args.items()}
    for name, arg in graph.args.items():
        if arg.choices and values[name] not in arg.choices:
            raise ValueError(f'graph {graph.name!r}: {name}:={values[name]!r} is not one of '
                             f'{list(arg.choices)}')
    return values


def build_graph(name: str, overrides: Mapping[str, str] | None = None) -> list:
    graph = get_graph(name)
    nodes = graph.build(resolve_args(graph, overrides or {}))
    names = [spec.full_name for spec in nodes]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f'graph {name!r} has duplicate node names {sorted(duplicates)}')
    return nodes


def as_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ('true', '1', 'yes', 'on'):
        return True
    if lowered in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'expected true/false, got {text!r}')


def _load_builtin_graphs() -> None:
    # Importing registers them; kept lazy so this module stays dependency-free.
    from cosmos_policy_ros import graphs  # noqa: F401
