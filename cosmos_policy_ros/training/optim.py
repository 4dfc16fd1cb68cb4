"""Optimiser, the released LR schedule and an optional EMA of the weights."""
import torch

from cosmos_policy_ros.training.config import OptimConfig


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """The released LambdaLinearScheduler with cycles [decay_steps, inf): linear warm-up from
    `warmup_start` to 1 over `warmup_steps`, linear decay to `decay_to` at `decay_steps`,
    then `tail` for ever (a 5x drop at the cycle boundary, as released)."""
    if step > cfg.decay_steps:
        return cfg.tail
    if step < cfg.warmup_steps:
        return cfg.warmup_start + (1.0 - cfg.warmup_start) * step / cfg.warmup_steps
    span = cfg.decay_steps - cfg.warmup_steps
    if span == 0:
        return cfg.decay_to
    return cfg.decay_to + (1.0 - cfg.decay_to) * (cfg.decay_steps - step) / span


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=cfg.lr * lr_factor(0, cfg), betas=tuple(cfg.betas),
                             eps=cfg.eps, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: OptimConfig) -> float:
    lr = cfg.lr * lr_factor(step, cfg)
    for group in optimizer.param_groups:
        group['lr'] = lr
    return lr


class EMA:
    """Exponential moving average of a module's floating-point state (fp32 shadow)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in module.state_dict().items()
                       if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for key, value in module.state_dict().items():
            if key in self.shadow:
                self.shadow[key].lerp_(value.detach().float(), 1.0 - self.decay)

    def state_for(self, module: torch.nn.Module) -> dict:
        """The module's state dict with the EMA values in the module's dtypes."""
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v.detach().clone())
                for k, v in module.state_dict().items()}
