import gzip
import struct

import numpy as np
import pytest

from lookright.data import mnist as mnist_mod
from lookright.data.mnist import FILES, load_embedded, load_mnist, locate, read_idx
from lookright.errors import DataError


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "custom.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "custom.gz"), arr)


def test_wrong_checksum_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(10, dtype=np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*checksum"):
        read_idx(path)


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "custom.gz"
    write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_truncated_payload_is_reported(tmp_path):
    path = tmp_path / "custom.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + bytes(10))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "custom.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"hello world")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


def test_data_dir_missing_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError, match="--data-dir.*lacks"):
        locate(tmp_path)


def test_env_variable_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKRIGHT_DATA", str(tmp_path))
    with pytest.raises(DataError, match="LOOKRIGHT_DATA"):
        locate()


def test_download_failure_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("LOOKRIGHT_DATA", raising=False)
    monkeypatch.setenv("LOOKRIGHT_CACHE", str(tmp_path / "cache"))

    def refuse(*_a, **_k):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist_mod.urllib.request, "urlopen", refuse)
    with pytest.raises(DataError, match="could not download.*--data-dir"):
        load_mnist()
    assert not any((tmp_path / "cache" / "mnist").glob("*.gz")), "no partial file may stay behind"


def test_embedded_subset():
    m = load_embedded()
    assert m.train_images.shape == (5000, 28, 28) and m.test_images.shape == (1000, 28, 28)
    assert m.train_images.dtype == np.uint8 and set(np.unique(m.train_labels)) == set(range(10))


@pytest.mark.integration
def test_full_mnist_verified(mnist_dir):
    m = load_mnist(mnist_dir)
    assert m.train_images.shape == (60000, 28, 28) and m.test_images.shape == (10000, 28, 28)
    assert len(m.train_labels) == 60000 and m.test_labels.max() == 9
    emb = load_embedded()
    np.testing.assert_array_equal(emb.train_images, m.train_images[:5000])


@pytest.mark.integration
def test_corrupt_copy_of_real_file(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in FILES.values():
        (folder / name).write_bytes((mnist_dir / "mnist" / name).read_bytes())
    raw = bytearray(gzip.decompress((folder / FILES["test_labels"]).read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    (folder / FILES["test_labels"]).write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="t10k-labels.*checksum"):
        load_mnist(tmp_path)
