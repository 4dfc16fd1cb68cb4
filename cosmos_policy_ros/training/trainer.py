"""The fine-tuning loop: `cosmos-policy-ros train CONFIG.yaml [key=value ...]`.

Each step's samples, augmentation draws and diffusion noise come from a generator seeded by
(seed, step), so a run is reproducible and a resumed run continues exactly where it stopped
(same batches, same noise, restored optimiser state): N steps straight equal N/2 + resume +
N/2 bit for bit on the CPU. Under torchrun every rank trains on its rows of the same global
batch. Checkpoints every `checkpoint.every` steps, at the end and on SIGINT/SIGTERM;
validation on held-out episodes every `val.every` steps; the best checkpoint is kept in
<run>/best: by validation action error, or, for a run that draws no policy samples (a
planning model trained on rollouts alone), by the value error given the true future, which is
what the planner uses it for (its action error only drifts).
"""
import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.config import preset_to_dict
from cosmos_policy_ros.model.diffusion import TrainingNoise
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.layout import SampleKind
from cosmos_policy_ros.model.training import diffusion_training_loss, masks_for
from cosmos_policy_ros.names import CHUNK_LENGTH, STATE_DIM
from cosmos_policy_ros.training import checkpoints, distributed
from cosmos_policy_ros.training.build import init_dit, load_vae, resolve_preset, text_table
from cosmos_policy_ros.training.config import TrainConfig, config_to_dict
from cosmos_policy_ros.training.dataset import TrainingData, validation_rows
from cosmos_policy_ros.training.latent_cache import (
    CacheKey,
    LatentCache,
    SampleEncoder,
    state_hash,
)
from cosmos_policy_ros.training.metrics import CsvLog, TensorBoard, plot_learning_curves
from cosmos_policy_ros.training.optim import EMA, make_optimizer, set_lr
from cosmos_policy_ros.training.validation import validate


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, preset mismatch on resume, ...)."""


@dataclass
class TrainResult:
    step: int
    status: str                   # done | interrupted
    run_dir: Path
    last_checkpoint: Path | None
    best: Path | None
    val: dict


class CachedLatents:
    """Camera latents of every sample from the latent cache (held in memory, float16)."""

    def __init__(self, cache: LatentCache, episodes):
        self.store = {id(e): cache.load(e) for e in episodes}
        self.blank = cache.blank()
        self.draws = cache.key.draws

    def draw_ids(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.integers(0, self.draws, size=count)

    def get(self, rows, draws) -> torch.Tensor:
        return torch.stack([self.store[id(e)][t, int(d)] for (e, t), d in zip(rows, draws)])


class EncodedLatents:
    """Camera latents encoded on the fly with fresh augmentation draws (no cache)."""

    def __init__(self, encoder: SampleEncoder):
        self.encoder = encoder
        self.blank = encoder.blank_latent()

    @staticmethod
    def draw_ids(rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.integers(1, 2 ** 31 - 1, size=count)

    def get(self, rows, draws) -> torch.Tensor:
        out = [None] * len(rows)
        by_episode: dict = {}
        for i, ((episode, t), draw) in enumerate(zip(rows, draws)):
            by_episode.setdefault(id(episode), (episode, []))[1].append((i, t, int(draw)))
        for episode, items in by_episode.values():
            latents = self.encoder.encode(episode, [(t, d) for _, t, d in items])
            for (i, _, _), latent in zip(items, latents):
                out[i] = latent
        return torch.stack(out)


def step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, progress: bool = True):
        self.config, self.progress = config, progress
        self.world = distributed.init(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = distributed.device_for(config.device, self.world)
        self.run = config.output_dir
        self.bf16 = config.dtype == 'bfloat16' and self.device.type == 'cuda'
        seed = config.optim.seed
        preset = resolve_preset(config.preset)
        self.preset, vae = load_vae(config.vae, preset, config.allow_random_vae, seed)
        self.vae = vae.to(self.device)
        self.layout = L.ALOHA_LAYOUT
        size = self.preset.latent_size
        L.check_fits(CHUNK_LENGTH * STATE_DIM, (self.preset.vae.z_dim, size, size),
                     f'preset {self.preset.name!r}: the action chunk')
        self.data = TrainingData(config.data, self.layout)
        self.text = text_table(config.text, self.preset, self.data.instructions)
        self.val_rows = validation_rows(self.data.split.val, config.val.samples)
        self.latents = self._latent_source()
        self.net, self.init_info = init_dit(config.init, self.preset, seed,
                                            config.activation_checkpointing)
        self.net.to(self.device)
        if config.optim.ema_decay and config.fsdp:
            raise TrainingError('optim.ema_decay with fsdp is not supported; set one of them '
                                'off')
        self.ema = EMA(self.net, config.optim.ema_decay) if config.optim.ema_decay else None
        self.model = distributed.wrap(self.net, self.world, config.fsdp, self.device, self.bf16)
        self.optimizer = make_optimizer(self.model.parameters(), config.optim)
        self.noise = TrainingNoise()
        self.step, self.best_metric, self.last_val = 0, math.inf, {}
        if resume:
            self._resume()
        self._eval_net: DiT | None = None
        self._stop = False

    # ------------------------------------------------------------------ data
    def _latent_source(self):
        config = self.config
        encoder = SampleEncoder(self.vae, self.layout, self.preset.image_size, config.augment,
                                device=str(self.device), crops=self.preset.camera_crops)
        if not config.cache.enabled:
            return EncodedLatents(encoder)
        key = CacheKey(vae_hash=state_hash(self.vae), vae_config=repr(self.preset.vae),
                       image_size=self.preset.image_size,
                       augment=json.loads(json.dumps(vars(config.augment), default=list)),
                       draws=config.cache.draws, layout=self.layout.name,
                       cameras=tuple(config.data.cameras),
                       camera_crops=self.preset.camera_crops)
        cache = LatentCache(config.cache.dir, key, encoder, config.cache.batch_size)
        episodes = self.data.split.train + self.data.split.val
        if self.world.main:
            report = cache.build(episodes, progress=self.progress)
            if report['encoded']:
                print(f'latent cache: encoded {report["encoded"]} sample draws in '
                      f'{report["seconds"]:.0f} s -> {cache.dir}')
        distributed.barrier(self.world)
        return CachedLatents(cache, episodes)

    def batch(self, step: int):
        """This rank's rows of the global batch of `step`: (x0, text, kinds, rows, sigma, eps)."""
        cfg = self.config.optim
        rng = np.random.default_rng([cfg.seed, step])
        drawn = self.data.mix.draw(rng, cfg.batch_size)
        draws = self.latents.draw_ids(rng, cfg.batch_size)
        generator = torch.Generator().manual_seed(step_seed(cfg.seed, step))
        sigma = self.noise.sample(cfg.batch_size, self.layout.num_frames, generator)
        local = self.world.rows(cfg.batch_size)
        episodes = self.data.split.train
        rows = [(episodes[e], t) for e, t, _ in drawn[local]]
        kinds = [kind for _, _, kind in drawn[local]]
        x0 = self.data.assemble(rows, self.latents.get(rows, draws[local]), self.latents.blank)
        eps = torch.randn((cfg.batch_size,) + tuple(x0.shape[1:]), generator=generator)
        text = torch.cat([self.text[episode.instruction] for episode, _ in rows])
        return x0, text, kinds, rows, sigma[local], eps[local]

    # ------------------------------------------------------------------ training
    def train_step(self) -> dict:
        x0, text, kinds, rows, sigma, eps = self.batch(self.step)
        cond, loss_mask = masks_for(self.layout, kinds, self.config.data.value_mode,
                                    self.config.loss.action_weight)
        self.model.train()
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=self.bf16 and not
                            self.config.fsdp):
            per_sample, _ = diffusion_training_loss(
                self.model, x0.to(self.device), text.to(self.device), cond, loss_mask,
                self.noise, sigma_B=sigma, eps_B_C_T_H_W=eps, per_sample=True)
        loss = per_sample.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.config.optim.grad_clip)
        if isinstance(grad_norm, torch.Tensor) and hasattr(grad_norm, 'full_tensor'):
            grad_norm = grad_norm.full_tensor()
        if not (torch.isfinite(loss) and torch.isfinite(torch.as_tensor(grad_norm))):
            where = ', '.join(f'{e.path.name}@t={t}' for e, t in rows[:8])
            raise TrainingError(
                f'non-finite loss ({float(loss)}) or gradient norm ({float(grad_norm)}) at step '
                f'{self.step}; batch episodes: {where}{" ..." if len(rows) > 8 else ""}. The '
                'parameters were not updated; the last good checkpoint is kept. Lower '
                'optim.lr, check those episodes, or resume from the last checkpoint.')
        lr = set_lr(self.optimizer, self.step, self.config.optim)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.net)
        self.step += 1
        losses = per_sample.detach().float().cpu()
        by_kind = {f'{kind.value}_loss': float(losses[[k is kind for k in kinds]].mean())
                   for kind in SampleKind if any(k is kind for k in kinds)}
        return {'loss': distributed.mean(loss.item(), self.world, self.device),
                'grad_norm': float(grad_norm), 'lr': lr, **by_kind}

    # ------------------------------------------------------------------ state
    def deploy_state(self) -> dict:
        """The weights to deploy (EMA when enabled), full and on the CPU."""
        if self.ema is not None:
            return {k: v.cpu() for k, v in self.ema.state_for(self.net).items()}
        return self.train_state_dict()

    def train_state_dict(self) -> dict:
        if self.config.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )
            return get_model_state_dict(self.model, options=StateDictOptions(
                full_state_dict=True, cpu_offload=True))
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    def optimizer_state(self) -> dict:
        if self.config.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
            )
            return get_optimizer_state_dict(self.model, self.optimizer, options=StateDictOptions(
                full_state_dict=True, cpu_offload=True))
        return self.optimizer.state_dict()

    def extra(self) -> dict:
        return {'kind': 'cosmos-policy', 'step': self.step, 'init': self.init_info,
                'text': self.config.text or self.preset.text_encoder,
                'instructions': self.data.instructions, 'layout': self.layout.name,
                'deploy_weights': 'ema' if self.ema is not None else 'regular',
                'train_config': config_to_dict(self.config), 'data': self.data.describe(),
                'val': self.last_val}

    def save_checkpoint(self) -> Path | None:
        deploy = self.deploy_state()
        raw = self.train_state_dict() if self.ema is not None else None
        optimizer = self.optimizer_state()
        if not self.world.main:
            return None
        modules = {'dit': deploy, 'vae': self.vae}
        if raw is not None:
            modules['dit_train'] = raw
        state = {'step': self.step, 'optimizer': optimizer, 'best_metric': self.best_metric,
                 'torch_rng': torch.get_rng_state(), 'seed': self.config.optim.seed}
        return checkpoints.save(self.run, self.step, modules, self.preset, self.extra(),
                                self.data.statistics.to_json_dict(), state,
                                self.config.checkpoint.keep)

    def _resume(self) -> None:
        found = checkpoints.complete_checkpoints(self.run)
        if not found:
            print(f'resume: no checkpoint in {self.run}/checkpoints; starting at step 0')
            return
        directory = found[-1]
        from cosmos_policy_ros.model.checkpoint import load_checkpoint
        loaded = load_checkpoint(directory)
        if preset_to_dict(loaded.preset) != preset_to_dict(self.preset):
            raise TrainingError(f'resume: {directory} was written with another preset than the '
                                f'config ({loaded.preset.name!r} vs {self.preset.name!r}); use '
                                'the same config or a new output directory')
        weights = loaded.states.get('dit_train', loaded.states['dit'])
        state = checkpoints.load_state(directory)
        if self.config.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_state_dict,
            )
            set_state_dict(self.model, self.optimizer, model_state_dict=weights,
                           optim_state_dict=state['optimizer'],
                           options=StateDictOptions(full_state_dict=True))
        else:
            self.net.load_state_dict(weights)
            self.optimizer.load_state_dict(state['optimizer'])
        if self.ema is not None:
            for key, value in loaded.states['dit'].items():
                if key in self.ema.shadow:
                    self.ema.shadow[key].copy_(value.float())
        self.step, self.best_metric = int(state['step']), float(state['best_metric'])
        torch.set_rng_state(state['torch_rng'])
        print(f'resume: from {directory} at step {self.step}')

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict:
        deploy = self.deploy_state()
        if not self.world.main or not self.val_rows:
            return {}
        if self._eval_net is None:
            with torch.device('meta'):
                net = DiT(self.preset.dit)
            self._eval_net = net.to_empty(device=self.device)
        self._eval_net.load_state_dict(deploy)
        self._eval_net.eval()
        rows = self.val_rows
        x0 = self.data.assemble(rows, self.latents.get(rows, [0] * len(rows)),
                                self.latents.blank)
        text = torch.cat([self.text[e.instruction] for e, _ in rows])
        metrics = validate(self._eval_net, self.data, rows, x0, text, self.config.val.num_steps,
                           self.config.val.seed, value_mode=self.config.data.value_mode)
        self.last_val = metrics
        return metrics

    # ------------------------------------------------------------------ loop
    def _on_signal(self, signum, frame) -> None:
        self._stop = True
        print(f'\nsignal {signum}: finishing this step, then writing a checkpoint')

    def run_loop(self) -> TrainResult:
        from tqdm import tqdm
        config, main = self.config, self.world.main
        if main:
            self._write_run_files()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT,
                                                                   signal.SIGTERM)}
        resume_step = self.step if self.step else None
        train_log = CsvLog(self.run / 'train.csv', resume_step) if main else None
        val_log = CsvLog(self.run / 'val.csv', resume_step) if main else None
        board = TensorBoard(self.run / 'tb') if main else None
        last_checkpoint, status, started = None, 'done', time.perf_counter()
        bar = tqdm(total=config.optim.steps, initial=self.step, desc=f'train {config.name}',
                   unit='step', disable=not (main and self.progress), dynamic_ncols=True)
        try:
            while self.step < config.optim.steps:
                tick = time.perf_counter()
                stats = self.train_step()
                stats['step_s'] = time.perf_counter() - tick
                stats['samples_per_s'] = config.optim.batch_size / stats['step_s']
                bar.update(1)
                bar.set_postfix(loss=f'{stats["loss"]:.4f}', lr=f'{stats["lr"]:.2e}')
                if main and (self.step % config.log_every == 0 or self.step == 1):
                    stats['elapsed_s'] = time.perf_counter() - started
                    train_log.add({'step': self.step, **stats})
                    board.add('train', self.step, stats)
                validate_now = config.val.every and self.step % config.val.every == 0
                if validate_now or self.step == config.optim.steps:
                    self._validation(val_log, board, train_log)
                if self._stop:
                    status = 'interrupted'
                    break
                if self.step % config.checkpoint.every == 0 and \
                        self.step != config.optim.steps:
                    last_checkpoint = self.save_checkpoint()
            last_checkpoint = self.save_checkpoint()
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if board is not None:
                board.close()
        best = self.run / 'best'
        return TrainResult(self.step, status, self.run, last_checkpoint,
                           best if best.is_dir() else None, self.last_val)

    def _validation(self, val_log, board, train_log) -> None:
        metrics = self.validate()
        if not metrics:
            return
        val_log.add({'step': self.step, **metrics})
        board.add('val', self.step, metrics)
        selected = selection_metric(self.data.mix.proportions())
        if metrics[selected] < self.best_metric:
            self.best_metric = metrics[selected]
            checkpoints.save_model(self.run / 'best', {'dit': self.deploy_state(),
                                                       'vae': self.vae},
                                   self.preset, self.extra(),
                                   self.data.statistics.to_json_dict())
        plot_learning_curves(train_log.rows, val_log.rows, self.run / 'learning_curves.png',
                             title=f'{self.config.name} ({self.preset.name} preset)')
        print(f'\nval @ {self.step}: action L1 arms {metrics["action_l1_arms"]:.4f} rad '
              f'(first 10 steps {metrics["action_l1_first10_arms"]:.4f}), gripper '
              f'{metrics["action_l1_gripper"]:.3f}, future proprio '
              f'{metrics["future_proprio_l1_arm"]:.4f} rad, latent MSE '
              f'{metrics["future_latent_mse"]:.4f}, value |err| {metrics["value_abs_err"]:.3f}')

    def _write_run_files(self) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / 'config.yaml').write_text(yaml.safe_dump(config_to_dict(self.config),
                                                             sort_keys=False))
        self.data.write_statistics(self.run / checkpoints.STATISTICS_FILE)
        (self.run / 'data.json').write_text(json.dumps(self.data.describe(), indent=2) + '\n')


def selection_metric(sample_mix: dict) -> str:
    """The validation metric that picks <run>/best for a run with this sample mix."""
    return 'action_l1_arms' if sample_mix.get('policy', 0.0) > 0 else 'value_given_future_abs_err'


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        return trainer.run_loop()
    finally:
        distributed.shutdown(trainer.world)
