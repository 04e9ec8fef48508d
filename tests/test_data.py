"""Dataset registry: splits, determinism, the decode cache, the real on-disk formats of the
torchvision datasets (written small into tmp_path) and the offline error.

How the torchvision formats are faked: MNIST is raw IDX files under MNIST/raw exactly as
torchvision lays them out (MNIST checks no md5 of extracted files). CIFAR-10 is the python pickle
batches + batches.meta under cifar-10-batches-py, and CelebA is img_align_celeba/*.jpg plus the
five annotation files; both classes check md5s, so the tests set the md5 table on the
torchvision class (monkeypatch) to the md5 of the files written here: torchvision's own
integrity check then runs unchanged on real-format files.
"""
import gzip
import hashlib
import os
import pickle
import socket
import time
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

import tunekae.data as data
from tunekae.data import DATASETS, DatasetUnavailable, Splits, describe_datasets, load_dataset
from tunekae.errors import UserError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own decode cache and an empty default data root."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TUNEKAE_DATA", raising=False)


def rows(x: torch.Tensor) -> np.ndarray:
    """Rows sorted lexicographically (to compare multisets of samples)."""
    a = x.numpy()
    return a[np.lexsort(a.T[::-1])]


def check_splits(s: Splits, dim: int):
    for x, y in (s.xy("train"), s.xy("val"), s.xy("test")):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.ndim == 2 and x.shape[1] == dim == s.input_dim and len(x) == len(y)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert int(y.min()) >= 0 and int(y.max()) < s.n_classes


# ----------------------------------------------------------------------------- embedded datasets
def test_digits_shapes_and_a_partition_of_all_images():
    from sklearn.datasets import load_digits
    s = load_dataset("digits")
    check_splits(s, 64)
    assert s.image_shape == (8, 8) and s.n_classes == 10
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (1293, 144, 360)   # 20% test, 10% of the rest
    every = torch.cat([s.train_x, s.val_x, s.test_x])
    # train + val + test is exactly the 1,797 images (as a multiset): disjoint and complete.
    expected = torch.from_numpy(load_digits().data.astype(np.float32) / 16)
    np.testing.assert_array_equal(rows(every), rows(expected))
    assert set(s.test_y.tolist()) == set(range(10))   # stratified


def test_same_seed_same_splits_other_seed_other_val_same_test():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert torch.equal(a.test_x, c.test_x) and torch.equal(a.test_y, c.test_y)
    assert not torch.equal(a.val_x, c.val_x)
    assert len(a.val_x) == len(c.val_x)


def test_val_fraction():
    s = load_dataset("digits", val_fraction=0.25)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (1077, 360, 360)
    with pytest.raises(UserError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)


def test_moons_points_disjoint_options_and_name_syntax():
    s = load_dataset("moons")
    check_splits(s, 2)
    assert s.image_shape is None and s.n_classes == 2
    every = torch.cat([s.train_x, s.val_x, s.test_x])
    assert len(every) == 2000 and len({tuple(r) for r in every.tolist()}) == 2000   # disjoint
    assert every.min(0).values.tolist() == [0.0, 0.0] and every.max(0).values.tolist() == [1.0, 1.0]
    assert set(torch.cat([s.train_y, s.val_y, s.test_y]).tolist()) == {0, 1}
    small = load_dataset("moons", n_samples=500, noise=0.2)
    assert len(small.train_x) + len(small.val_x) + len(small.test_x) == 500
    same = load_dataset("moons:n_samples=500,noise=0.2")
    assert torch.equal(same.test_x, small.test_x)
    assert not torch.equal(load_dataset("moons", n_samples=500).test_x, small.test_x)   # noise is an option
    assert torch.equal(load_dataset("moons", seed=3).test_x, s.test_x)               # test fixed


def test_unknown_names_and_options_are_user_errors():
    with pytest.raises(UserError, match="digits, moons, mnist, fashion-mnist, cifar10, celeba"):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="unknown option colour"):
        load_dataset("digits", colour=True)
    with pytest.raises(UserError, match="n_samples"):
        load_dataset("moons", n_samples="many")
    with pytest.raises(UserError, match="noise must be between 0 and 10; got -1.0"):
        load_dataset("moons", noise=-1)
    with pytest.raises(UserError, match="key=value"):
        load_dataset("moons:noise")
    assert data.parse_name("Fashion_MNIST") == ("fashion-mnist", {})
    assert data.parse_name("cifar10:rgb=true") == ("cifar10", {"rgb": "true"})
    text = describe_datasets()
    assert all(name in text for name in DATASETS) and "rgb=False" in text


