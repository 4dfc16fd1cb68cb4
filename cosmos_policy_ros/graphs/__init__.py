"""Built-in graphs; each module registers one with cosmos_policy_ros.graph.register."""
from cosmos_policy_ros.graphs import hardware, record_demos  # noqa: F401

try:  # graphs of later milestones register themselves when present
    from cosmos_policy_ros.graphs import aloha_policy  # noqa: F401
except ImportError as exc:  # pragma: no cover - only while a graph module is absent
    if 'aloha_policy' not in str(exc):
        raise
