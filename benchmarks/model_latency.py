"""Policy latency per stage: preprocessing, VAE encode, one denoising step, predict at 1/5/10
steps.

    python benchmarks/model_latency.py --preset tiny --device cpu --dtype float32
    python benchmarks/model_latency.py --preset 2b --device cuda --dtype bfloat16 --random-weights
    python benchmarks/model_latency.py --preset sim --threads 2 --runtime onnxruntime

Prints median seconds over --repeats after a warm-up (CUDA synchronised), and peak memory
(torch.cuda.max_memory_allocated on GPU, process RSS on CPU). Random weights unless
--checkpoint is given (2b requires --random-weights or --checkpoint).
"""
import argparse
import resource
import statistics
import time

import numpy as np
import torch
from tqdm import tqdm

from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.diffusion import Conditioning
from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
from cosmos_policy_ros.model.text import TextEmbeddings
from cosmos_policy_ros.names import CAMERAS, IMAGE_HEIGHT, IMAGE_WIDTH
from cosmos_policy_ros.runtime import RUNTIMES

TASK = 'benchmark task'


def timed(fn, device, repeats):
    fn()                                     # warm-up
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(device) -> str:
    if device.type == 'cuda':
        return f'{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (cuda max allocated)'
    return f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (peak RSS)'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--random-weights', action='store_true')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    parser.add_argument('--runtime', default='eager', choices=RUNTIMES,
                        help='network runtime (onnxruntime/tensorrt build engines first)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    if args.preset == '2b' and not (args.random_weights or args.checkpoint):
        parser.error('2b needs --checkpoint or --random-weights')
    device = torch.device(args.device)
    text = TextEmbeddings(preset.text_tokens, preset.text_dim,
                          {TASK: torch.randn(1, preset.text_tokens, preset.text_dim)})
    policy = CosmosPolicy.from_config(preset, checkpoint=args.checkpoint, text=text,
                                      device=args.device, dtype=args.dtype,
                                      runtime=args.runtime)
    rng = np.random.default_rng(0)
    obs = Observation({c: rng.integers(0, 256, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
                       for c in CAMERAS}, rng.normal(size=14) * 0.1, TASK)
    images, _, emb = policy.prepare([obs])
    encoded = policy.encode(images)
    frames = policy.layout.num_frames
    mask_B_T = torch.zeros(1, frames, dtype=torch.bool, device=device)
    mask_B_T[:, :policy.layout.num_condition_frames_policy] = True
    condition = Conditioning(encoded, mask_B_T, emb)
    sigma_B = torch.full((1,), 10.0, device=device)

    def denoise_step():   # one network evaluation in the chosen runtime
        with torch.no_grad():
            policy.parts.denoise(encoded, sigma_B, condition)

    stages = {'preprocess+text': lambda: policy.prepare([obs]),
              'vae_encode (prefix)': lambda: policy.encode(images),
              'denoise step': denoise_step}
    for steps in (1, 5, 10):
        stages[f'predict {steps} steps'] = (lambda n=steps: policy.predict(obs, num_steps=n))
    print(f'preset={args.preset} device={args.device} dtype={args.dtype} runtime={args.runtime} '
          f'threads={torch.get_num_threads()} dit_params='
          f'{sum(p.numel() for p in policy.dit.parameters()) / 1e6:.2f}M')
    for name, fn in tqdm(stages.items(), desc='stages'):
        tqdm.write(f'{name:>22s}: {timed(fn, device, args.repeats) * 1000:10.1f} ms')
    print(f'peak memory: {peak_memory(device)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
