"""Deterministic RES 2nd-order Adams-Bashforth ("2ab") sampler on a Karras schedule.

Reference: shared/reference/cosmos_policy.md §4 and fixtures/sampler.json. N steps means N
network evaluations: N-1 solver steps on the Karras rho=7 schedule from sigma_max to
sigma_min, then a final clean x0 prediction at sigma_min; N=1 is one x0 prediction from pure
noise at sigma_max.

The reference code has a quirk at N=2: it makes a single call at sigma_max, identical to N=1
(cosmos_sampler.py subtracts the clean step first, and one solver step means the N=1 path).
The default follows it, so the planner's value ensemble (1, 2, 3, 4, 5 steps: 14 calls)
matches the reference; `SamplerConfig(reference_two_step_quirk=False)` makes N=2 do what the
count says instead (an Euler step 80 -> 4, then x0 at 4: two calls).

The solver state is float64 (as in the reference); the denoiser always sees float32.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# x0_fn(x_sigma float32, sigma_B float32) -> x0 prediction
X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerConfig:
    sigma_min: float = 4.0
    sigma_max: float = 80.0
    rho: float = 7.0
    reference_two_step_quirk: bool = True

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f'SamplerConfig: need 0 < sigma_min < sigma_max, got sigma_min='
                             f'{self.sigma_min}, sigma_max={self.sigma_max}')
        if self.rho <= 0:
            raise ValueError(f'SamplerConfig.rho must be > 0, got {self.rho}')


def karras_sigmas(num_intervals: int, config: SamplerConfig = SamplerConfig()) -> np.ndarray:
    """num_intervals + 1 sigmas from sigma_max down to sigma_min (float64)."""
    inv_rho = 1.0 / config.rho
    ramp = np.arange(num_intervals + 1, dtype=np.float64) / num_intervals
    start, end = config.sigma_max ** inv_rho, config.sigma_min ** inv_rho
    return (start + ramp * (end - start)) ** config.rho


def _num_solver_steps(num_steps: int, config: SamplerConfig) -> int:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f'num_steps must be an integer >= 1, got {num_steps!r}')
    if num_steps == 1 or (num_steps == 2 and config.reference_two_step_quirk):
        return 0
    return num_steps - 1


def call_sigmas(num_steps: int, config: SamplerConfig = SamplerConfig()) -> list[float]:
    """The sigma of every network evaluation, in order."""
    solver_steps = _num_solver_steps(num_steps, config)
    if solver_steps == 0:
        return [config.sigma_max]
    return [float(s) for s in karras_sigmas(solver_steps, config)]


def initial_noise(shape: Sequence[int], seeds: Sequence[int], sigma_max: float = 80.0,
                  ) -> torch.Tensor:
    """B,*shape float32: numpy RandomState(seed).standard_normal(shape) * sigma_max per sample.

    One seed per batch element, so a candidate's noise does not depend on the batch it is in.
    """
    samples = [np.random.RandomState(int(seed)).standard_normal(tuple(shape)).astype(np.float32)
               for seed in seeds]
    return torch.from_numpy(np.stack(samples)) * sigma_max


def _phi1(z: torch.Tensor) -> torch.Tensor:
    return torch.expm1(z) / z


def _phi2(z: torch.Tensor) -> torch.Tensor:
    return (_phi1(z) - 1) / z


def sample(x0_fn: X0Fn, x_init: torch.Tensor, num_steps: int,
           config: SamplerConfig = SamplerConfig()) -> torch.Tensor:
    """Run the sampler from x_init (noise at sigma_max); returns the final x0 in float32."""
    batch = x_init.shape[0]

    def evaluate(x: torch.Tensor, sigma: float) -> torch.Tensor:
        sigma_B = torch.full((batch,), sigma, dtype=torch.float32, device=x.device)
        return x0_fn(x.to(torch.float32), sigma_B).to(torch.float64)

    solver_steps = _num_solver_steps(num_steps, config)
    if solver_steps == 0:
        return evaluate(x_init, config.sigma_max).to(torch.float32)
    sigmas = torch.from_numpy(karras_sigmas(solver_steps, config))
    x = x_init.to(torch.float64)
    x0_prev = None
    for i in range(solver_steps):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        x0 = evaluate(x, float(s_cur))
        if x0_prev is None:
            # First step: Euler in x0 form.
            x = (s_cur - s_next) / s_cur * x0 + s_next / s_cur * x
        else:
            # Exponential (RES) 2nd-order multistep in lambda = -log(sigma).
            lam_cur, lam_next, lam_prev = -torch.log(s_cur), -torch.log(s_next), -torch.log(
                sigmas[i - 1])
            dt = lam_next - lam_cur
            c2 = (lam_prev - lam_cur) / dt
            phi1, phi2 = _phi1(-dt), _phi2(-dt)
            b1, b2 = phi1 - phi2 / c2, phi2 / c2
            x = torch.exp(-dt) * x + dt * (b1 * x0 + b2 * x0_prev)
        x0_prev = x0
    return evaluate(x, float(sigmas[-1])).to(torch.float32)


def generate(net, gt_B_C_T_H_W: torch.Tensor, mask_B_T: torch.Tensor, text_B_N_D: torch.Tensor,
             seeds: Sequence[int], num_steps: int,
             config: SamplerConfig = SamplerConfig(), denoise_fn=None) -> torch.Tensor:
    """Sample the frames where mask_B_T is False, conditioned on the clean frames of gt
    (policy, world model and value queries alike); one noise seed per row. denoise_fn(x,
    sigma_B, condition) replaces diffusion.denoise(net, ...) (an accelerated runtime)."""
    from cosmos_policy_ros.model.diffusion import Conditioning, denoise
    if denoise_fn is None:
        def denoise_fn(x, sigma, condition):
            return denoise(net, x, sigma, condition)
    device = gt_B_C_T_H_W.device
    condition = Conditioning(gt_B_C_T_H_W, mask_B_T.to(device), text_B_N_D)
    noise = initial_noise(gt_B_C_T_H_W.shape[1:], seeds, config.sigma_max).to(device)
    with torch.no_grad():
        return sample(lambda x, sigma: denoise_fn(x, sigma, condition), noise, num_steps,
                      config)
