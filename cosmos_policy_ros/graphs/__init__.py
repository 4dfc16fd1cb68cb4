"""The registry of node graphs: every graph by name, listed here explicitly.

Each module under graphs/ defines one `GRAPH` (cosmos_policy_ros.graph.Graph); a new graph is
added to `GRAPHS` below.
"""
import difflib
from collections.abc import Mapping
from typing import Any

from cosmos_policy_ros.graph import Graph, resolve_args
from cosmos_policy_ros.graphs import aloha_policy, hardware, record_demos

GRAPHS = {graph.name: graph for graph in (aloha_policy.GRAPH, hardware.GRAPH,
                                          record_demos.GRAPH)}


def get_graph(name: str) -> Graph:
    if name not in GRAPHS:
        close = difflib.get_close_matches(name, GRAPHS, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise KeyError(f'unknown graph {name!r}{hint}; known: {sorted(GRAPHS)}')
    return GRAPHS[name]


def build_graph(name: str, overrides: Mapping[str, Any] | None = None) -> list:
    """The NodeSpecs of graph `name` for `overrides` (launch strings or typed values)."""
    graph = get_graph(name)
    nodes = graph.build(resolve_args(graph, overrides or {}))
    names = [spec.full_name for spec in nodes]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f'graph {name!r} has duplicate node names {sorted(duplicates)}')
    return nodes
