"""`cosmos-policy-ros train-vae CONFIG.yaml`: a preset's Wan-shaped VAE on recorded frames.

The released Wan2.1 weights cannot be had offline and only fit the 2b preset, so the small
presets train their own VAE on the cameras of recorded episodes. Clips mimic what the policy
encodes: a lone blank frame, then two groups of 4 identical frames, each a random camera
image (test view or an augmentation draw) or a blank, so both the first-frame path and the
causal group path are trained. Loss: L1 + L2 reconstruction of every frame plus a small KL
term on the posterior (sampled during training, the mean is used after). When training ends
the per-channel latent mean/std over training clips are written into the checkpoint's preset
(VAEConfig.latent_mean/std), so normalised latents have unit scale for the DiT.
"""
import dataclasses
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from cosmos_policy_ros.model.config import ConfigError, ModelPreset, build_config
from cosmos_policy_ros.model.preprocess import to_model_tensor
from cosmos_policy_ros.model.vae import WanVAE
from cosmos_policy_ros.training import checkpoints
from cosmos_policy_ros.training.augment import AugmentConfig, augmented_view
from cosmos_policy_ros.training.build import load_vae, resolve_preset
from cosmos_policy_ros.training.color_balance import color_weights, pixel_weights
from cosmos_policy_ros.training.config import (
    CheckpointConfig,
    DataConfig,
    OptimConfig,
    apply_overrides,
    config_to_dict,
)
from cosmos_policy_ros.training.dataset import load_episodes, split_episodes
from cosmos_policy_ros.training.latent_cache import FrameStore
from cosmos_policy_ros.training.metrics import CsvLog, smooth
from cosmos_policy_ros.training.optim import make_optimizer, set_lr

GROUP = 4


@dataclass(frozen=True)
class VaeTrainConfig:
    name: str = 'vae'
    output: str = ''                    # '' = runs/vae/<name>
    preset: object = 'sim'
    device: str = 'cpu'
    threads: int = 0
    groups: int = 2                     # image groups of 4 frames after the lone first frame
    single_frame_steps: int = 0         # curriculum: first train on lone images (T=1), which
    #                                     is ~5x cheaper and escapes the mean-image plateau
    blank_prob: float = 0.1             # a group is a blank image with this probability
    augment_prob: float = 0.5           # a random augmentation draw instead of the test view
    posterior: str = 'mean'             # mean: z = mu (+ l2 on mu); sample: z ~ N(mu, var)
    kl_weight: float = 1e-4             # weight of the KL (sample) or of mean(mu^2) (mean)
    l2_weight: float = 1.0
    init: str = ''                      # '' scratch | a train-vae checkpoint to start from
    color_balance: float = 0.0          # power of the inverse colour frequency weighting of the
    #                                     reconstruction loss (training.color_balance); 0 = off
    color_weight_max: float = 20.0
    color_frames: int = 2000            # training frames the colour frequencies come from
    val_every: int = 250
    val_images: int = 32
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        steps=2000, batch_size=8, lr=5e-4, warmup_steps=100, warmup_start=0.01,
        decay_steps=2000, decay_to=0.1, tail=0.1, weight_decay=0.0))
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(every=250))

    def __post_init__(self):
        if self.posterior not in ('mean', 'sample'):
            raise ConfigError(f'posterior must be mean or sample, got {self.posterior!r}')

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f'runs/vae/{self.name}')


def load_vae_config(path: str | Path, overrides=()) -> VaeTrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'train-vae config {path} does not exist')
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault('name', path.stem)
    data = apply_overrides(data, overrides)
    sections = {'data': DataConfig, 'augment': AugmentConfig, 'optim': OptimConfig,
                'checkpoint': CheckpointConfig}
    defaults = VaeTrainConfig()
    for name, cls in sections.items():
        if name in data:
            base = dataclasses.asdict(getattr(defaults, name))
            base.update(data[name] or {})
            data[name] = build_config(cls, base, f'{path}: {name}')
    return build_config(VaeTrainConfig, data, str(path))


