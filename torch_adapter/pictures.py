"""Pictures of VQ-VAE runs (PNG, matplotlib), as the paper shows them (docs/design.md section 10).

- :func:`plot_metrics`: curves of several runs on one plot per figure
  (training loss and validation MSE; perplexity; topographic error).
- :func:`plot_reconstructions`: validation images beside each model's
  reconstructions.
- :func:`plot_codebook`: each code decoded alone and laid out at its grid
  position; a KSOM codebook shows smooth islands, EMA-VQ noise.
- :func:`plot_index_shift`: every latent index moved k steps along the grid,
  then decoded; KSOM images degrade gracefully.

Figures are built on :class:`matplotlib.figure.Figure` directly, so no
global pyplot state or display is involved.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from sklearn_ksom.topology import Grid

from .data import ImageData
from .vqvae import VQVAE

METRIC_LABELS = {
    "loss": "training loss (MSE + commitment)",
    "reconstruction_mse": "training reconstruction MSE",
    "val_mse": "validation MSE",
    "perplexity": "perplexity (training batch)",
    "val_perplexity": "perplexity (validation set)",
    "topographic_error": "topographic error (training batch)",
    "val_topographic_error": "topographic error (validation set)",
    "utilisation": "codebook utilisation",
    "dead_codes": "dead codes (training batch)",
}


def plot_metrics(runs: dict, keys, path, *, log_scale=("loss", "reconstruction_mse", "val_mse")):
    """One panel per metric in ``keys``, one curve per run.

    ``runs`` maps a run's name to its metrics log (a list of dicts as in
    ``metrics.jsonl``); steps where a metric was not logged are skipped.
    """
    figure = Figure(figsize=(5.5 * len(keys), 4), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for axis, key in zip(axes, keys):
        for name, lines in runs.items():
            points = [(line["step"], line[key]) for line in lines if key in line]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, label=name, marker="o" if len(points) < 30 else None, markersize=3)
        axis.set_xlabel("step")
        axis.set_title(METRIC_LABELS.get(key, key))
        if key in log_scale:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.savefig(path, dpi=110)
    return path


# ------------------------------------------------------------ image grids


def _to_display(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) [0, 1] -> (N, H, W, 3) float numpy (grey repeated)."""
    array = images.detach().cpu().float().numpy().transpose(0, 2, 3, 1)
    return np.repeat(array, 3, axis=3) if array.shape[3] == 1 else array


def mosaic(images: torch.Tensor, positions, *, pad: int = 1, background: float = 1.0) -> np.ndarray:
    """Place each image at its (row, column) position (floats allowed); returns (H, W, 3)."""
    tiles = _to_display(images)
    height, width = tiles.shape[1:3]
    positions = np.asarray(positions, dtype=np.float64)
    step_y, step_x = height + pad, width + pad
    canvas_height = int(round(positions[:, 0].max() * step_y)) + height + 2 * pad
    canvas_width = int(round(positions[:, 1].max() * step_x)) + width + 2 * pad
    canvas = np.full((canvas_height, canvas_width, 3), background, dtype=np.float32)
    for tile, (row, col) in zip(tiles, positions):
        y = pad + int(round(row * step_y))
        x = pad + int(round(col * step_x))
        canvas[y : y + height, x : x + width] = tile
    return canvas


def _show(canvas: np.ndarray, path, title: str, *, scale: float = 3.0, column_labels=None, tile_width=None,
          pad: int = 1):
    """Save a mosaic at ``scale`` screen pixels per image pixel, with a title."""
    height, width = canvas.shape[:2]
    dpi = 100
    band = 0.5 if column_labels is not None else 0.3  # inches above the mosaic for the title (and labels)
    image_height = height * scale / dpi
    figure = Figure(figsize=(max(width * scale / dpi, 3.0), image_height + band), dpi=dpi)
    axis = figure.add_axes((0, 0, 1, image_height / (image_height + band)))
    axis.imshow(canvas, interpolation="nearest")
    axis.set_axis_off()
    figure.suptitle(title, fontsize=10)
    if column_labels is not None:
        for i, label in enumerate(column_labels):
            axis.text(pad + i * (tile_width + pad) + tile_width / 2, -1, label, ha="center", va="bottom",
                      fontsize=8)
    figure.savefig(path, dpi=dpi)
    return path


