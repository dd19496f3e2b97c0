"""Where figures go: metrics.jsonl, TensorBoard event files, PNG grids."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image

from train.core import files


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile uint8 images [N,H,W,C] into one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = img
    return grid


def save_png(path: str, image: np.ndarray, min_size: int = 256) -> None:
    """Write a uint8 [H,W,C] image, enlarged by an integer nearest-neighbour factor to at least min_size px."""
    image = np.asarray(image)
    scale = max(1, int(math.ceil(min_size / max(image.shape[:2]))))
    image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    with files.atomic_write(path) as f:
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format="PNG")


class MetricsWriter:
    """Appends one JSON object per record to metrics.jsonl and mirrors scalars/images to TensorBoard.

    keep_until: the records of a previous run kept, those of steps <= keep_until (the checkpoint a run resumes
    from; 0 for a run from scratch or a fit, which log every record again), so the log never holds a step twice.
    The file is strict JSON: a NaN or infinite value is written as the string "nan", "inf" or "-inf" (float()
    reads each back).
    """

    def __init__(self, workdir: str, enabled: bool = True, keep_until: int | None = None):
        self.enabled = enabled
        self.workdir = workdir
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.samples_dir = os.path.join(workdir, "samples")
        self._tb = None
        if enabled and keep_until is not None:
            truncate_records(self.path, keep_until)
        if enabled:
            os.makedirs(self.samples_dir, exist_ok=True)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _strict(v) for k, v in record.items()}, allow_nan=False) + "\n")
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                self._tb.add_scalar(k, v, step)

    def image(self, step: int, name: str, image: np.ndarray) -> str | None:
        """Save a uint8 [H,W,C] image as samples/<name>_<step>.png and to TensorBoard; return the path."""
        if not self.enabled:
            return None
        path = os.path.join(self.samples_dir, f"{name}_{step:06d}.png")
        save_png(path, image)
        self._tb.add_image(name, np.asarray(image), step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def truncate_records(path: str, step: int) -> None:
    """Drop the records of metrics.jsonl after `step` (and a torn last line of a killed run), atomically."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    if len(keep) != len(lines):
        with files.atomic_write(path, "w", encoding="utf-8") as f:
            f.writelines(keep)


def _strict(v):
    """A non-finite float as the string float() reads back; JSON has no NaN or Infinity."""
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


def _plain(v):
    v = np.asarray(v).item() if np.ndim(v) == 0 and not isinstance(v, str) else v
    return float(v) if isinstance(v, (np.floating, float)) else v
