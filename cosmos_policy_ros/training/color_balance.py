"""Inverse-frequency colour weights for the VAE's reconstruction loss.

A small VAE trained with a plain per-pixel loss spends its capacity on what covers the most
pixels: table, background, arms. At 64 px the transfer-cube's red cube is a 2 x 2 blob, so the
shipped sim VAE reconstructed the scene and dropped the cube, and the policy could not see what
it was to pick up. Weighting each pixel by how rare its colour is in the training frames (the
class balancing of segmentation losses, with quantised colours as the classes) makes the rare,
task-relevant colours count: grey background ~1, a colour on 0.01 % of the pixels up to the cap.
"""
import numpy as np
import torch

BITS = 3                                   # quantisation: 8 levels per channel, 512 colours


def _bin(red, green, blue):
    """0-255 channel values (numpy or torch integers) -> colour bin in [0, 512)."""
    shift = 8 - BITS
    return ((red >> shift) << (2 * BITS)) | ((green >> shift) << BITS) | (blue >> shift)


def color_index(images_uint8: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) colour bin in [0, 512)."""
    pixels = images_uint8.astype(np.int64)
    return _bin(pixels[..., 0], pixels[..., 1], pixels[..., 2])


def color_weights(images_uint8: np.ndarray, power: float, max_weight: float) -> np.ndarray:
    """Weight per colour bin: (p_most_common / p_bin) ** power, clipped to [1, max_weight];
    bins never seen get max_weight."""
    counts = np.bincount(color_index(images_uint8).ravel(), minlength=1 << (3 * BITS))
    frequency = counts / counts.sum()
    with np.errstate(divide='ignore'):
        weights = np.where(counts > 0, (frequency.max() / frequency) ** power, max_weight)
    return np.clip(weights, 1.0, max_weight).astype(np.float32)


def pixel_weights(video_B_3_T_H_W: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Model-range video ([-1, 1]) -> per-pixel weights (B, 1, T, H, W) from the bin table."""
    pixels = ((video_B_3_T_H_W + 1) * 127.5).round().clamp(0, 255).to(torch.int64)
    index = _bin(pixels[:, 0], pixels[:, 1], pixels[:, 2])
    return table.to(video_B_3_T_H_W.device)[index].unsqueeze(1)
