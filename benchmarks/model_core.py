"""Speed of the model core: DiT forward, Wan VAE encode/decode at the policy's sizes.

    .venv/bin/python benchmarks/model_core.py [--preset tiny] [--device cpu|cuda]
                                              [--dtype float32|bfloat16] [--repeats 3]
                                              [--threads N] [--skip-decode]

Policy sizes: 41 pixel frames of 224x224 -> 11 latent frames of 28x28 -> 2156 DiT tokens,
batch 1, random weights (speed does not depend on them). Prints the median wall time and the
process CPU time of each stage; the first call (warm-up, kernel selection) is not counted.
On a CPU shared with other jobs, wall times are inflated; CPU time is the steadier figure.
"""
import argparse
import statistics
import time

import torch
from tqdm import tqdm

from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.vae import WanVAE, latent_frames


def timed(fn, repeats: int, device: torch.device, label: str) -> tuple[float, float]:
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()
    fn()
    sync()
    walls, cpus = [], []
    for _ in tqdm(range(repeats), desc=label, leave=False):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    parser.add_argument('--skip-decode', action='store_true')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    dit = DiT(preset.dit).to(device, dtype).eval()
    vae = WanVAE(preset.vae).to(device, dtype).eval()
    size, frames = preset.image_size, 41
    T, h = latent_frames(frames), preset.latent_size
    video = torch.rand(1, 3, frames, size, size, device=device) * 2 - 1
    x = torch.randn(1, 16, T, h, h, device=device)
    t = torch.rand(1, T, device=device)
    text = torch.randn(1, preset.text_tokens, preset.text_dim, device=device)
    mask = torch.zeros(1, 1, T, h, h, device=device)
    mask[:, :, :5] = 1

    n_dit = sum(p.numel() for p in dit.parameters())
    n_vae = sum(p.numel() for p in vae.parameters())
    tokens = T * (h // preset.dit.patch_spatial) ** 2
    print(f'preset {preset.name}: DiT {n_dit:,} params, VAE {n_vae:,} params; {args.device} '
          f'{args.dtype}, torch threads {torch.get_num_threads()}; {frames} frames '
          f'{size}x{size} -> {T} latent frames {h}x{h} -> {tokens} tokens')
    rows = []
    with torch.inference_mode():
        latent = vae.encode(video)
        rows.append(('DiT forward', *timed(lambda: dit(x, t, text, mask), args.repeats, device,
                                           'dit')))
        rows.append(('VAE encode', *timed(lambda: vae.encode(video), args.repeats, device,
                                          'encode')))
        if not args.skip_decode:
            rows.append(('VAE decode', *timed(lambda: vae.decode(latent), args.repeats, device,
                                              'decode')))
    print(f'{"stage":<14}{"wall s":>10}{"cpu s":>10}')
    for name, wall, cpu in rows:
        print(f'{name:<14}{wall:>10.3f}{cpu:>10.3f}')


if __name__ == '__main__':
    main()
