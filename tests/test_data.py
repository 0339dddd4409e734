"""TFRecord writing from image trees and RecordIO, bad-input errors, and the tf.data input pipeline."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from pymfn.training import tfrecords as data
from pymfn.training import recordio
from pymfn.training.tfrecords import DataError
from pymfn.cli import main as cli_main


def _jpeg(seed: int, size: int = 112, fmt: str = "JPEG") -> bytes:
    rng = np.random.RandomState(seed)
    # smooth, left-right asymmetric content so JPEG keeps it and a mirror is detectable
    base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
    arr = np.clip(base + rng.randint(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=95) if fmt == "JPEG" else Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _tree(root, counts: dict[str, int]):
    seed = 0
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{name}_{i + 1:04d}.jpg").write_bytes(_jpeg(seed))
            seed += 1
    return root


def _read_records(out_dir):
    import tensorflow as tf

    meta = json.loads((out_dir / data.META_NAME).read_text())
    rows = []
    for name in meta["shards"]:
        for raw in tf.data.TFRecordDataset(str(out_dir / name)).as_numpy_iterator():
            ex = tf.train.Example.FromString(raw)
            rows.append((ex.features.feature[data.FEATURE_IMAGE].bytes_list.value[0],
                         ex.features.feature[data.FEATURE_LABEL].int64_list.value[0]))
    return meta, rows


def test_scan_tree_labels_follow_sorted_folders(tmp_path):
    root = _tree(tmp_path / "t", {"Bob": 2, "Alice": 3, "Carol": 1})
    (root / "Empty").mkdir()
    (root / "Alice" / "notes.txt").write_text("not an image")
    tree = data.scan_image_tree(root)
    assert tree.class_names == ["Alice", "Bob", "Carol"]
    assert tree.empty_folders == ["Empty"]
    assert [label for _, label in tree.files] == [0, 0, 0, 1, 1, 2]


def test_tree_to_tfrecords_cli(tmp_path, capsys):
    root = _tree(tmp_path / "t", {"Alice": 3, "Bob": 2, "Carol": 2})
    out = tmp_path / "out"
    assert cli_main(["data", "tfrecord", "--from", str(root), "--out", str(out), "--shards", "3"]) == 0
    assert "wrote 7 images, 3 identities, 3 shard(s)" in capsys.readouterr().out
    meta, rows = _read_records(out)
    assert meta["num_images"] == 7 and meta["num_classes"] == 3 and meta["format"] == "folder"
    assert sum(meta["shard_counts"]) == 7 and len(meta["shards"]) == 3
    assert (out / "labels.txt").read_text().split() == ["Alice", "Bob", "Carol"]
    want = sorted(((root / n / f).read_bytes(), lab) for lab, n in enumerate(["Alice", "Bob", "Carol"])
                  for f in sorted(p.name for p in (root / n).iterdir()))
    assert sorted(rows) == want  # bytes stored unchanged, labels right
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_png_is_reencoded_as_jpeg(tmp_path):
    root = tmp_path / "t"
    (root / "A").mkdir(parents=True)
    (root / "A" / "x.png").write_bytes(_jpeg(1, fmt="PNG"))
    (root / "B").mkdir()
    (root / "B" / "y.jpg").write_bytes(_jpeg(2))
    data.tfrecords_from_tree(root, tmp_path / "out", num_shards=1)
    _, rows = _read_records(tmp_path / "out")
    assert all(img[:3] == b"\xff\xd8\xff" for img, _ in rows)


def test_empty_tree_is_an_error(tmp_path, capsys):
    (tmp_path / "t" / "Alice").mkdir(parents=True)
    (tmp_path / "t" / "loose.jpg").write_bytes(_jpeg(0))
    with pytest.raises(DataError, match=r"no images found in image tree .*t: .*1 images lie directly in it"):
        data.scan_image_tree(tmp_path / "t")
    assert cli_main(["data", "tfrecord", "--from", str(tmp_path / "t"), "--out", str(tmp_path / "out")]) == 1
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="not found or not a directory"):
        data.scan_image_tree(tmp_path / "missing")


@pytest.mark.parametrize("content", [b"this is not an image", "truncated"])
def test_corrupt_image_names_the_file(tmp_path, capsys, content):
    root = _tree(tmp_path / "t", {"Alice": 2, "Bob": 2})
    bad = root / "Bob" / "Bob_0002.jpg"
    bad.write_bytes(_jpeg(9)[:600] if content == "truncated" else content)
    out = tmp_path / "out"
    assert cli_main(["data", "tfrecord", "--from", str(root), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "unreadable or corrupt image" in err
    assert not out.exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_wrong_size_is_an_error(tmp_path):
    root = _tree(tmp_path / "t", {"Alice": 1})
    (root / "Alice" / "big.jpg").write_bytes(_jpeg(3, size=120))
    with pytest.raises(DataError, match=r"big\.jpg: image is 120x120, expected 112x112"):
        data.tfrecords_from_tree(root, tmp_path / "out")
    meta = data.tfrecords_from_tree(root, tmp_path / "out", image_size=None)
    assert meta["num_images"] == 2


def test_recordio_to_tfrecords(tmp_path):
    images = [(_jpeg(i), i % 4) for i in range(10)]
    src = tmp_path / "ms1m"
    src.mkdir()
    recordio.write_insightface_rec(src / "train.rec", src / "train.idx", images)
    out = tmp_path / "out"
    assert data.detect_format(src) == "recordio"
    assert cli_main(["data", "tfrecord", "--from", str(src), "--out", str(out), "--shards", "2"]) == 0
    meta, rows = _read_records(out)
    assert meta["format"] == "recordio" and meta["num_classes"] == 4 and meta["num_images"] == 10
    assert sorted(rows) == sorted(images)


def test_recordio_errors(tmp_path, capsys):
    src = tmp_path / "ms1m"
    src.mkdir()
    recordio.write_insightface_rec(src / "train.rec", src / "train.idx", [(_jpeg(0), 0), (_jpeg(1), 1)])
    idx = (src / "train.idx").read_text()
    (src / "train.idx").unlink()
    assert cli_main(["data", "tfrecord", "--from", str(src), "--out", str(tmp_path / "o")]) == 1
    assert "RecordIO index missing" in capsys.readouterr().err
    (src / "train.idx").write_text(idx)

    raw = bytearray((src / "train.rec").read_bytes())
    off1 = int(idx.splitlines()[1].split("\t")[1])  # first image record
    raw[off1:off1 + 4] = b"\0\0\0\0"
    (src / "train.rec").write_bytes(bytes(raw))
    assert cli_main(["data", "tfrecord", "--from", str(src / "train.rec"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "train.rec: bad magic 0x00000000 at byte" in err

    recordio.write_insightface_rec(src / "train.rec", src / "train.idx", [(_jpeg(0), 0), (b"garbage", 1)])
    assert cli_main(["data", "tfrecord", "--from", str(src), "--out", str(tmp_path / "o")]) == 1
    assert "train.rec record 2: unreadable or corrupt image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_load_meta_errors(tmp_path):
    with pytest.raises(DataError, match="pymfn_data.json not found"):
        data.load_meta(tmp_path)
    (tmp_path / data.META_NAME).write_text("{broken")
    with pytest.raises(DataError, match="corrupt metadata"):
        data.load_meta(tmp_path)
    (tmp_path / data.META_NAME).write_text(json.dumps({"num_classes": 2, "num_images": 2, "shards": ["x.tfrecord"]}))
    with pytest.raises(DataError, match=r"x\.tfrecord: shard listed in .* is missing"):
        data.load_meta(tmp_path)


def _run(tensors, n):
    import tensorflow.compat.v1 as tf

    with tf.Session() as sess:
        return [sess.run(tensors) for _ in range(n)]


def test_parse_example_decodes_and_normalises():
    import tensorflow.compat.v1 as tf

    jpeg = _jpeg(5)
    ref = (np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32) - 127.5) / 128
    with tf.Graph().as_default():
        serialized = tf.constant(data.make_example(jpeg, 7).SerializeToString())
        img, label = data.parse_example(serialized, flip=False)
        (img_v, label_v), = _run([img, label], 1)
        flipped, _ = data.parse_example(serialized, flip=True, seed=1)
        outs = _run(flipped, 16)
    assert label_v == 7 and img_v.dtype == np.float32 and img_v.shape == (112, 112, 3)
    assert np.abs(img_v - ref).max() <= 1 / 128  # same accurate IDCT as Pillow: at most one level off
    mirrored = [np.allclose(o, img_v[:, ::-1]) for o in outs]
    same = [np.allclose(o, img_v) for o in outs]
    assert all(m or s for m, s in zip(mirrored, same)) and any(mirrored) and any(same)


def test_train_dataset_batches(tmp_path):
    import tensorflow.compat.v1 as tf

    root = _tree(tmp_path / "t", {"A": 3, "B": 3, "C": 3})
    (root / "C" / "extra.png").write_bytes(_jpeg(50, fmt="PNG"))  # raw folders may hold PNGs
    data.tfrecords_from_tree(root, tmp_path / "out", num_shards=2)
    for src in (data.open_source(tmp_path / "out"), data.open_source(root)):
        assert (src.num_classes, src.num_images) == (3, 10)
        with tf.Graph().as_default():
            ds = data.train_dataset(src, 4, seed=0)
            images, labels = tf.data.make_one_shot_iterator(ds).get_next()
            assert images.shape.as_list() == [4, 112, 112, 3]  # static batch (drop_remainder)
            batches = _run([images, labels], 5)  # repeats past one epoch
        imgs = np.concatenate([b[0] for b in batches])
        labs = np.concatenate([b[1] for b in batches])
        assert imgs.dtype == np.float32 and imgs.min() >= -1.0 and imgs.max() <= 1.0
        assert set(labs.tolist()) == {0, 1, 2}
    with pytest.raises(DataError, match="only 10 training images for batch size 64"):
        data.train_dataset(src, 64)


def test_open_source_checks_tree_images(tmp_path):
    root = _tree(tmp_path / "t", {"A": 2, "B": 2})
    (root / "B" / "B_0002.jpg").write_bytes(b"\xff\xd8\xff broken")
    with pytest.raises(DataError, match=r"B_0002\.jpg: unreadable or corrupt image"):
        data.open_source(root)


def test_open_source_errors(tmp_path):
    with pytest.raises(DataError, match="training data not found"):
        data.open_source(tmp_path / "nope")
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(DataError, match="no pymfn_data.json"):
        data.open_source(tmp_path)


def test_real_training_tree(lfw_train_dir):
    tree = data.scan_image_tree(lfw_train_dir)
    assert len(tree.class_names) == 423 and len(tree.files) == 5985
    path, label = tree.files[0]
    assert data.check_image(path.read_bytes(), str(path)) == path.read_bytes()


def test_out_is_checked_before_any_image_is_read(tmp_path, capsys):
    """A bad --out fails at once, one line, before minutes of decoding (the tree here does not even exist)."""
    missing = tmp_path / "no-tree"
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"keep me")
    assert cli_main(["data", "tfrecord", "--from", str(missing), "--out", str(foreign)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pymfn data: error: --out {foreign}: is a non-empty directory")
    assert (foreign / "holiday.jpg").read_bytes() == b"keep me"
    (tmp_path / "a-file").write_text("x")
    assert cli_main(["data", "tfrecord", "--from", str(missing), "--out", str(tmp_path / "a-file")]) == 1
    assert "--out" in capsys.readouterr().err
    assert cli_main(["data", "tfrecord", "--from", str(missing), "--out", "/proc/pymfn-out"]) == 1
    assert "cannot write in /proc" in capsys.readouterr().err
    assert cli_main(["data", "tfrecord", "--from", str(missing), "--out", str(tmp_path / "o"), "--image-size", "-1"]) == 1
    assert "--image-size must be >= 0" in capsys.readouterr().err


def test_rewriting_own_output_is_allowed(tmp_path):
    root = _tree(tmp_path / "t", {"Alice": 2, "Bob": 2})
    out = tmp_path / "out"
    assert cli_main(["data", "tfrecord", "--from", str(root), "--out", str(out), "--shards", "1"]) == 0
    assert cli_main(["data", "tfrecord", "--from", str(root), "--out", str(out), "--shards", "2"]) == 0
    assert len(json.loads((out / data.META_NAME).read_text())["shards"]) == 2


def test_shard_cut_at_a_record_boundary_is_detected(tmp_path):
    """TensorFlow reads a shard cut exactly after a record as a clean, shorter file: training would run
    on fewer images without a word. The byte sizes recorded in pymfn_data.json catch it up front."""
    import struct

    root = _tree(tmp_path / "t", {"Alice": 2, "Bob": 2})
    out = tmp_path / "out"
    meta = data.tfrecords_from_tree(root, out, num_shards=1)
    shard = out / meta["shards"][0]
    raw = shard.read_bytes()
    assert meta["shard_bytes"] == [len(raw)]
    (first_len,) = struct.unpack_from("<Q", raw, 0)
    shard.write_bytes(raw[:16 + first_len])  # exactly one whole record left
    assert data.find_damaged_shards([str(shard)]) == []  # invisible to the record reader
    with pytest.raises(DataError, match=rf"{shard}: truncated shard: {16 + first_len} bytes, .* records {len(raw)}"):
        data.load_meta(out)