class VaeTrainer:
    def __init__(self, config: VaeTrainConfig, resume: bool = False, progress: bool = True):
        self.config, self.progress = config, progress
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        self.preset: ModelPreset = resolve_preset(config.preset)
        self.run = config.output_dir
        episodes = load_episodes(config.data)
        self.split = split_episodes(episodes, config.data.val_episodes, config.data.split_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.optim.seed)
            self.vae = WanVAE(self.preset.vae).to(self.device)
        self.frames = FrameStore(self.preset.image_size, config.data.cameras, keep=10 ** 6,
                                 crops=self.preset.camera_crops)
        if config.init:
            self._load_init(config.init)
        self.color_table = self._color_table() if config.color_balance > 0 else None
        self.optimizer = make_optimizer(self.vae.parameters(), config.optim)
        self.step = 0
        self.best = math.inf
        if resume:
            self._resume()
        self._stop = False

    def _load_init(self, source: str) -> None:
        """Start from a VAE that train's loader accepts for this preset (shape checked)."""
        _, start = load_vae(source, self.preset, allow_random=False, field='init')
        self.vae.load_state_dict(start.state_dict())

    def _color_table(self) -> torch.Tensor:
        """Colour weights from a seeded sample of training frames (all cameras)."""
        rng = np.random.default_rng([self.config.optim.seed, 7])
        episodes = self.split.train
        picks = [episodes[i] for i in rng.permutation(len(episodes))[:16]]
        frames = np.concatenate([np.concatenate(list(self.frames(e).values())) for e in picks])
        frames = frames[rng.permutation(len(frames))[:self.config.color_frames]]
        return torch.from_numpy(color_weights(frames, self.config.color_balance,
                                              self.config.color_weight_max))

    def clip(self, rng: np.random.Generator, episodes) -> np.ndarray:
        """(1 + 4 * groups, S, S, 3) uint8: a blank, then groups of a repeated image."""
        size = self.preset.image_size
        blank = np.zeros((size, size, 3), np.uint8)
        frames = [blank]
        for _ in range(self.config.groups):
            image = blank
            if rng.random() >= self.config.blank_prob:
                episode = episodes[rng.integers(len(episodes))]
                camera = self.config.data.cameras[rng.integers(len(self.config.data.cameras))]
                t = int(rng.integers(episode.length))
                image = self.frames(episode)[camera][t:t + 1]
                draw = int(rng.integers(1, 2 ** 31 - 1)) if rng.random() < \
                    self.config.augment_prob else 0
                image = augmented_view(image, self.config.augment, draw, (t,))[0]
            frames += [image] * GROUP
        return np.stack(frames)

    def batch(self, step: int, episodes, size: int | None = None) -> torch.Tensor:
        rng = np.random.default_rng([self.config.optim.seed, step])
        clips = np.stack([self.clip(rng, episodes)
                          for _ in range(size or self.config.optim.batch_size)])
        video = to_model_tensor(clips.reshape(-1, *clips.shape[2:]))
        return video.reshape(clips.shape[0], clips.shape[1], *video.shape[1:]).transpose(1, 2)

    def loss(self, video: torch.Tensor, generator: torch.Generator) -> tuple:
        z_dim = self.preset.vae.z_dim
        moments = self._moments(video)
        mu, logvar = moments[:, :z_dim], moments[:, z_dim:].clamp(-30, 20)
        if self.config.posterior == 'sample':
            noise = torch.randn(mu.shape, generator=generator).to(mu)
            z = mu + torch.exp(0.5 * logvar) * noise
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).mean()
        else:       # a plain autoencoder: unit-scale posterior noise swamps an untrained mu
            z, kl = mu, (mu ** 2).mean()
        recon = self.vae.decode_mu(z)
        weights = self._weights(video)
        l1 = (weights * (recon - video).abs()).mean() / weights.mean()
        l2 = (weights * (recon - video) ** 2).mean() / weights.mean()
        return l1 + self.config.l2_weight * l2 + self.config.kl_weight * kl, l1, l2, kl

    def _weights(self, video: torch.Tensor) -> torch.Tensor:
        if self.color_table is None:
            return torch.ones_like(video[:, :1])
        return pixel_weights(video, self.color_table)

    def _moments(self, video: torch.Tensor) -> torch.Tensor:
        """Posterior mean and log-variance, chunk by chunk as WanVAE.encode_mu does."""
        cache: dict = {}
        window = self.preset.vae.temporal_window
        chunks = [video[:, :, :1]] + [video[:, :, i:i + window]
                                      for i in range(1, video.shape[2], window)]
        return torch.cat([self.vae.conv1(self.vae.encoder(c, cache)) for c in chunks], dim=2)

    def train_step(self) -> dict:
        self.vae.train()
        video = self.batch(self.step, self.split.train).to(self.device)
        if self.step < self.config.single_frame_steps:
            video = video[:, :, 1:2]          # the first group's image, alone
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [self.config.optim.seed, self.step, 1]).generate_state(1)[0]))
        loss, l1, l2, kl = self.loss(video, generator)
        if not torch.isfinite(loss):
            raise RuntimeError(f'train-vae: non-finite loss at step {self.step}; lower optim.lr')
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.vae.parameters(),
                                                   self.config.optim.grad_clip)
        lr = set_lr(self.optimizer, self.step, self.config.optim)
        self.optimizer.step()
        self.step += 1
        return {'loss': loss.item(), 'l1': l1.item(), 'l2': l2.item(), 'kl': kl.item(),
                'grad_norm': float(grad_norm), 'lr': lr}

    @torch.no_grad()
    def validate(self) -> dict:
        """PSNR of mean-latent reconstructions of held-out clips (fixed draws)."""
        self.vae.eval()
        episodes = self.split.val or self.split.train
        video = self.batch(10 ** 9, episodes, self.config.val_images // (
            self.config.groups + 1) or 1).to(self.device)
        recon = self.vae.decode_mu(self.vae.encode_mu(video)).clamp(-1, 1)
        squared = ((recon - video) ** 2).mean(1, keepdim=True)
        mse = float(squared.mean())
        self._save_grid(video, recon)
        metrics = {'psnr_db': _psnr(mse), 'mse': mse}
        if self.color_table is not None:     # the pixels the weighting is for (the cube)
            rare = self._weights(video) >= self.config.color_weight_max / 2
            metrics['psnr_rare_db'] = _psnr(float(squared[rare].mean())) if rare.any() else 0.0
        return metrics

    def _save_grid(self, video: torch.Tensor, recon: torch.Tensor) -> None:
        from PIL import Image

        from cosmos_policy_ros.model.preprocess import from_model_tensor
        picks = list(range(1, video.shape[2], GROUP))
        rows = []
        for b in range(min(6, len(video))):       # per clip: originals above reconstructions
            for clip in (video, recon):
                rows.append(np.concatenate(list(from_model_tensor(
                    clip[b, :, picks].transpose(0, 1))), axis=1))
        grid = np.concatenate(rows, axis=0)
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2),
                                     Image.NEAREST).save(self.run / 'reconstructions.png')

    @torch.no_grad()
    def latent_statistics(self, count: int = 256) -> tuple[list, list]:
        """Per-channel mean/std of posterior means over training clips (non-blank groups)."""
        self.vae.eval()
        samples = []
        for i in range(0, count, self.config.optim.batch_size):
            video = self.batch(10 ** 9 + 1 + i, self.split.train).to(self.device)
            samples.append(self.vae.encode_mu(video)[:, :, 1:].transpose(1, 2).flatten(0, 1))
        mu = torch.cat(samples).transpose(0, 1).flatten(1)      # z, N
        return mu.mean(1).tolist(), mu.std(1).clamp_min(1e-3).tolist()

    def save(self, final: bool = False) -> Path:
        mean, std = self.latent_statistics()
        vae_cfg = dataclasses.replace(self.preset.vae, latent_mean=tuple(mean),
                                      latent_std=tuple(std))
        preset = dataclasses.replace(self.preset, vae=vae_cfg)
        extra = {'kind': 'vae', 'step': self.step, 'train_config': config_to_dict(self.config),
                 'color_weights': None if self.color_table is None else
                 self.color_table.tolist(),
                 'train_episodes': [str(e.path) for e in self.split.train],
                 'val_episodes': [str(e.path) for e in self.split.val]}
        state = {'step': self.step, 'optimizer': self.optimizer.state_dict(),
                 'best_metric': self.best, 'seed': self.config.optim.seed}
        directory = checkpoints.save(self.run, self.step, {'vae': self.vae}, preset, extra, {},
                                     state, self.config.checkpoint.keep)
        if final:
            checkpoints.save_model(self.run / 'final', {'vae': self.vae}, preset, extra, {})
        return directory

    def _resume(self) -> None:
        from cosmos_policy_ros.model.checkpoint import load_checkpoint
        found = checkpoints.complete_checkpoints(self.run)
        if not found:
            return
        loaded = load_checkpoint(found[-1])
        self.vae.load_state_dict(loaded.states['vae'])
        state = checkpoints.load_state(found[-1])
        self.optimizer.load_state_dict(state['optimizer'])
        self.step = int(state['step'])
        print(f'resume: from {found[-1]} at step {self.step}')

    def run_loop(self) -> Path:
        from tqdm import tqdm
        config = self.config
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / 'config.yaml').write_text(yaml.safe_dump(config_to_dict(config)))
        log = CsvLog(self.run / 'train.csv', self.step or None)
        val_log = CsvLog(self.run / 'val.csv', self.step or None)
        previous = {s: signal.signal(s, lambda *_: setattr(self, '_stop', True))
                    for s in (signal.SIGINT, signal.SIGTERM)}
        bar = tqdm(total=config.optim.steps, initial=self.step, desc=f'train-vae {config.name}',
                   unit='step', disable=not self.progress, dynamic_ncols=True)
        try:
            while self.step < config.optim.steps and not self._stop:
                tick = time.perf_counter()
                stats = self.train_step()
                stats['step_s'] = time.perf_counter() - tick
                bar.update(1)
                bar.set_postfix(loss=f'{stats["loss"]:.4f}')
                if self.step % 10 == 0 or self.step == 1:
                    log.add({'step': self.step, **stats})
                if self.step % config.val_every == 0 or self.step == config.optim.steps:
                    metrics = self.validate()
                    val_log.add({'step': self.step, **metrics})
                    self._plot(log.rows, val_log.rows)
                    bar.write(f'val @ {self.step}: PSNR {metrics["psnr_db"]:.2f} dB')
                if self.step % config.checkpoint.every == 0 and self.step < config.optim.steps:
                    self.save()
            self.save(final=not self._stop)
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.run / 'final'

    def _plot(self, rows, val_rows) -> None:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        steps = [int(r['step']) for r in rows]
        for key in ('l1', 'l2'):
            values = [float(r[key]) for r in rows]
            axes[0].plot(steps, smooth(values), label=key)
        axes[0].set(yscale='log', title='reconstruction loss', xlabel='step')
        axes[0].legend()
        val_steps = [int(r['step']) for r in val_rows]
        axes[1].plot(val_steps, [float(r['psnr_db']) for r in val_rows], marker='o',
                     label='all pixels')
        if val_rows and val_rows[-1].get('psnr_rare_db') not in (None, ''):
            axes[1].plot(val_steps, [float(r.get('psnr_rare_db') or 'nan') for r in val_rows],
                         marker='s', label='rare colours')
            axes[1].legend()
        axes[1].set(title='held-out PSNR [dB]', xlabel='step')
        fig.tight_layout()
        fig.savefig(self.run / 'learning_curves.png', dpi=100)
        plt.close(fig)


def _psnr(mse: float) -> float:
    """Model range [-1, 1]: peak-to-peak 2, so PSNR = 10 log10(4 / mse)."""
    return 10 * math.log10(4.0 / max(mse, 1e-12))
