"""Health levels (ROS-free): the one enum every core reports its diagnostics with.

The values are diagnostic_msgs/DiagnosticStatus's levels; the nodes convert with
cosmos_policy_ros.ros.diagnostics.status_level.
"""
from enum import IntEnum


class Level(IntEnum):
    OK = 0
    WARN = 1
    ERROR = 2
