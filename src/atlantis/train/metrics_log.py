"""The per-epoch record: ``metrics.csv``, and TensorBoard scalars when it is installed.

The CSV is rewritten whole from the history that ``last.pt`` carries, so after a resume it
holds exactly the epochs of the checkpoint (a row written just before a kill, for an epoch
whose checkpoint never landed, disappears). TensorBoard (optional: ``pip install
tensorboard``) gets ``purge_step`` on resume for the same reason.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from atlantis.store.atomic import atomic_write_text


class MetricsLog:
    """``metrics.csv`` (rewritten whole from the history) and TensorBoard when installed."""

    COLUMNS = ("epoch", "loss", "lr", "grad_norm", "val_R@1", "val_R@2", "val_R@4", "val_R@8",
               "val_MAP@R", "best_val_R@1", "steps", "seconds", "images_per_s")  # fmt: skip

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path, self.enabled, self.tb = out_dir / "metrics.csv", enabled, None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            self.tb_class = SummaryWriter
            self.tb_dir = out_dir / "tensorboard"

    def rows(self, history: list[dict[str, Any]], since: int) -> None:
        if not self.enabled:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(history)
        atomic_write_text(self.path, buf.getvalue())
        if getattr(self, "tb_class", None) is not None:
            if self.tb is None:
                self.tb = self.tb_class(str(self.tb_dir), purge_step=since)
            for row in history:
                if row["epoch"] >= since:
                    for key, value in row.items():
                        if key != "epoch" and isinstance(value, (int, float)):
                            self.tb.add_scalar(key, value, row["epoch"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
