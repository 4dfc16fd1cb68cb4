"""Cameras (lerobot-like split): a Camera ABC, config dataclasses, one subpackage per backend.

Backends are imported only when a camera of that kind is made, so reading a calibration file
needs neither OpenCV nor pyrealsense2.
"""
from cosmos_policy_ros.hardware.cameras.camera import (
    Camera,
    CameraError,
    CameraStats,
    EndOfStream,
    Frame,
)
from cosmos_policy_ros.hardware.cameras.configs import (
    BACKENDS,
    CameraConfig,
    CameraConfigError,
    OpenCVCameraConfig,
    RealSenseCameraConfig,
    VideoFileCameraConfig,
    camera_config_from_mapping,
    cameras_from_calibration,
    parse_cameras_section,
)


def make_camera(config: CameraConfig) -> Camera:
    if isinstance(config, OpenCVCameraConfig):
        from cosmos_policy_ros.hardware.cameras.opencv import OpenCVCamera
        return OpenCVCamera(config)
    if isinstance(config, RealSenseCameraConfig):
        from cosmos_policy_ros.hardware.cameras.realsense import RealSenseCamera
        return RealSenseCamera(config)
    if isinstance(config, VideoFileCameraConfig):
        from cosmos_policy_ros.hardware.cameras.video_file import VideoFileCamera
        return VideoFileCamera(config)
    raise TypeError(f'no camera backend for {type(config).__name__}; known: {list(BACKENDS)}')


__all__ = ['BACKENDS', 'Camera', 'CameraConfig', 'CameraConfigError', 'CameraError',
           'CameraStats', 'EndOfStream', 'Frame', 'OpenCVCameraConfig', 'RealSenseCameraConfig',
           'VideoFileCameraConfig', 'camera_config_from_mapping', 'cameras_from_calibration',
           'make_camera', 'parse_cameras_section']
