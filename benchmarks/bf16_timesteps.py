"""bf16 DiT output vs float32, with the timestep embedding rounded to bf16 (the reference,
what DiT does) or kept in float32 (this repository before issue 10).

    python benchmarks/bf16_timesteps.py                       # the shipped sim policy
    python benchmarks/bf16_timesteps.py --preset small        # random weights (seeded)

For every sigma of a 10-step sample, one DiT forward on the same noisy latent (conditioning
frames clean at t=0) in float32 and in bf16 both ways; prints max |diff| and cosine against
float32 and writes the table as JSON (--json).
"""
import argparse
import json
from pathlib import Path

import torch

from cosmos_policy_ros.model.checkpoint import load_checkpoint, resolve_checkpoint
from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.layout import ALOHA_LAYOUT
from cosmos_policy_ros.model.sampler import call_sigmas


class Float32TimestepDiT(DiT):
    """The earlier variant: sinusoid and its norm in float32, cast to the model dtype after."""

    def embed_timesteps(self, timesteps_B_T):
        sinusoid_B_T_D = self.t_embedder[0](timesteps_B_T.float())
        return (self.t_embedding_norm(sinusoid_B_T_D).to(self.dtype),
                self.t_embedder[1](sinusoid_B_T_D.to(self.dtype)))


def load_dit(args) -> tuple[DiT, int]:
    """(float32 DiT, latent size) of the checkpoint or of a seeded random preset."""
    if args.preset:
        preset = get_preset(args.preset)
        torch.manual_seed(0)
        return DiT(preset.dit), preset.latent_size
    loaded = load_checkpoint(resolve_checkpoint(args.checkpoint))
    return loaded.build('dit', DiT(loaded.preset.dit)), loaded.preset.latent_size


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict:
    a, b = reference.double().flatten(), other.double().flatten()
    return {'max_abs_diff': float((a - b).abs().max()),
            'cosine': float(torch.nn.functional.cosine_similarity(a, b, dim=0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='sim_transfer_cube')
    parser.add_argument('--preset', default=None, help='random weights of this preset instead')
    parser.add_argument('--json', type=Path, default=None)
    args = parser.parse_args()
    dit32, size = load_dit(args)
    dit32 = dit32.float().eval()
    cfg = dit32.cfg
    dit_bf16, variant_bf16 = DiT(cfg), Float32TimestepDiT(cfg)
    for module in (dit_bf16, variant_bf16):
        module.load_state_dict(dit32.state_dict())
        module.to(torch.bfloat16).eval()
    frames = ALOHA_LAYOUT.num_frames
    gen = torch.Generator().manual_seed(0)
    gt = torch.randn(2, cfg.in_channels, frames, size, size, generator=gen)
    context = torch.randn(2, 16, cfg.crossattn_emb_channels, generator=gen)
    conditioned = ALOHA_LAYOUT.num_condition_frames_policy
    mask = torch.zeros(2, 1, frames, size, size)
    mask[:, :, :conditioned] = 1
    rows = []
    with torch.no_grad():
        for sigma in call_sigmas(10):
            t = sigma / (1 + sigma)
            timesteps = torch.full((2, frames), t)
            timesteps[:, :conditioned] = 0
            x = gt * (1 - t) + torch.randn(gt.shape, generator=gen) * t
            reference = dit32(x, timesteps, context, mask)
            as_reference = dit_bf16(x.bfloat16(), timesteps, context.bfloat16(), mask)
            float32_t = variant_bf16(x.bfloat16(), timesteps, context.bfloat16(), mask)
            rows.append({'sigma': sigma, 'bf16_timesteps': compare(reference, as_reference),
                         'fp32_timesteps': compare(reference, float32_t)})
    print(f'{"sigma":>7s} | {"bf16 t: max|d|":>15s} {"cosine":>9s} | '
          f'{"fp32 t: max|d|":>15s} {"cosine":>9s}')
    for row in rows:
        a, b = row['bf16_timesteps'], row['fp32_timesteps']
        print(f'{row["sigma"]:7.2f} | {a["max_abs_diff"]:15.4f} {a["cosine"]:9.6f} | '
              f'{b["max_abs_diff"]:15.4f} {b["cosine"]:9.6f}')
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