def test_splits_to_device_and_repr():
    s = load_dataset("digits")
    moved = s.to("cpu")
    assert moved.input_dim == 64 and torch.equal(moved.test_x, s.test_x)
    assert "digits" in repr(s) and "train 1293" in repr(s)


def test_decode_cache_is_used_keyed_by_options_and_written_atomically(tmp_path, monkeypatch):
    load_dataset("moons", n_samples=300)
    files = sorted((tmp_path / "cache" / "tunekae" / "decoded").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    spec = DATASETS["moons"]
    monkeypatch.setitem(DATASETS, "moons", type(spec)(**{**spec.__dict__, "decode": None}))   # decode would fail
    assert len(load_dataset("moons", n_samples=300).train_x) > 0                            # so: from the cache
    monkeypatch.setitem(DATASETS, "moons", spec)
    load_dataset("moons", n_samples=400)                                                   # other options: new file
    names = [p.name for p in (tmp_path / "cache" / "tunekae" / "decoded").iterdir()]
    assert len(names) == 2 and not any(n.endswith(".tmp") for n in names)
    files[0].write_bytes(b"torn write")                                                    # a bad file is redone
    assert len(load_dataset("moons", n_samples=300).test_x) == 60


# ----------------------------------------------------------------------------- Fashion-MNIST (Debian)
@pytest.mark.skipif(not all((DEBIAN / f"{f}.gz").exists() for f in data.IDX_FILES),
                    reason="Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)")
def test_fashion_mnist_from_debian_files_and_cache_speed(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEKAE_DATA", str(tmp_path / "empty"))   # nothing there: the Debian files are found
    t0 = time.perf_counter()
    s = load_dataset("fashion-mnist")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = load_dataset("fashion-mnist")
    second = time.perf_counter() - t0
    print(f"fashion-mnist: first load (decode) {first:.2f} s, second load (cache) {second:.2f} s")
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (54000, 6000, 10000)
    assert s.input_dim == 784 and s.image_shape == (28, 28) and s.n_classes == 10
    assert float(s.train_x.max()) == 1.0 and float(s.train_x.min()) == 0.0 and s.train_x.dtype == torch.float32
    assert torch.equal(again.val_x, s.val_x) and torch.equal(again.test_y, s.test_y)
    assert second < 1.0
    # The reader agrees with torchvision's own IDX reader.
    from torchvision.datasets.mnist import read_label_file
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert torch.equal(read_label_file(str(raw)), s.test_y)


# ----------------------------------------------------------------------------- MNIST (IDX files)
def write_idx(path: Path, arr: np.ndarray):
    blob = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)


def write_tiny_mnist(raw: Path, n_train=40, n_test=20, gz=(True, False, True, False)):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), (np.arange(n_train) % 10).astype(np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), (np.arange(n_test) % 10).astype(np.uint8)]
    for name, arr, zipped in zip(data.IDX_FILES, arrays, gz):
        write_idx(raw / (name + ".gz" if zipped else name), arr)
    return arrays


def test_mnist_from_raw_idx_files(tmp_path):
    tx, ty, sx, sy = write_tiny_mnist(tmp_path / "MNIST" / "raw")
    s = load_dataset("mnist", data_dir=tmp_path)
    check_splits(s, 784)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (36, 4, 20)
    np.testing.assert_array_equal(s.test_x.numpy(), sx.reshape(20, -1) / np.float32(255))
    assert s.test_y.tolist() == sy.tolist() and s.image_shape == (28, 28)
    np.testing.assert_array_equal(rows(torch.cat([s.train_x, s.val_x])),
                                  rows(torch.from_numpy(tx.reshape(40, -1) / np.float32(255))))
    # Replacing a file invalidates the decode cache (name, size and mtime are part of its key).
    write_idx(tmp_path / "MNIST" / "raw" / data.IDX_FILES[3], np.full(20, 7, np.uint8))
    os.utime(tmp_path / "MNIST" / "raw" / data.IDX_FILES[3], (1e9, 1e9))
    assert load_dataset("mnist", data_dir=tmp_path).test_y.tolist() == [7] * 20


