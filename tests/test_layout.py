"""Latent layout data, pixel sequence, injection/readback."""
import numpy as np
import pytest
import torch

from cosmos_policy_ros.model.layout import (
    ALOHA_LAYOUT,
    LIBERO_LAYOUT,
    LayoutError,
    Role,
    SampleKind,
    ValueMode,
    build_pixel_sequence,
    inject,
    inject_value,
    read_back,
    read_value,
)


def test_aloha_roles_and_condition_frames():
    layout = ALOHA_LAYOUT
    assert layout.num_frames == 11 and layout.num_pixel_frames == 41
    assert [layout.index(r) for r in (Role.ACTION, Role.FUTURE_PROPRIO, Role.VALUE)] == [5, 6, 10]
    assert layout.cameras[Role.PRIMARY] == 'cam_high'
    assert layout.cameras[Role.LEFT_WRIST] == 'cam_left_wrist'
    assert layout.condition_frames(SampleKind.POLICY) == (0, 1, 2, 3, 4)
    assert layout.condition_frames(SampleKind.WORLD_MODEL) == (0, 1, 2, 3, 4, 5)
    assert layout.condition_frames(SampleKind.VALUE) == tuple(range(10))
    assert layout.condition_frames('value', ValueMode.V_SPRIME) == (0, 6, 7, 8, 9)
    assert layout.condition_frames('value', 'q_sa') == (0, 1, 2, 3, 4, 5)
    assert layout.loss_mask('value', 'v_sprime').tolist() == [0] * 10 + [1]
    assert layout.loss_mask('policy').sum() == 11
    assert LIBERO_LAYOUT.num_frames == 9 and LIBERO_LAYOUT.condition_frames('policy') == (
        0, 1, 2, 3)
    with pytest.raises(LayoutError, match='no .wrist'):
        ALOHA_LAYOUT.index(Role.WRIST)


def test_pixel_sequence_layout_and_prefix():
    images = {cam: torch.full((2, 3, 8, 8), float(i) / 10)
              for i, cam in enumerate(('cam_high', 'cam_left_wrist', 'cam_right_wrist'))}
    future = {cam: img + 0.5 for cam, img in images.items()}
    video = build_pixel_sequence(ALOHA_LAYOUT, images, future)
    assert video.shape == (2, 3, 41, 8, 8)
    per_frame = video[0, 0, :, 0, 0].tolist()
    assert per_frame[:5] == [-1.0] * 5                      # blank, proprio blanks
    assert per_frame[5:9] == pytest.approx([0.1] * 4)      # left wrist x4
    assert per_frame[9:13] == pytest.approx([0.2] * 4)     # right wrist x4
    assert per_frame[13:17] == pytest.approx([0.0] * 4)    # cam_high x4
    assert per_frame[17:25] == [-1.0] * 8                  # action, future proprio
    assert per_frame[25:29] == pytest.approx([0.6] * 4)    # future left wrist
    assert per_frame[37:41] == [-1.0] * 4                  # value
    prefix = build_pixel_sequence(ALOHA_LAYOUT, images, num_latent_frames=5)
    assert prefix.shape[2] == 17 and torch.equal(prefix, video[:, :, :17])
    with pytest.raises(LayoutError, match="images lacks camera 'cam_right_wrist'"):
        build_pixel_sequence(ALOHA_LAYOUT, {'cam_left_wrist': images['cam_left_wrist']})


def test_injection_tiles_row_major_and_truncates():
    latent = torch.zeros(1, 16, 11, 28, 28)
    chunk = torch.arange(700, dtype=torch.float32).reshape(1, 50, 14)
    out = inject(latent, 5, chunk)
    flat = out[0, :, 5].flatten()
    assert flat.numel() == 12544
    assert torch.equal(flat, torch.arange(12544, dtype=torch.float32) % 700)
    assert out[:, :, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]].abs().sum() == 0
    assert torch.equal(read_back(out, 5, 700).reshape(1, 50, 14), chunk)


def test_readback_averages_full_copies_only():
    latent = torch.zeros(2, 2, 3, 3, 3)    # 18 values per frame, 4 values -> 4 full copies + 2
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]])
    out = inject(latent, 1, values)
    noisy = out.clone()
    frame = noisy[:, :, 1].reshape(2, -1)
    frame[:, 16:] = 100.0                                   # the partial tail copy is ignored
    noisy[:, :, 1] = frame.reshape(2, 2, 3, 3)
    torch.testing.assert_close(read_back(noisy, 1, 4), values)
    frame[:, 0] += 4.0                                      # one full copy moved by 4 -> mean +1
    noisy[:, :, 1] = frame.reshape(2, 2, 3, 3)
    assert read_back(noisy, 1, 4)[:, 0].tolist() == pytest.approx([2.0, 0.0])


def test_value_broadcast_and_readback():
    latent = torch.randn(3, 4, 2, 2, 2)
    out = inject_value(latent, 1, torch.tensor([-1.0, 0.0, 0.6]))
    assert out[2, :, 1].eq(0.6).all()
    assert read_value(out, 1).tolist() == pytest.approx([0.0, 0.5, 0.8])
    out[0, :, 1] = 3.0
    assert read_value(out, 1)[0].item() == 1.0              # clamped


def test_chunk_too_large_for_tiny_latent_names_sizes():
    latent = torch.zeros(1, 16, 11, 4, 4)
    with pytest.raises(LayoutError,
                       match=r'action chunk has 700 values.*16x4x4=256.*at least 56 px'):
        inject(latent, 5, torch.zeros(1, 700), what='action chunk')
    with pytest.raises(LayoutError, match='700'):
        read_back(latent, 5, 700)
    assert np.isfinite(read_back(inject(latent, 1, torch.ones(1, 14)), 1, 14).numpy()).all()
