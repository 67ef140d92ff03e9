import numpy as np
import pytest

from lookright.data import MNIST, create_benchmark, split_validation
from lookright.data.colormnist import COLOURS, COLOURS_HEX, colormnist
from lookright.data.export import export_benchmark
from lookright.errors import ConfigError


@pytest.fixture
def tiny_mnist():
    rng = np.random.default_rng(0)
    grey = np.zeros((40, 28, 28), dtype=np.uint8)
    grey[:, 8:20, 10:18] = rng.integers(1, 256, size=(40, 12, 8))
    labels = np.arange(40) % 10
    return MNIST(grey, labels.astype(np.uint8), grey[:20].copy(), labels[:20].astype(np.uint8), "synthetic")


def test_colormnist_colours(tiny_mnist):
    b = create_benchmark("colormnist", mnist=tiny_mnist)
    assert b.train.x.shape == (40, 3, 28, 28) and b.train.x.dtype == np.uint8
    assert COLOURS_HEX[0] == "ff0000" and tuple(COLOURS[9]) == (0x80, 0x00, 0x80)
    full = np.full((1, 28, 28), 255, np.uint8)
    full[0, 27, 27] = 0  # a mask covering the whole image is rejected (nothing to align away from)
    for y in range(10):
        one = MNIST(full, np.array([y], np.uint8), full, np.array([y], np.uint8), "x")
        bb = create_benchmark("colormnist", mnist=one)
        np.testing.assert_array_equal(bb.train.x[0, :, 0, 0], COLOURS[y])
        np.testing.assert_array_equal(bb.test.x[0, :, 0, 0], COLOURS[9 - y])
    # background stays black, the shortcut region is the foreground
    assert b.train.x[:, :, 0, 0].max() == 0
    np.testing.assert_array_equal(b.train.shortcut, b.train.mask)


def test_colormnist_channels_scale_grey(tiny_mnist):
    b = create_benchmark("colormnist", mnist=tiny_mnist)
    grey = tiny_mnist.train_images.astype(np.int64)
    expected = np.rint(grey[:, None] * COLOURS[tiny_mnist.train_labels.astype(int)][:, :, None, None] / 255)
    assert np.abs(b.train.x.astype(np.int64) - expected).max() <= 1


@pytest.mark.parametrize("name,size", [("decoymnist-cdep", 5), ("decoymnist-rrr", 4)])
def test_decoy_patch(tiny_mnist, name, size):
    b = create_benchmark(name, mnist=tiny_mnist, seed=3)
    assert b.train.x.shape == (40, 1, 28, 28)
    assert (b.train.shortcut.reshape(40, -1).sum(1) == size * size).all()
    y = b.train.y
    values = (b.train.x[:, 0] * b.train.shortcut).reshape(40, -1).max(1)
    np.testing.assert_array_equal(values, 255 - 25 * y)
    corners = {(int(s[0, 0]), int(s[0, -1]), int(s[-1, 0]), int(s[-1, -1])) for s in b.train.shortcut}
    assert corners <= {(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)} and len(corners) > 1
    # the digit mask is the original foreground, unaffected by the patch
    np.testing.assert_array_equal(b.train.mask, (tiny_mnist.train_images > 0).astype(np.uint8))


def test_decoy_test_rules(tiny_mnist):
    cdep = create_benchmark("decoymnist-cdep", mnist=tiny_mnist)
    v = (cdep.test.x[:, 0].astype(int) * cdep.test.shortcut).reshape(20, -1).max(1)
    np.testing.assert_array_equal(v, 25 * cdep.test.y)
    ink = np.zeros((2000, 28, 28), np.uint8)
    ink[:, 14, 14] = 255  # one pixel of digit: blank digits everywhere would be rejected (all masks empty)
    big = MNIST(ink[:1], np.zeros(1, np.uint8), ink, np.zeros(2000, np.uint8), "x")
    rrr = create_benchmark("decoymnist-rrr", mnist=big)
    v = (rrr.test.x[:, 0].astype(int) * rrr.test.shortcut).reshape(2000, -1).max(1)
    assert set(np.unique(v)) == {255 - 25 * r for r in range(10)}  # independent of the label (all 0)


def test_seeded(tiny_mnist):
    a = create_benchmark("decoymnist-rrr", mnist=tiny_mnist, seed=1)
    b = create_benchmark("decoymnist-rrr", mnist=tiny_mnist, seed=1)
    c = create_benchmark("decoymnist-rrr", mnist=tiny_mnist, seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)


def test_unknown_benchmark(tiny_mnist):
    with pytest.raises(ConfigError, match="unknown benchmark 'fashion'.*colormnist"):
        create_benchmark("fashion", mnist=tiny_mnist)


def test_validation_splits(tiny_mnist):
    b = create_benchmark("colormnist", mnist=tiny_mnist)
    tr, va = split_validation(b, 0.25, "in-distribution", seed=0)
    assert len(tr) == 30 and len(va) == 10
    tr, va = split_validation(b, 0.1, "cdep", seed=0, mnist_grey=tiny_mnist.train_images)
    assert len(tr) == 36 and len(va) == 4
    # cdep validation uses reversed colours
    reversed_colours = colormnist(tiny_mnist.train_images[36:], tiny_mnist.train_labels[36:], "test", None)[0]
    np.testing.assert_array_equal(va.x, reversed_colours)
    with pytest.raises(ConfigError):
        split_validation(b, 1.5, "in-distribution", 0)


def test_export_embedded(tmp_path):
    path = export_benchmark("decoymnist-cdep", tmp_path / "d.npz", embedded=True, seed=0)
    with np.load(path) as z:
        assert z["x_train"].shape == (5000, 1, 28, 28) and z["x_train"].dtype == np.uint8
        assert z["mask_test"].shape == (1000, 28, 28)
        assert {"y_train", "mask_train", "x_test", "y_test", "shortcut_train", "shortcut_test"} <= set(z.files)


@pytest.mark.integration
def test_full_colormnist(mnist_dir):
    b = create_benchmark("colormnist", data_dir=mnist_dir)
    assert b.train.x.shape == (60000, 3, 28, 28) and b.test.x.shape == (10000, 3, 28, 28)
