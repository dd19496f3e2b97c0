"""Where figures go: metrics.jsonl, TensorBoard event files, PNG grids."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image


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
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)


class MetricsWriter:
    """Appends one JSON object per record to metrics.jsonl and mirrors scalars/images to TensorBoard."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.workdir = workdir
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.samples_dir = os.path.join(workdir, "samples")
        self._tb = None
        if enabled:
            os.makedirs(self.samples_dir, exist_ok=True)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
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


def _plain(v):
    v = np.asarray(v).item() if np.ndim(v) == 0 and not isinstance(v, str) else v
    return float(v) if isinstance(v, (np.floating, float)) else v
