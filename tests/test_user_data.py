"""User datasets: manifest CSV, image folders and npz load, validate, cache and train end to end."""

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lookright.cli import app
from lookright.data import sources
from lookright.data.example import write_example
from lookright.data.export import export_benchmark
from lookright.data.sources import load_user_splits
from lookright.errors import ConfigError, DataError
from lookright.train import train
from lookright.train.config import DataConfig, build_config
from lookright.train.trainer import load_splits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKRIGHT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def png(path: Path, size=(20, 20), value=100, mode="RGB") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode != "RGB" else (value, value // 2, 255 - value)).save(path)
    return path.name


def mask_png(path: Path, size=(20, 20), box=(5, 5, 15, 15)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = Image.new("L", size)
    m.paste(255, box)
    m.save(path)


def manifest(folder: Path, rows: list[dict], columns=None) -> Path:
    columns = columns or list(rows[0])
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def shapes_dataset(folder: Path, n_per_class=4, splits=("train", "train", "val", "test"), labels=("cat", "dog")) -> Path:
    """Two classes, each image a distinct grey value (its row number) so rows can be told apart."""
    rows = []
    for c, label in enumerate(labels):
        for i in range(n_per_class):
            k = c * n_per_class + i
            png(folder / f"img{k}.png", value=10 + k, mode="L")
            mask_png(folder / f"mask{k}.png")
            rows.append({"image": f"img{k}.png", "label": label, "split": splits[i % len(splits)], "mask": f"mask{k}.png"})
    return manifest(folder, rows)


def data(**kw) -> DataConfig:
    return DataConfig(**{"name": "manifest", "image_size": 20, **kw})


def tiny_run(tmp_path, data_tree: dict, classes: int, loss=None):
    tree = {"name": "user", "seed": 0, "data": {"image_size": 28, **data_tree},
            "model": {"name": "lenet", "options": {"num_classes": classes, "size": 28}},
            "optim": {"name": "adam", "lr": 0.001}, "train": {"epochs": 1, "batch_size": 16},
            "eval": {"figure_images": 1}}
    if loss:
        tree.update(loss={"name": loss}, attention={"extractor": "cam"})
    metrics = train(build_config(tree), tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["sizes"] == metrics["sizes"]
    return saved


# ---- the three sources, end to end ---------------------------------------------------------

def test_manifest_example_trains_one_epoch(tmp_path):
    csv_path = write_example(tmp_path / "ex", n=60, size=32)
    saved = tiny_run(tmp_path, {"name": "manifest", "path": str(csv_path)}, 4, loss="camal")
    assert saved["sizes"] == {"train": 42, "val": 6, "test": 12}
    assert "4 classes: circle, cross, square, triangle" in saved["data_source"]
    train_split, _, test_split, _ = load_user_splits(data(path=str(csv_path), image_size=28), 0)
    assert train_split.x.shape == (42, 3, 28, 28) and train_split.x.dtype == np.uint8
    assert train_split.mask.shape == (42, 28, 28) and set(np.unique(train_split.mask)) == {0, 1}
    assert train_split.shortcut[:, 0, 0].all() and not train_split.shortcut[:, -1, -1].any()


def test_folder_trains_one_epoch_with_carved_val(tmp_path):
    root = tmp_path / "folder"
    for split, n in (("train", 12), ("test", 4)):
        for label in ("a", "b"):
            for i in range(n):
                png(root / split / label / f"{i}.jpg", size=(30, 20), value=40 * (label == "b") + i)
                if i % 2:
                    mask_png(root / "masks" / split / label / f"{i}.png", size=(30, 20))
    mask_png(root / "shortcuts" / "train" / "a" / "0.png", size=(15, 10), box=(0, 0, 3, 3))
    saved = tiny_run(tmp_path, {"name": "folder", "root": str(root)}, 2)
    assert saved["sizes"] == {"train": 20, "val": 4, "test": 8}
    train_split, val, test, source = load_user_splits(DataConfig(name="folder", root=str(root), image_size=28), 0)
    masked = train_split.mask.reshape(len(train_split), -1).any(1)
    assert 0 < masked.sum() < len(train_split)  # images without a mask file get zeros
    assert train_split.shortcut.any() and "2 classes: a, b" in source


def test_npz_export_trains_one_epoch(tmp_path):
    out = export_benchmark("decoymnist-cdep", tmp_path / "decoy.npz", embedded=True)
    saved = tiny_run(tmp_path, {"name": "npz", "path": str(out), "max_train": 80, "max_test": 40}, 10)
    assert saved["sizes"] == {"train": 67, "val": 13, "test": 40}  # val: 16% per class, rounded
    train_split, _, _, _ = load_user_splits(DataConfig(name="npz", path=str(out), image_size=28), 0)
    with np.load(out) as z:
        assert train_split.x.shape[1:] == z["x_train"].shape[1:]
        assert sorted(set(train_split.y.tolist())) == list(range(10))


def test_npz_val_keys_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"x_{split}"] = rng.integers(0, 255, (n, 1, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = np.arange(n) % 3
    np.savez(tmp_path / "d.npz", **arrays)
    tr, va, te, _ = load_user_splits(DataConfig(name="npz", path=str(tmp_path / "d.npz"), image_size=14), 0)
    assert (len(tr), len(va), len(te)) == (12, 4, 6) and tr.x.shape == (12, 1, 14, 14) and not tr.mask.any()


# ---- what the loader does ----------------------------------------------------------------------

def test_box_is_rasterised_in_image_pixels(tmp_path):
    png(tmp_path / "wide.png", size=(40, 20))
    png(tmp_path / "other.png", size=(40, 20))
    path = manifest(tmp_path, [{"image": "wide.png", "label": "x", "split": "train", "box": "10 5 30 15"},
                               {"image": "other.png", "label": "x", "split": "train", "box": "0,0,40,20"},
                               {"image": "other.png", "label": "x", "split": "val", "box": ""},
                               {"image": "other.png", "label": "x", "split": "test", "box": ""}])
    tr, _, te, _ = load_user_splits(data(path=str(path)), 0)
    expected = np.zeros((20, 20), np.uint8)
    expected[5:15, 5:15] = 1
    assert (tr.mask[0] == expected).all() and tr.mask[1].all() and not te.mask.any()


def test_rgb_and_grey_mix_and_rgba_palette(tmp_path):
    png(tmp_path / "grey.png", value=77, mode="L")
    png(tmp_path / "rgb.jpg", value=200)
    Image.new("RGBA", (20, 20), (10, 20, 30, 128)).save(tmp_path / "rgba.png")
    Image.new("P", (20, 20)).save(tmp_path / "pal.png")
    rows = [{"image": name, "label": "k", "split": "train"} for name in ("grey.png", "rgb.jpg", "rgba.png", "pal.png")]
    rows.append({"image": "grey.png", "label": "k", "split": "test"})
    tr, _, _, _ = load_user_splits(data(path=str(manifest(tmp_path, rows))), 0)
    assert tr.x.shape[1] == 3
    grey = tr.x[[i for i in range(len(tr)) if (tr.x[i] == 77).all()]]
    assert len(grey) == 1  # the grey image is repeated to three equal channels


def test_string_labels_follow_classes_and_no_mask_column_gives_zeros(tmp_path):
    path = shapes_dataset(tmp_path, labels=("zebra", "ant"))
    rows = list(csv.DictReader(open(path)))
    path = manifest(tmp_path, [{k: r[k] for k in ("image", "label", "split")} for r in rows])
    tr, _, _, source = load_user_splits(data(path=str(path)), 0)
    assert "ant, zebra" in source and not tr.mask.any()
    tr2, _, _, source = load_user_splits(data(path=str(path), classes=["zebra", "ant"]), 0)
    assert (tr2.y == 1 - tr.y).all() and "zebra, ant" in source


def test_carved_splits_are_seeded_and_disjoint(tmp_path):
    path = shapes_dataset(tmp_path, n_per_class=20)
    rows = list(csv.DictReader(open(path)))
    path = manifest(tmp_path, [{k: r[k] for k in ("image", "label", "mask")} for r in rows])
    ids = lambda s: set(s.x[:, 0, 0, 0].tolist())  # noqa: E731  (each image has its own grey value)
    a = load_user_splits(data(path=str(path)), 0)[:3]
    b = load_user_splits(data(path=str(path)), 0)[:3]
    c = load_user_splits(data(path=str(path)), 1)[:3]
    assert [ids(s) for s in a] == [ids(s) for s in b] and [ids(s) for s in a] != [ids(s) for s in c]
    assert [len(s) for s in a] == [26, 6, 8]  # per class: test 20% of 20, then val 16% of 16, rounded
    assert not (ids(a[0]) & ids(a[1]) or ids(a[0]) & ids(a[2]) or ids(a[1]) & ids(a[2]))
    assert len(ids(a[0]) | ids(a[1]) | ids(a[2])) == 40
    assert set(a[2].y.tolist()) == {0, 1}  # carved per class


def test_decoded_arrays_are_cached_and_invalidated(tmp_path, cache, monkeypatch):
    path = shapes_dataset(tmp_path)
    first = load_user_splits(data(path=str(path)), 0)
    assert len(list((cache / "datasets").glob("*.npz"))) == 1
    monkeypatch.setattr(sources, "decode_records", lambda *a: pytest.fail("decoded again"))
    again = load_user_splits(data(path=str(path)), 0)
    assert (again[0].x == first[0].x).all()
    png(tmp_path / "img0.png", value=250, mode="L")  # a changed file: a new key
    monkeypatch.undo()
    monkeypatch.setenv("LOOKRIGHT_CACHE", str(cache))
    changed = load_user_splits(data(path=str(path)), 0)
    assert changed[0].x.max() == 250 and len(list((cache / "datasets").glob("*.npz"))) == 2


def test_model_with_too_few_outputs_is_refused(tmp_path):
    path = write_example(tmp_path / "ex", n=20, size=32)
    cfg = build_config({"data": {"name": "manifest", "path": str(path)}, "model": {"name": "lenet", "options": {"num_classes": 2}}})
    with pytest.raises(ConfigError, match="num_classes: 4"):
        load_splits(cfg)


# ---- errors: each names what was wrong ---------------------------------------------------------

def broken(tmp_path, edit) -> str:
    """A valid two-class manifest with ``edit(rows, folder)`` applied; the DataError's message."""
    path = shapes_dataset(tmp_path)
    rows = list(csv.DictReader(open(path)))
    columns = edit(rows, tmp_path) or list(rows[0])
    manifest(tmp_path, rows, columns)
    with pytest.raises(DataError) as err:
        load_user_splits(data(path=str(path)), 0)
    return str(err.value)


def test_missing_and_unreadable_files_are_listed_together(tmp_path):
    def edit(rows, folder):
        rows[0]["image"] = "nowhere.png"
        (folder / "img1.png").write_bytes(b"not a png")
        rows[2]["mask"] = "lost-mask.png"
        (folder / "mask3.png").write_text("junk")
    msg = broken(tmp_path, edit)
    assert "4 problems" in msg
    assert "missing image" in msg and "nowhere.png" in msg and "unreadable image" in msg and "img1.png" in msg
    assert "missing mask" in msg and "lost-mask.png" in msg and "unreadable mask" in msg and "mask3.png" in msg


def test_mask_of_another_aspect_ratio_is_an_error_same_ratio_is_resized(tmp_path):
    def edit(rows, folder):
        mask_png(folder / "mask0.png", size=(40, 40))  # same ratio: fine
        mask_png(folder / "mask1.png", size=(20, 30))
    msg = broken(tmp_path, edit)
    assert "1 problem" in msg and "mask1.png is 20x30 px" in msg and "aspect" in msg


@pytest.mark.parametrize("edit, needle", [
    (lambda rows, f: rows[0].update(box="1 2 3"), "box '1 2 3'"),
    (lambda rows, f: rows[0].update(box="5 5 2 8"), "manifest.csv row 2: box"),
    (lambda rows, f: rows[0].update(box="0 0 25 10", mask=""), "lies outside the image img0.png"),
    (lambda rows, f: rows[3].update(split="validation"), "row 5: split 'validation'"),
    (lambda rows, f: rows[1].update(label=""), "row 3: empty label"),
], ids=["box-values", "box-order", "box-outside", "split-value", "empty-label"])
def test_bad_rows_name_the_row(tmp_path, edit, needle):
    def with_box(rows, folder):
        edit(rows, folder)
        return ["image", "label", "split", "mask", "box"]
    assert needle in broken(tmp_path, with_box)


def test_missing_columns(tmp_path):
    msg = broken(tmp_path, lambda rows, f: ["image", "split"])
    assert "missing column(s) label" in msg and "manifest.csv" in msg


def test_empty_train_split(tmp_path):
    msg = broken(tmp_path, lambda rows, f: [r.update(split="test") for r in rows] and None)
    assert "the train split is empty" in msg and "manifest.csv" in msg


def test_label_not_in_classes(tmp_path):
    path = shapes_dataset(tmp_path)
    with pytest.raises(DataError, match=r"manifest.csv row \d+: label 'dog' is not in data.classes"):
        load_user_splits(data(path=str(path), classes=["cat"]), 0)


def test_class_only_in_test(tmp_path):
    def edit(rows, folder):
        for r in rows:
            if r["label"] == "dog":
                r["split"] = "test"
    msg = broken(tmp_path, edit)
    assert "class 'dog' appears in test (e.g. manifest.csv row" in msg and "not in train" in msg


def test_at_most_twenty_problems_are_listed(tmp_path):
    rows = [{"image": f"missing{i}.png", "label": "a", "split": "train"} for i in range(25)]
    path = manifest(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_user_splits(data(path=str(path)), 0)
    msg = str(err.value)
    assert "25 problems" in msg and "missing19.png" in msg and "missing20.png" not in msg and "and 5 more" in msg


def test_folder_and_npz_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no folder .*train"):
        load_user_splits(DataConfig(name="folder", root=str(tmp_path / "nothing")), 0)
    png(tmp_path / "f" / "train" / "a" / "0.png")
    (tmp_path / "f" / "validation").mkdir()
    with pytest.raises(DataError, match="unexpected folder .*validation"):
        load_user_splits(DataConfig(name="folder", root=str(tmp_path / "f")), 0)
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="bad.npz: missing array.*y_train"):
        load_user_splits(DataConfig(name="npz", path=str(tmp_path / "bad.npz")), 0)
    with pytest.raises(ValueError, match="needs data.path"):
        DataConfig(name="manifest")


# ---- the command line and the docs ------------------------------------------------------------

def test_cli_data_example(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "example", "--out", str(tmp_path / "ex"), "--n", "20", "--size", "40"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "ex" / "manifest.csv")))
    assert len(rows) == 20 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert Image.open(tmp_path / "ex" / rows[0]["image"]).size == (40, 40)
    again = runner.invoke(app, ["data", "example", "--out", str(tmp_path / "ex"), "--n", "20"])
    assert again.exit_code != 0 and "--force" in again.output


def test_docs_user_data_commands_run(tmp_path, monkeypatch):
    """Each ``lookright`` command of docs/user-data.md, in order, on tiny settings."""
    text = (ROOT / "docs" / "user-data.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    commands = [shlex.split(li.split("#", 1)[0])[1:] for b in blocks for li in b.splitlines() if li.startswith("lookright ")]
    assert [c[:2] for c in commands[:1]] == [["data", "example"]] and sum(c[0] == "train" for c in commands) == 2
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for argv in commands:
        if argv[0] == "train":
            argv = [str(ROOT / argv[1]), *argv[2:]]
            argv = ["train", *argv, "data.max_train=24", "data.max_test=12", "data.image_size=32",
                    "model.options.image_size=32", "train.epochs=1", "eval.figure_images=1", f"out_dir={tmp_path / 'runs'}"]
        elif argv[:2] == ["data", "example"]:
            argv = [*argv, "--n", "60", "--size", "40"]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
    assert len(list((tmp_path / "runs").rglob("metrics.json"))) == 2