def test_mnist_download_path_is_torchvisions(tmp_path, monkeypatch):
    """Files absent, network 'up': torchvision's MNIST.download runs (its fetch replaced by a
    writer of the tiny files) and the dataset loads from what it wrote."""
    import torchvision.datasets.mnist as tv_mnist
    calls = []

    def fake_fetch(url, download_root, filename, md5):
        calls.append(url)
        if filename == data.IDX_FILES[0] + ".gz":
            write_tiny_mnist(Path(download_root), gz=(False,) * 4)
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: True)
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", fake_fetch)
    s = load_dataset("mnist", data_dir=tmp_path)
    assert len(calls) == 4 and len(s.test_x) == 20


# ----------------------------------------------------------------------------- CIFAR-10 (pickles)
def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_tiny_cifar(root: Path, monkeypatch, per_batch=6, n_test=10):
    from torchvision.datasets import CIFAR10
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_list, test_list, images, labels = [], [], [], []
    for name in data.CIFAR_FILES[:-1]:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)   # rows: 1024 R, 1024 G, 1024 B
        y = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": y, "data": x, "filenames": [f"{i}.png" for i in range(n)]}, f)
        (test_list if name == "test_batch" else train_list).append([name, md5(folder / name)])
        images.append(x)
        labels.append(y)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"], "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", test_list)
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return images, labels


def test_cifar10_grayscale_and_rgb(tmp_path, monkeypatch):
    images, labels = write_tiny_cifar(tmp_path, monkeypatch)
    s = load_dataset("cifar10", data_dir=tmp_path)
    check_splits(s, 1024)
    assert (len(s.train_x) + len(s.val_x), len(s.test_x)) == (30, 10) and s.image_shape == (32, 32)
    assert s.test_y.tolist() == labels[-1]
    r, g, b = images[-1].reshape(10, 3, 1024).astype(np.float64).transpose(1, 0, 2)
    np.testing.assert_allclose(s.test_x.numpy() * 255, 0.299 * r + 0.587 * g + 0.114 * b, atol=0.51)
    rgb = load_dataset("cifar10:rgb=true", data_dir=tmp_path)
    check_splits(rgb, 3072)
    assert rgb.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(rgb.test_x.numpy(), images[-1] / np.float32(255))   # (C, H, W) order


def test_cifar10_md5_mismatch_is_dataset_unavailable(tmp_path, monkeypatch):
    write_tiny_cifar(tmp_path, monkeypatch)
    from torchvision.datasets import CIFAR10
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", "0" * 32]])
    with pytest.raises(DatasetUnavailable, match="corrupted"):
        load_dataset("cifar10", data_dir=tmp_path)


# ----------------------------------------------------------------------------- CelebA (jpg + txt)
ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
         "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
         "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin "
         "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
         "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def write_tiny_celeba(root: Path, monkeypatch, partition=(0,) * 10 + (1,) * 2 + (2,) * 4):
    from PIL import Image
    from torchvision.datasets import CelebA
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    smiling = [i % 2 for i in range(len(names))]
    male = [1 if i < 3 else 0 for i in range(len(names))]
    for i, name in enumerate(names):
        img = np.full((218, 178, 3), 255, np.uint8)    # white bands above and below the 178x178 centre ...
        img[20:198] = (30 * (i % 4), 0, 0)             # ... which is dark: the crop must drop the bands
        Image.fromarray(img).save(folder / "img_align_celeba" / name, quality=95)
    n = len(names)
    lines = {
        "list_eval_partition.txt": [f"{a} {p}" for a, p in zip(names, partition)],
        "identity_CelebA.txt": [f"{a} {i + 1}" for i, a in enumerate(names)],
        "list_bbox_celeba.txt": [str(n), "image_id x_1 y_1 width height"] + [f"{a}    95  71 226 313" for a in names],
        "list_landmarks_align_celeba.txt": [str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                            "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"]
                                           + [f"{a}  69 109 106 113  77 142  73 152 108 154" for a in names],
        "list_attr_celeba.txt": [str(n), " ".join(ATTRS) + " "]
                                + [a + "".join(" 1" if (attr, True) in (("Smiling", bool(s)), ("Male", bool(m)))
                                               else " -1" for attr in ATTRS) for a, s, m in zip(names, smiling, male)],
    }
    for fname, content in lines.items():
        (folder / fname).write_text("\n".join(content) + "\n")
    table = [(fid, md5(folder / fname) if fname.endswith(".txt") else m, fname) for fid, m, fname in CelebA.file_list]
    monkeypatch.setattr(CelebA, "file_list", table)
    return names, partition, smiling, male


