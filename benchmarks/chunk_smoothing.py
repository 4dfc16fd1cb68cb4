"""Held-out action error of a policy's chunks against a moving-average window: the figure
behind the controller's `chunk_smoothing` (control.chunks.smooth).

Builds the training run's data as `cosmos-policy-ros train` does (config + overrides; the
latent cache is reused or built), samples the policy's chunk on its held-out windows for a few
noise seeds (as deployed: current frames and proprio in, 5 denoising steps by default), and
compares each chunk, raw and smoothed, with the demonstration's. Prints a table and writes
--out JSON. Needs the run's demonstrations on disk.

    .venv/bin/python benchmarks/chunk_smoothing.py --config config/train/sim_cube_act.yaml \\
        --set init=models/sim_transfer_cube vae=models/sim_transfer_cube \\
        data.statistics=models/sim_transfer_cube/dataset_statistics.json
"""
import argparse
import json
from pathlib import Path

import numpy as np

WINDOWS = (1, 3, 5, 7, 9, 13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='config/train/sim_cube_act.yaml')
    parser.add_argument('--set', nargs='*', default=[], metavar='key=value',
                        help='training config overrides (init= selects the weights)')
    parser.add_argument('--samples', type=int, default=144, help='held-out windows')
    parser.add_argument('--seeds', type=int, default=4, help='noise seeds per window')
    parser.add_argument('--num-steps', type=int, default=5, help='denoising steps')
    parser.add_argument('--out', default='runs/bench/chunk_smoothing.json')
    args = parser.parse_args()

    import torch

    from cosmos_policy_ros.control.chunks import smooth
    from cosmos_policy_ros.model.layout import SampleKind
    from cosmos_policy_ros.training.config import load_train_config
    from cosmos_policy_ros.training.trainer import Trainer
    from cosmos_policy_ros.training.validation import ARMS, GRIPPERS, chunks, sample_rows
    config = load_train_config(args.config, [*args.set, f'val.samples={args.samples}',
                                             'name=bench_chunk_smoothing'])
    trainer = Trainer(config, progress=False)
    data, rows = trainer.data, trainer.val_rows
    x0 = data.assemble(rows, trainer.latents.get(rows, [0] * len(rows)), trainer.latents.blank)
    text = torch.cat([trainer.text[episode.instruction] for episode, _ in rows])
    truth = data.statistics.actions.unnormalize(
        np.stack([data.normalized(episode, t)['actions'] for episode, t in rows]))
    mask = data.layout.condition_mask(SampleKind.POLICY)
    net = trainer.net.eval()
    with torch.no_grad():
        sampled = [chunks(sample_rows(net, x0, text, mask, args.num_steps, 1000 * seed, 48),
                          data) for seed in range(args.seeds)]

    def smooth_all(batch: np.ndarray, window: int) -> np.ndarray:
        return np.stack([smooth(chunk, window) for chunk in batch])

    def errors(window: int) -> dict:
        error = np.stack([np.abs(smooth_all(chunk, window) - truth) for chunk in sampled])
        return {'window': window, 'l1_arms': float(error[..., ARMS].mean()),
                'l1_first10_arms': float(error[:, :, :10][..., ARMS].mean()),
                'l1_grippers': float(error[..., GRIPPERS].mean())}

    table = [errors(window) for window in WINDOWS]
    step = {'sampled': float(np.mean([np.abs(np.diff(c, axis=1))[..., ARMS].mean()
                                      for c in sampled])),
            'demonstrations': float(np.abs(np.diff(truth, axis=1))[..., ARMS].mean())}
    print(f'{len(rows)} held-out windows x {args.seeds} noise seeds, {args.num_steps} steps')
    print('window | L1 arms [rad] | first 10, arms | grippers [0..1]')
    for row in table:
        print(f'{row["window"]:6d} | {row["l1_arms"]:.4f} | {row["l1_first10_arms"]:.4f} | '
              f'{row["l1_grippers"]:.4f}')
    print(f'mean step-to-step arm motion [rad]: sampled {step["sampled"]:.4f}, '
          f'demonstrations {step["demonstrations"]:.4f}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'config': args.config, 'overrides': args.set,
                               'windows': table, 'rows': len(rows), 'seeds': args.seeds,
                               'num_steps': args.num_steps, 'step_motion': step}, indent=2))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
