from cosmos_policy_ros.hardware.cameras.video_file.camera_video_file import (
                                                                             VideoFileCamera,
                                                                             write_video_file,
)

__all__ = ['VideoFileCamera', 'write_video_file']
