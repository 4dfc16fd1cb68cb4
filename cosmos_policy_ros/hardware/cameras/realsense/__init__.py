from cosmos_policy_ros.hardware.cameras.realsense.camera_realsense import (
    RealSenseCamera,
)

__all__ = ['RealSenseCamera']