def test_celeba_crop_resize_labels_and_partition(tmp_path, monkeypatch):
    names, partition, smiling, male = write_tiny_celeba(tmp_path, monkeypatch)
    s = load_dataset("celeba", data_dir=tmp_path, size=16)
    check_splits(s, 256)
    assert s.image_shape == (16, 16) and s.n_classes == 2
    assert (len(s.train_x) + len(s.val_x), len(s.test_x)) == (12, 4)        # train + valid partitions / test
    assert s.test_y.tolist() == [sm for sm, p in zip(smiling, partition) if p == 2]
    every = torch.cat([s.train_x, s.val_x, s.test_x])
    assert float((every.max(1).values - every.min(1).values).max()) < 0.05  # the white bands were cropped away
    male_split = load_dataset("celeba", data_dir=tmp_path, size=16, attribute="Male")
    assert sorted(torch.cat([male_split.train_y, male_split.val_y]).tolist()) == [0] * 9 + [1] * 3
    rgb = load_dataset("celeba:rgb=true,size=8", data_dir=tmp_path)
    assert rgb.input_dim == 3 * 8 * 8 and rgb.image_shape == (3, 8, 8)
    red = rgb.test_x.view(-1, 3, 8, 8)[:, 0].mean(dim=(1, 2)) * 255
    expected = [30 * (i % 4) for i, p in enumerate(partition) if p == 2]
    np.testing.assert_allclose(red.numpy(), expected, atol=6)               # JPEG is lossy
    with pytest.raises(UserError, match="unknown attribute 'Happy'.*Smiling"):
        load_dataset("celeba", data_dir=tmp_path, size=16, attribute="Happy")


# ----------------------------------------------------------------------------- offline
def no_network(monkeypatch):
    """Network 'up' for the probe, but every torchvision fetch raises URLError; counts attempts."""
    import torchvision.datasets.celeba as tv_celeba
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist
    attempts = []

    def fail(*args, **kwargs):
        attempts.append(args)
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: True)
    for module, name in ((tv_mnist, "download_and_extract_archive"), (tv_cifar, "download_and_extract_archive"),
                         (tv_celeba, "download_file_from_google_drive")):
        monkeypatch.setattr(module, name, fail)
    return attempts


@pytest.mark.parametrize("name, folder, files", [
    ("mnist", "MNIST/raw", data.IDX_FILES),
    ("fashion-mnist", "FashionMNIST/raw", data.IDX_FILES),
    ("cifar10", "", ("cifar-10-python.tar.gz", "cifar-10-batches-py")),
    ("celeba", "celeba", ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")),
])
def test_offline_without_files_names_the_files_and_the_directory(tmp_path, monkeypatch, name, folder, files):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    attempts = no_network(monkeypatch)
    timeout_before = socket.getdefaulttimeout()
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(name, data_dir=tmp_path / "root")
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message and attempts
    assert message.startswith(f"{name}: files not found and download failed (offline?): put ")
    assert str(tmp_path / "root" / folder) in message and all(f in message for f in files)
    assert "--data-dir" in message and "TUNEKAE_DATA" in message
    assert socket.getdefaulttimeout() == timeout_before


def test_an_explicit_data_dir_is_the_only_place_looked_at(tmp_path, monkeypatch):
    # a typo in --data-dir must not silently read another copy of the data
    debian = tmp_path / "debian"
    debian.mkdir()
    for f in data.IDX_FILES:
        (debian / f"{f}.gz").write_bytes(b"")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "typo")
    message = str(info.value)
    assert str(tmp_path / "typo" / "FashionMNIST" / "raw") in message
    assert f"a copy is in {debian}, used when --data-dir is left out" in message
    # without --data-dir ($TUNEKAE_DATA or the default root), that copy is found
    monkeypatch.setenv("TUNEKAE_DATA", str(tmp_path / "empty"))
    assert data._locate(data.DATASETS["fashion-mnist"], data.data_root(), {}, explicit=False) == str(debian)


def test_unreachable_host_fails_at_once_without_trying_to_download(tmp_path, monkeypatch):
    attempts = no_network(monkeypatch)
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=3.0: False)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)
    assert not attempts and time.perf_counter() - t0 < 2.0


def test_env_var_and_default_data_root(tmp_path, monkeypatch):
    assert data.data_root() == (tmp_path / "cache" / "tunekae" / "data").resolve()
    monkeypatch.setenv("TUNEKAE_DATA", str(tmp_path / "elsewhere"))
    assert data.data_root() == (tmp_path / "elsewhere").resolve()
    assert data.data_root(tmp_path / "given") == (tmp_path / "given").resolve()
