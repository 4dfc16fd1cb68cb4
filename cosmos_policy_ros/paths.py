"""Where the package's shared files (config/, calibration/, models/, launch/, rviz/) live.

A source checkout (pip -e, tests) uses the repository; a wheel install uses
<prefix>/share/cosmos_policy_ros; a colcon install is found through the ament index.
"""
import os
import sys
from pathlib import Path

PACKAGE = 'cosmos_policy_ros'
REPO_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    override = os.environ.get('COSMOS_POLICY_ROS_SHARE')
    if override:
        return Path(override)
    if (REPO_ROOT / 'package.xml').is_file() and (REPO_ROOT / 'config').is_dir():
        return REPO_ROOT
    candidate = Path(sys.prefix) / 'share' / PACKAGE
    if candidate.is_dir():
        return candidate
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - any failure means "not found"
        raise FileNotFoundError(
            f'cannot find the {PACKAGE} share directory (config/, calibration/, models/); '
            'set COSMOS_POLICY_ROS_SHARE to it') from exc


def share_path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)
