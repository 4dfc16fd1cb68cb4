"""What a policy's VAE keeps of the scene: reconstructions of fresh sim frames, side by side.

Resets the ROS-free sim at each seed, renders the three cameras, and passes each image through
each checkpoint's VAE as the policy encodes it (a blank frame, then the image repeated 4 times:
the causal group path). Prints PSNR over all pixels and over the cube's pixels (red: R > 150,
G and B < 80), writes a PNG grid (rows: seed x camera; columns: per checkpoint, its input (after
its preset's camera crop) and its reconstruction) and --out JSON.

    MUJOCO_GL=egl .venv/bin/python benchmarks/vae_reconstruction.py \\
        --checkpoints sim_transfer_cube runs/train/sim_transfer_cube_v4/best --seeds 2000 2001
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.model.preprocess import preprocess_image, to_model_tensor

GROUP = 4


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-12))


def reconstruct(policy, image: np.ndarray) -> np.ndarray:
    frame = to_model_tensor(image[None])[:, :, None]
    clip = torch.cat([torch.zeros_like(frame)] + [frame] * GROUP, dim=2)
    with torch.no_grad():
        video = policy.parts.decode(policy.parts.encode(clip))
    out = (video[0, :, -1].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5
    return out.round().to(torch.uint8).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoints', nargs='+', default=['sim_transfer_cube'])
    parser.add_argument('--task', default='transfer_cube')
    parser.add_argument('--seeds', nargs='+', type=int, default=[2000, 2001])
    parser.add_argument('--out', default='runs/bench/vae_reconstruction.json')
    args = parser.parse_args()
    torch.set_num_threads(1)

    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.sim.aloha_sim import AlohaSim
    policies = [CosmosPolicy.from_config(checkpoint=c) for c in args.checkpoints]
    sim = AlohaSim(args.task, load_calibration('aloha_sim'))
    rows, table = [], {c: {'psnr_db': [], 'cube_psnr_db': []} for c in args.checkpoints}
    try:
        for seed in args.seeds:
            sim.reset(seed)
            images = sim.render(names.CAMERAS)
            for camera in names.CAMERAS:
                row = []
                for name, policy in zip(args.checkpoints, policies):
                    image = preprocess_image(images[camera], camera, policy.preset.image_size,
                                             test_time_crop=False,
                                             crop=policy.preset.camera_crops.get(camera))
                    cube = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
                    out = reconstruct(policy, image)
                    row += [image, out]
                    table[name]['psnr_db'].append(psnr(image, out))
                    if cube.any():
                        table[name]['cube_psnr_db'].append(psnr(image[cube], out[cube]))
                rows.append(np.concatenate(row, axis=1))
    finally:
        sim.close()
    print(f'{"checkpoint":45s} {"PSNR dB":>8s} {"cube PSNR dB":>13s}')
    summary = {}
    for name, values in table.items():
        summary[name] = {k: float(np.mean(v)) if v else None for k, v in values.items()}
        cube = summary[name]['cube_psnr_db']
        print(f'{name:45s} {summary[name]["psnr_db"]:8.2f} '
              f'{"-" if cube is None else f"{cube:.2f}":>13s}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3),
                                 Image.NEAREST).save(out.with_suffix('.png'))
    out.write_text(json.dumps({'settings': vars(args), 'mean': summary, 'per_image': table},
                              indent=1))
    print(f'wrote {out} and {out.with_suffix(".png")}')


if __name__ == '__main__':
    main()
