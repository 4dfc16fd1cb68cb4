"""Held-out validation: sample the policy on validation windows and compare in robot units.

For each held-out (episode, t) the model generates action chunk, future proprio, future
images and value from the test-time view of the current frames (a policy query, as deployed)
with fixed seeds. Reported: action L1 per arm's joints [rad] and of the grippers
(normalised 0..1), future-proprio L1 of the arm joints [rad], future image latent MSE
(normalised latent units) and the value's absolute error (on the [0, 1] readback scale).
The value head is also sampled as the planner uses it, given the true future (the run's value
mode: V(s,a,s') for a policy, V(s') for a planning model): its absolute error over all rows,
over rows of failed rollouts (target 0) and over the rest.
"""
import numpy as np
import torch

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.layout import Role, SampleKind, ValueMode
from cosmos_policy_ros.model.sampler import SamplerConfig, generate
from cosmos_policy_ros.names import CHUNK_LENGTH, STATE_DIM

LEFT_ARM, RIGHT_ARM, GRIPPERS = list(range(6)), list(range(7, 13)), [6, 13]
ARMS = LEFT_ARM + RIGHT_ARM


def sample_rows(net, x0_B_C_T_H_W, text_B_N_D, mask: np.ndarray, num_steps: int, seed: int,
                batch_size: int) -> torch.Tensor:
    """Generate every row of x0 under `mask` in batches; row i gets noise seed `seed + i`."""
    device = next(net.parameters()).device
    mask = torch.from_numpy(mask)
    outputs = []
    for start in range(0, len(x0_B_C_T_H_W), batch_size):
        gt = x0_B_C_T_H_W[start:start + batch_size].to(device)
        count = len(gt)
        outputs.append(generate(net, gt, mask[None].expand(count, -1), text_B_N_D[
            start:start + count].to(device), [seed + start + i for i in range(count)],
            num_steps, SamplerConfig()).float().cpu())
    return torch.cat(outputs)


def validate(net, data, rows, x0_B_C_T_H_W: torch.Tensor, text_B_N_D: torch.Tensor,
             num_steps: int, seed: int, batch_size: int = 32,
             value_mode: ValueMode | str = ValueMode.V_SAS) -> dict:
    """Metrics over `rows` ((episode, t) pairs) whose clean latents are x0 (test view)."""
    layout = data.layout
    out = sample_rows(net, x0_B_C_T_H_W, text_B_N_D, layout.condition_mask(SampleKind.POLICY),
                      num_steps, seed, batch_size)
    given_future = L.read_value(sample_rows(
        net, x0_B_C_T_H_W, text_B_N_D, layout.condition_mask(SampleKind.VALUE,
                                                             ValueMode(value_mode)),
        num_steps, seed, batch_size), layout.index(Role.VALUE)).numpy()
    stats = data.statistics
    actions = chunks(out, data)
    future = stats.proprio.unnormalize(L.read_back(
        out, layout.index(Role.FUTURE_PROPRIO), STATE_DIM).numpy())
    value = L.read_value(out, layout.index(Role.VALUE)).numpy()
    truth = [data.normalized(episode, t) for episode, t in rows]
    true_actions = stats.actions.unnormalize(np.stack([w['actions'] for w in truth]))
    true_future = stats.proprio.unnormalize(np.stack([w['future_proprio'] for w in truth]))
    true_value = (np.array([w['value'] for w in truth]) + 1) / 2
    action_err = np.abs(actions - true_actions)
    future_frames = [i for i, role in enumerate(layout.roles)
                     if role.value.startswith('future_') and role in layout.cameras]
    latent_mse = float(((out[:, :, future_frames] - x0_B_C_T_H_W[:, :, future_frames]) ** 2)
                       .mean())
    future_err = np.abs(given_future - true_value)
    failed = np.array([episode.kind != 'demo' and not episode.success for episode, _ in rows])
    return {'action_l1_left_arm': float(action_err[..., LEFT_ARM].mean()),
            'action_l1_right_arm': float(action_err[..., RIGHT_ARM].mean()),
            'action_l1_arms': float(action_err[..., ARMS].mean()),
            'action_l1_gripper': float(action_err[..., GRIPPERS].mean()),
            'action_l1_first10_arms': float(action_err[:, :10][..., ARMS].mean()),
            'future_proprio_l1_arm': float(np.abs(future - true_future)[:, ARMS].mean()),
            'future_latent_mse': latent_mse,
            'value_abs_err': float(np.abs(value - true_value).mean()),
            'value_given_future_abs_err': float(future_err.mean()),
            'value_given_future_abs_err_failures': _mean(future_err[failed]),
            'value_given_future_abs_err_others': _mean(future_err[~failed]),
            'samples': len(rows)}


def chunks(latents_B_C_T_H_W: torch.Tensor, data) -> np.ndarray:
    """The action chunks sampled into `latents`, in robot units: (B, CHUNK_LENGTH, 14)."""
    flat = L.read_back(latents_B_C_T_H_W, data.layout.index(Role.ACTION),
                       CHUNK_LENGTH * STATE_DIM).numpy()
    return data.statistics.actions.unnormalize(flat.reshape(-1, CHUNK_LENGTH, STATE_DIM))


def _mean(values: np.ndarray) -> float:
    """Mean, NaN for no rows (a CSV cell that plots as a gap, not as a fake 0)."""
    return float(values.mean()) if values.size else float('nan')