@torch.no_grad()
def plot_reconstructions(models: dict, images: ImageData, path, *, n_images: int = 12, device="cpu"):
    """First row: validation images; then one row of reconstructions per model."""
    originals = images.validation[:n_images]
    x = images.standardise(originals, device)
    rows = [images.unstandardise(x)]
    for model in models.values():
        model.eval()
        rows.append(images.unstandardise(model.reconstruct(x)))
    stacked = torch.cat(rows)
    positions = [(r, c) for r in range(len(rows)) for c in range(originals.shape[0])]
    names = ", ".join(["originals", *models])
    return _show(mosaic(stacked, positions), path, f"rows: {names}", scale=_scale(originals))


def _scale(images: torch.Tensor) -> float:
    """Screen pixels per image pixel: small images drawn larger."""
    return max(2.0, 64.0 / images.shape[-1])


def grid_positions(grid: Grid) -> np.ndarray:
    """(row, column) of each code for drawing: 1-D grids as one row, hexagonal rows offset."""
    if grid.ndim == 1:
        return np.stack([np.zeros(grid.n_codes), grid.indices[:, 0]], axis=1)
    if grid.ndim != 2:
        raise ValueError(f"Only 1-D and 2-D grids can be drawn, this one has shape {grid.shape}.")
    positions = grid.indices.astype(np.float64)
    if grid.hexagonal:
        positions[:, 1] += 0.5 * (grid.indices[:, 0] % 2)
    return positions


@torch.no_grad()
def decode_each_code(model: VQVAE, images: ImageData, *, latent_size: int = 4, device="cpu") -> torch.Tensor:
    """Decode a latent map filled with one code, for every code: (K, C, h, w) in [0, 1]."""
    model.eval()
    n_codes = model.quantizer.n_codes
    decoded = []
    for start in range(0, n_codes, 256):
        codes = torch.arange(start, min(start + 256, n_codes), device=device)
        maps = codes.view(-1, 1, 1).expand(-1, latent_size, latent_size)
        decoded.append(images.unstandardise(model.decode_codes(maps)))
    return torch.cat(decoded)


def plot_codebook(model: VQVAE, grid: Grid, images: ImageData, path, *, title: str = "", latent_size=None,
                  device="cpu"):
    """The decoded codebook laid out on the grid (docs/design.md section 10)."""
    if latent_size is None:
        latent_size = max(1, 16 // 2**model.n_downsample)
    tiles = decode_each_code(model, images, latent_size=latent_size, device=device)
    canvas = mosaic(tiles, grid_positions(grid), pad=0)
    heading = title or "each code decoded alone, at its grid position"
    return _show(canvas, path, f"{heading} (grid {'x'.join(map(str, grid.shape))})", scale=2.0)


def shift_codes(codes: torch.Tensor, grid: Grid, shift: int, axis: int = 0) -> torch.Tensor:
    """Move every code ``shift`` grid steps along ``axis``.

    At the edge of a flat grid a code stays on the border; on a torus it
    wraps around.
    """
    positions = grid.indices[codes.cpu().numpy()].copy()  # (..., ndim)
    size = grid.shape[axis]
    moved = positions[..., axis] + shift
    positions[..., axis] = np.mod(moved, size) if grid.toroidal else np.clip(moved, 0, size - 1)
    flat = np.ravel_multi_index(tuple(np.moveaxis(positions, -1, 0)), grid.shape)
    return torch.as_tensor(flat, device=codes.device)


@torch.no_grad()
def plot_index_shift(model: VQVAE, grid: Grid, images: ImageData, path, *, shifts=(-4, -2, -1, 0, 1, 2, 4),
                     axis: int = 0, n_images: int = 8, title: str = "", device="cpu"):
    """Columns: the image, then its latent codes shifted by k grid steps and decoded."""
    model.eval()
    x = images.standardise(images.validation[:n_images], device)
    codes = model.encode(x).codes
    columns = [images.unstandardise(x)]
    for shift in shifts:
        columns.append(images.unstandardise(model.decode_codes(shift_codes(codes, grid, shift, axis))))
    stacked = torch.stack(columns, dim=1).flatten(0, 1)  # image-major: one row per image
    positions = [(r, c) for r in range(x.shape[0]) for c in range(len(columns))]
    labels = ["image", *(f"k={s:+d}" if s else "k=0" for s in shifts)]
    heading = title or "latent indices shifted by k grid steps"
    return _show(mosaic(stacked, positions), path, f"{heading} (axis {axis})", scale=_scale(x),
                 column_labels=labels, tile_width=x.shape[-1])
