"""Figures of the image models, as uint8 RGB arrays: sample grids, reconstruction grids, latent interpolation
strips and 2-D latent scatter plots coloured by label. MetricsWriter.image writes them as PNGs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from train.core.writers import image_grid

__all__ = [
    "image_grid",
    "samples_grid",
    "reconstruction_grid",
    "interpolate",
    "interpolation_strip",
    "project_2d",
    "latent_scatter",
]


def samples_grid(images_uint8: np.ndarray, ncol: int | None = None) -> np.ndarray:
    return image_grid(images_uint8, ncol)


def reconstruction_grid(originals: np.ndarray, recons: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Rows alternate: ncol test images, then their reconstructions beneath them."""
    originals, recons = np.asarray(originals), np.asarray(recons)
    n = (len(originals) // ncol) * ncol or len(originals)
    ncol = min(ncol, n)
    rows = []
    for i in range(0, n, ncol):
        rows += [originals[i : i + ncol], recons[i : i + ncol]]
    return image_grid(np.concatenate(rows), ncol)


def interpolate(z0, z1, num_steps: int) -> jax.Array:
    """Linear paths z0 -> z1 of num_steps points (ends included): [P, L], [P, L] -> [P * num_steps, L]."""
    t = jnp.linspace(0.0, 1.0, num_steps)[None, :, None]
    z = (1.0 - t) * z0[:, None, :] + t * z1[:, None, :]
    return z.reshape(-1, z0.shape[-1])


def interpolation_strip(decoded: np.ndarray, num_rows: int, left=None, right=None) -> np.ndarray:
    """One row per path: [left original,] decoded points..., [right original]; decoded [P * n, H, W, C] uint8."""
    decoded = np.asarray(decoded)
    per = decoded.reshape(num_rows, -1, *decoded.shape[1:])
    parts = (
        ([np.asarray(left)[:, None]] if left is not None else [])
        + [per]
        + ([np.asarray(right)[:, None]] if right is not None else [])
    )
    rows = np.concatenate(parts, axis=1)
    return image_grid(rows.reshape(-1, *decoded.shape[1:]), rows.shape[1])


def project_2d(codes) -> tuple[np.ndarray, tuple[str, str]]:
    """Codes [N, L] as 2-D points: themselves for L <= 2 (zero-padded), else their top two principal components."""
    codes = np.asarray(codes, np.float32)
    if codes.shape[1] == 1:
        return np.concatenate([codes, np.zeros_like(codes)], 1), ("z1", "")
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    from zoo import pca

    p = pca.pca_fit(jnp.asarray(codes), 2)
    return np.asarray(pca.pca_transform(p, jnp.asarray(codes))), ("PC1 of codes", "PC2 of codes")


def latent_scatter(codes, labels, title: str) -> np.ndarray:
    """A 2-D scatter of codes [N, L] (projected by PCA when L > 2) coloured by label, as a uint8 RGB image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points, (xlabel, ylabel) = project_2d(codes)
    labels = np.asarray(labels)
    fig = Figure(figsize=(5, 4.4), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    classes = np.unique(labels)
    for i, y in enumerate(classes):
        m = labels == y
        ax.scatter(points[m, 0], points[m, 1], s=8, alpha=0.8, color=f"C{i % 10}", label=str(y))
    if 1 < len(classes) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.5, frameon=False)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
