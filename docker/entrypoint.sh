#!/usr/bin/env bash
# Container entry point: the ROS distribution and the colcon workspace are sourced, so that
# `docker run IMAGE ros2 launch cosmos_policy_ros ...` (or any command) finds both.
set -e
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is set by the ros base image}/setup.bash"
# shellcheck disable=SC1091
source /ws/install/setup.bash
exec "$@"
