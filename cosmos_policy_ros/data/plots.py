"""Figures people look at after recording (matplotlib, Agg backend)."""
from pathlib import Path

import numpy as np


def plot_episode(hdf5_path: str | Path, summaries, png_path: str | Path) -> Path:
    """Joint trajectories (qpos vs action) of one exported episode, and a histogram of how old
    each source's held message was at the grid steps over all `summaries`' episodes."""
    import h5py
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from cosmos_policy_ros.names import VECTOR_NAMES

    with h5py.File(hdf5_path) as f:
        qpos, action = f['observations/qpos'][:], f['action'][:]
        grid = f['timestamps/grid'][:]
    t = (grid - grid[0]) / 1e9
    fig, axes = plt.subplots(4, 4, figsize=(16, 12))
    for i, name in enumerate(VECTOR_NAMES):
        ax = axes.flat[i]
        ax.plot(t, qpos[:, i], label='qpos')
        ax.plot(t, action[:, i], '--', label='action')
        ax.set_title(name, fontsize=9)
    axes.flat[0].legend(fontsize=8)
    axes.flat[14].set_axis_off()
    lag_ax = axes.flat[15]
    lags: dict = {}
    for summary in summaries:
        with h5py.File(summary.hdf5) as f:
            grid_ns = f['timestamps/grid'][:]
            for source in f['timestamps']:
                if source != 'grid':
                    lag_ms = (grid_ns - f['timestamps'][source][:]) / 1e6
                    lags.setdefault(source, []).append(lag_ms)
    for source, values in sorted(lags.items()):
        lag_ax.hist(np.concatenate(values), bins=30, histtype='step', label=source)
    lag_ax.set_xlabel('age of held message at grid step [ms]')
    lag_ax.set_title('per-source timing lag', fontsize=9)
    lag_ax.legend(fontsize=6)
    fig.suptitle(f'{Path(hdf5_path).name}: joints vs time [s]')
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return png_path
