from cosmos_policy_ros.hardware.cameras.opencv.camera_opencv import OpenCVCamera

__all__ = ['OpenCVCamera']
