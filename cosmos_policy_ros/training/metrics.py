"""Training logs: CSV files (always), TensorBoard (when installed) and the learning-curve PNG."""
import csv
import math
from pathlib import Path


class CsvLog:
    """Rows of named values; reopening after a resume drops rows past the resumed step."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict] = []
        if path.is_file() and resume_step is not None:
            with path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(r['step']) <= resume_step]
            self.fields = list(self.rows[0]) if self.rows else None
        self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open('w', newline='') as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields)
                writer.writeheader()
                writer.writerows(self.rows)

    def add(self, row: dict) -> None:
        row = {k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()}
        if self.fields is None:
            self.fields = list(row)
            self._rewrite()
        self.rows.append(row)
        with self.path.open('a', newline='') as f:
            csv.DictWriter(f, self.fields, extrasaction='ignore').writerow(row)


class TensorBoard:
    """SummaryWriter when tensorboard is installed; a no-op otherwise."""

    def __init__(self, directory: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(directory))
        except ImportError:
            self.writer = None

    def add(self, prefix: str, step: int, values: dict) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f'{prefix}/{key}', value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _column(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for row in rows:
        if row.get(key) not in (None, ''):
            steps.append(int(row['step']))
            values.append(float(row[key]))
    return steps, values


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    out, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        out.append(last)
    return out


def plot_learning_curves(train_rows: list[dict], val_rows: list[dict], path: Path,
                         title: str = '') -> Path:
    """Training loss (raw + smoothed, log scale) and validation errors against steps."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps, loss = _column(train_rows, 'loss')
    if steps:
        axes[0].plot(steps, loss, alpha=0.25, color='tab:blue', label='loss')
        axes[0].plot(steps, smooth(loss), color='tab:blue', label='smoothed')
        axes[0].set_yscale('log')
    axes[0].set(title='training loss (velocity MSE x 10)', xlabel='step')
    axes[0].legend()
    for key, label in (('action_l1_left_arm', 'left arm joints'),
                       ('action_l1_right_arm', 'right arm joints'),
                       ('future_proprio_l1_arm', 'future proprio (arm joints)')):
        s, v = _column(val_rows, key)
        if s:
            axes[1].plot(s, v, marker='o', label=label)
    axes[1].set(title='validation action / proprio L1 [rad]', xlabel='step')
    axes[1].legend()
    for key, label in (('action_l1_gripper', 'gripper action L1 [0..1]'),
                       ('value_abs_err', 'value |error| [0..1]'),
                       ('value_given_future_abs_err', 'value given the true future |error|'),
                       ('future_latent_mse', 'future image latent MSE')):
        s, v = _column(val_rows, key)
        if s:
            axes[2].plot(s, v, marker='o', label=label)
    axes[2].set(title='validation: gripper, value, world model', xlabel='step')
    axes[2].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
