"""cosmos_policy_ros.health.Level -> diagnostic_msgs/DiagnosticStatus level."""
from diagnostic_msgs.msg import DiagnosticStatus

from cosmos_policy_ros.health import Level

_STATUS_LEVELS = {Level.OK: DiagnosticStatus.OK, Level.WARN: DiagnosticStatus.WARN,
                  Level.ERROR: DiagnosticStatus.ERROR}


def status_level(level: Level) -> bytes:
    return _STATUS_LEVELS[Level(level)]
