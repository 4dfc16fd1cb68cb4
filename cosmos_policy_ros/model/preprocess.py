"""Camera images -> model images, as the released client and server do (§3, §8).

Raw H x W x 3 uint8 RGB (480x640 on ALOHA) -> [a preset's workspace crop, our addition; none
for the released model] -> 256x256 PIL bicubic (client) -> model size PIL default (bicubic)
resize (server) -> optional test-time 90 %-area centre crop resized back with antialiased
bilinear (the training augmentation's deterministic counterpart).
"""
import math

import numpy as np
import torch
from PIL import Image

from cosmos_policy_ros.names import IMAGE_HEIGHT, IMAGE_WIDTH

CLIENT_SIZE = 256
CROP_AREA = 0.9


class ImageFormatError(ValueError):
    """An image has the wrong dtype, rank, channels or size."""


def check_image(image, camera: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageFormatError(f'camera {camera!r}: expected a numpy array, got '
                               f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise ImageFormatError(f'camera {camera!r}: expected dtype uint8 (0-255 RGB), got '
                               f'{image.dtype}; convert with (x*255).round().astype(np.uint8) '
                               'if it is float in [0,1]')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageFormatError(f'camera {camera!r}: expected H x W x 3 RGB, got shape '
                               f'{image.shape}')
    return image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """PIL bicubic resize to size x size."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def center_crop_resize(image: np.ndarray, area: float = CROP_AREA) -> np.ndarray:
    """Centre crop of `area` of the pixels, resized back (bilinear, antialiased, uint8)."""
    size = image.shape[0]
    crop = int(size * math.sqrt(area))
    top, left = round((size - crop) / 2.0), round((image.shape[1] - crop) / 2.0)
    cropped = torch.from_numpy(np.ascontiguousarray(image[top:top + crop, left:left + crop]))
    x = cropped.permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(x, size=(size, size), mode='bilinear',
                                          align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def crop_fraction(image: np.ndarray, box) -> np.ndarray:
    """The (top, left, height, width) fraction of the frame (ModelPreset.camera_crops). The
    box is in fractions, so it selects the same scene region of the raw frame and of the
    client's 256x256 resize of it."""
    top, left, height, width = box
    rows, cols = image.shape[:2]
    r0, c0 = round(top * rows), round(left * cols)
    r1, c1 = max(r0 + 1, round((top + height) * rows)), max(c0 + 1, round((left + width) * cols))
    return np.ascontiguousarray(image[r0:r1, c0:c1])


def preprocess_image(image: np.ndarray, camera: str, image_size: int = 224,
                     raw_hw: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH),
                     test_time_crop: bool = True, crop=None) -> np.ndarray:
    """One camera image -> image_size x image_size x 3 uint8 for the model.

    Accepted sizes: the raw camera size (raw_hw), the client's 256x256, or already the model
    size; anything else is a misconfigured camera and raises. crop: the preset's workspace box
    for this camera (or None), applied to raw and 256x256 images; an image already at the
    model size is taken as preprocessed, crop included.
    """
    image = check_image(image, camera)
    accepted = {tuple(raw_hw), (CLIENT_SIZE, CLIENT_SIZE), (image_size, image_size)}
    if image.shape[:2] not in accepted:
        raise ImageFormatError(f'camera {camera!r}: got a {image.shape[0]}x{image.shape[1]} '
                               f'image; expected one of {sorted(accepted)} (HxW); check the '
                               'camera resolution setting')
    if image.shape[:2] != (image_size, image_size):
        if crop is not None:
            image = resize(crop_fraction(image, crop), CLIENT_SIZE)
        elif image.shape[:2] != (CLIENT_SIZE, CLIENT_SIZE):
            image = resize(image, CLIENT_SIZE)
        image = resize(image, image_size)
    if test_time_crop:
        image = center_crop_resize(image)
    return image


def to_model_tensor(images_B_H_W_3: np.ndarray) -> torch.Tensor:
    """uint8 B,H,W,3 -> float32 B,3,H,W in [-1, 1] (x / 127.5 - 1)."""
    x = torch.from_numpy(np.ascontiguousarray(images_B_H_W_3)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def from_model_tensor(video_B_3_H_W: torch.Tensor) -> np.ndarray:
    """float B,3,H,W in [-1,1] -> uint8 B,H,W,3."""
    x = ((video_B_3_H_W.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
