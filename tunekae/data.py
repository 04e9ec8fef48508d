"""Datasets by name, as float32 tensors (N, D) in [0, 1] with int64 labels, split three ways.

    splits = load_dataset("digits", seed=0)                 # embedded: no files, no network
    splits = load_dataset("fashion-mnist", data_dir="~/data")
    splits = load_dataset("cifar10:rgb=true")               # options in the name (for the CLI) ...
    splits = load_dataset("celeba", size=32, attribute="Male")   # ... or as keywords

test is the official test split (fixed, seeded with 0 where a dataset has none); val is carved
from the training split with `seed` (stratified), so tuning never sees the test split.
Torchvision datasets are read from a data root (`data_dir`, else $TUNEKAE_DATA, else
~/.cache/tunekae/data), downloaded there when online, and otherwise name the files to put there
(DatasetUnavailable). An explicit data_dir is the only place looked at; without one,
Fashion-MNIST is also read from Debian's dataset-fashion-mnist. Every dataset is decoded once
per machine and cached as a .pt file under ~/.cache/tunekae/decoded (XDG_CACHE_HOME
respected), keyed by name, options and source folder.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import sys
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit
from urllib.request import getproxies

import numpy as np
import torch

from .errors import UserError

CACHE_VERSION = 1
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")   # Debian's dataset-fashion-mnist
DOWNLOAD_TIMEOUT_S = 10.0   # per socket operation while torchvision downloads: offline must fail fast
PROBE_TIMEOUT_S = 3.0
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CELEBA_FILES = ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt")
RETRY_HINT = "(or pass --data-dir / set TUNEKAE_DATA)"


class DatasetUnavailable(UserError):
    """The dataset's files are absent (or corrupted) and could not be downloaded; the message
    names the files and the directory to put them in."""


@dataclass(repr=False)
class Splits:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor   # x float32 (N, D) in [0, 1]; y int64 (N,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, ...] | None   # (H, W) or (C, H, W); None for point data (moons)
    n_classes: int
    # regression (function:NAME): float targets (N, outputs); None: the target is the input itself
    train_t: torch.Tensor | None = None
    val_t: torch.Tensor | None = None
    test_t: torch.Tensor | None = None

    @property
    def input_dim(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def regression(self) -> bool:
        return self.train_t is not None

    @property
    def output_dim(self) -> int:
        return int(self.train_t.shape[1]) if self.regression else self.input_dim

    def target(self, split: str) -> torch.Tensor:
        """What a model should output for `split`'s inputs: its targets, or the inputs themselves."""
        t = getattr(self, f"{split}_t")
        return t if t is not None else self.xy(split)[0]

    def xy(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of 'train', 'val' or 'test'."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test; got {split!r}")
        return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")

    def to(self, device) -> "Splits":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def __repr__(self) -> str:
        return (f"Splits({self.name}: train {len(self.train_x)}, val {len(self.val_x)}, test {len(self.test_x)}, "
                f"dim {self.input_dim}, image {self.image_shape}, {self.n_classes} classes)")


@dataclass
class Raw:
    """A dataset as decoded once (and cached): the training pool, from which val is carved per
    seed, and the fixed test split. x is uint8 (or float) and x / divisor lies in [0, 1]."""
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    image_shape: tuple[int, ...] | None
    n_classes: int
    divisor: float = 1.0
    label_names: list[str] = field(default_factory=list)   # celeba: y holds every attribute


@dataclass(frozen=True)
class Dataset:
    """A registry entry. `locate(root, opts)` says where the files are (None: absent), `decode`
    turns them into a Raw, `download(root)` asks torchvision to fetch them (probing `url` first)."""
    name: str
    description: str
    options: dict
    decode: Callable[[str, dict], Raw]
    locate: Callable[[Path, dict], str | None] = lambda root, opts: "embedded"
    download: Callable[[Path], object] | None = None
    url: str = ""
    archive: str = ""                      # a local archive torchvision can extract offline
    needed: Callable[[Path], str] = lambda root: ""
    decode_options: tuple[str, ...] | None = None    # options that change the decoded arrays (None: all)
    finish: Callable[[Raw, dict], Raw] | None = None  # e.g. pick the label column
    limits: dict = field(default_factory=dict)        # option -> (lowest, highest) allowed

    def __call__(self, **kwargs) -> Splits:
        return load_dataset(self.name, **kwargs)


# ----------------------------------------------------------------------------- embedded datasets
def _fixed_test_split(x: np.ndarray, y: np.ndarray, **raw) -> Raw:
    """20% stratified test split with a FIXED random_state: the same test set for every seed."""
    from sklearn.model_selection import train_test_split
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    return Raw(x[tr], y[tr], x[te], y[te], **raw)


def _decode_digits(source: str, opts: dict) -> Raw:
    from sklearn.datasets import load_digits
    d = load_digits()
    return _fixed_test_split(d.data.astype(np.uint8), d.target.astype(np.int64),
                             image_shape=(8, 8), n_classes=10, divisor=16.0)


def _decode_moons(source: str, opts: dict) -> Raw:
    from sklearn.datasets import make_moons
    x, y = make_moons(n_samples=opts["n_samples"], noise=opts["noise"], random_state=0)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = ((x - lo) / (hi - lo)).astype(np.float32)   # min-max per coordinate: sigmoid outputs fit
    return _fixed_test_split(x, y.astype(np.int64), image_shape=None, n_classes=2)


# ----------------------------------------------------------------------------- MNIST family (IDX)
def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format, uint8 payload), plain or .gz, as a numpy array."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise DatasetUnavailable(f"{path} is not an IDX file of unsigned bytes; replace it with the original")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _all_in(folder: Path, files) -> str | None:
    """str(folder) when every file is there (an IDX file may also be its .gz), else None."""
    ok = all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in files)
    return str(folder) if ok else None


def _decode_idx(source: str, opts: dict) -> Raw:
    d = Path(source)
    tx, ty, sx, sy = (read_idx(d / f if (d / f).exists() else d / f"{f}.gz") for f in IDX_FILES)
    return Raw(tx.reshape(len(tx), -1), ty.astype(np.int64), sx.reshape(len(sx), -1), sy.astype(np.int64),
               image_shape=tuple(tx.shape[1:]), n_classes=10, divisor=255.0)


def _mnist_like(name: str, cls_name: str, description: str, extra: Callable[[], list[Path]] = list) -> Dataset:
    def locate(root: Path, opts: dict) -> str | None:
        for folder in [root / cls_name / "raw", *extra()]:
            if _all_in(folder, IDX_FILES):
                return str(folder)
        return None

    def download(root: Path):
        import torchvision.datasets as tvd
        getattr(tvd, cls_name)(str(root), train=True, download=True)   # fetches all four files

    url = {"MNIST": "https://ossci-datasets.s3.amazonaws.com/mnist/",        # torchvision's first mirrors
           "FashionMNIST": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"}[cls_name]
    files = ", ".join(f"{f}.gz" for f in IDX_FILES)
    hint = RETRY_HINT if name != "fashion-mnist" else \
        "(or pass --data-dir / set TUNEKAE_DATA, or install Debian's dataset-fashion-mnist)"
    return Dataset(name, description, {}, _decode_idx, locate, download, url,
                   needed=lambda root: f"put {files} in {root / cls_name / 'raw'} {hint}")


# ----------------------------------------------------------------------------- CIFAR-10
def _decode_cifar(source: str, opts: dict) -> Raw:
    from torchvision.datasets import CIFAR10   # checks the md5 of every batch

    def flat(data: np.ndarray) -> np.ndarray:   # (N, 32, 32, 3) uint8 -> (N, D)
        if opts["rgb"]:
            return np.ascontiguousarray(data.transpose(0, 3, 1, 2)).reshape(len(data), -1)
        gray = data.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)   # ITU-R 601 luma
        return np.rint(gray).clip(0, 255).astype(np.uint8).reshape(len(data), -1)

    root = str(Path(source).parent)
    tr, te = CIFAR10(root, train=True), CIFAR10(root, train=False)
    return Raw(flat(tr.data), np.asarray(tr.targets, np.int64), flat(te.data), np.asarray(te.targets, np.int64),
               image_shape=(3, 32, 32) if opts["rgb"] else (32, 32), n_classes=10, divisor=255.0)


def _cifar_download(root: Path):
    from torchvision.datasets import CIFAR10
    CIFAR10(str(root), train=True, download=True)


# ----------------------------------------------------------------------------- CelebA
def _decode_celeba(source: str, opts: dict) -> Raw:
    """Aligned 178x218 faces, center-cropped to 178x178 and resized to size x size; y holds all
    40 attributes (0/1) so that choosing another attribute needs no second decode."""
    from PIL import Image
    from torchvision.datasets import CelebA   # checks the md5 of the annotation files
    folder = Path(source)
    ds = CelebA(str(folder.parent), split="all", target_type="attr")
    with open(folder / "list_eval_partition.txt") as f:
        part = dict(line.split()[:2] for line in f if line.strip())
    size, rgb = opts["size"], opts["rgb"]
    x = np.empty((len(ds.filename), (3 if rgb else 1) * size * size), np.uint8)
    print(f"tunekae: celeba: decoding {len(x):,} images once (cached afterwards)", file=sys.stderr)
    for i, name in enumerate(ds.filename):
        with Image.open(folder / "img_align_celeba" / name) as img:
            w, h = img.size
            s = min(w, h)
            left, top = int(round((w - s) / 2)), int(round((h - s) / 2))
            img = img.convert("RGB" if rgb else "L").crop((left, top, left + s, top + s))
            a = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
        x[i] = a.transpose(2, 0, 1).reshape(-1) if rgb else a.reshape(-1)
    y = ds.attr.numpy().astype(np.int64)
    test = np.array([part[n] == "2" for n in ds.filename])   # official partition: 0 train, 1 valid, 2 test
    return Raw(x[~test], y[~test], x[test], y[test], image_shape=(3, size, size) if rgb else (size, size),
               n_classes=2, divisor=255.0, label_names=[n for n in ds.attr_names if n])


def _celeba_label(raw: Raw, opts: dict) -> Raw:
    if opts["attribute"] not in raw.label_names:
        raise UserError(f"celeba: unknown attribute {opts['attribute']!r}; choose one of {', '.join(raw.label_names)}")
    j = raw.label_names.index(opts["attribute"])
    return replace(raw, train_y=raw.train_y[:, j], test_y=raw.test_y[:, j])


def _celeba_locate(root: Path, opts: dict) -> str | None:
    folder = root / "celeba"
    return _all_in(folder, CELEBA_FILES) if (folder / "img_align_celeba").is_dir() else None


def _celeba_download(root: Path):
    from torchvision.datasets import CelebA   # needs gdown and Google Drive's good will
    CelebA(str(root), split="all", download=True)


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("digits", "8x8 handwritten digits, 1,797 images (scikit-learn; embedded, no files)", {}, _decode_digits),
    Dataset("moons", "two interleaving half-moons, 2-D points in [0,1] (scikit-learn; embedded)",
            {"n_samples": 2000, "noise": 0.1}, _decode_moons, limits={"n_samples": (20, 10**8), "noise": (0, 10)}),
    _mnist_like("mnist", "MNIST", "28x28 handwritten digits, 60k/10k (torchvision)"),
    _mnist_like("fashion-mnist", "FashionMNIST", "28x28 clothing, 60k/10k (torchvision or Debian's files)",
                extra=lambda: [DEBIAN_FASHION_MNIST]),
    Dataset("cifar10", "32x32 photos, 50k/10k, grayscale (rgb=true: 3072 dims) (torchvision)", {"rgb": False},
            _decode_cifar, lambda root, opts: _all_in(root / "cifar-10-batches-py", CIFAR_FILES),
            _cifar_download, "https://www.cs.toronto.edu/", "cifar-10-python.tar.gz",
            needed=lambda root: f"put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/ with "
                                f"{', '.join(CIFAR_FILES)}) in {root} {RETRY_HINT}"),
    Dataset("celeba", "aligned faces cropped to 178x178 and resized (size=64), grayscale (rgb=true), "
                      "labels: one attribute (attribute=Smiling) (torchvision)",
            {"size": 64, "rgb": False, "attribute": "Smiling"}, _decode_celeba, _celeba_locate, _celeba_download,
            "https://drive.google.com/", "celeba/img_align_celeba.zip",
            needed=lambda root: f"put img_align_celeba/ (the extracted img_align_celeba.zip) and "
                                f"{', '.join(CELEBA_FILES)} in {root / 'celeba'} {RETRY_HINT}",
            decode_options=("size", "rgb"), finish=_celeba_label, limits={"size": (4, 178)}),
]}
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}


def describe_datasets() -> str:
    """One line per dataset with its options and defaults (for --dataset help and `describe`)."""
    lines = []
    for d in DATASETS.values():
        opts = ", ".join(f"{k}={v}" for k, v in d.options.items())
        lines.append(f"  {d.name:<14} {d.description}" + (f"; options: {opts}" if opts else ""))
    from .functions import OPTIONS, describe_formulas
    options = ",".join(f"{k}={v}" for k, v in OPTIONS.items())
    lines.append(f"  function:NAME  function fitting (regression), pykan's create_dataset; options: "
                 f"function:NAME,{options}\n{describe_formulas()}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- locations and cache
def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunekae"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where torchvision datasets live: data_dir, else $TUNEKAE_DATA, else ~/.cache/tunekae/data."""
    chosen = data_dir or os.environ.get("TUNEKAE_DATA") or cache_root() / "data"
    return Path(chosen).expanduser().resolve()


def _read_cache(path: Path, key: dict) -> Raw | None:
    try:
        blob = torch.load(path, weights_only=True)
        if blob.get("key") != key:
            return None
    except Exception:   # absent, torn or foreign: decode again (and overwrite it)
        return None
    arrays = {k: blob[k].numpy() for k in ("train_x", "train_y", "test_x", "test_y")}
    shape = tuple(blob["image_shape"]) if blob["image_shape"] is not None else None
    return Raw(**arrays, image_shape=shape, n_classes=blob["n_classes"], divisor=blob["divisor"],
               label_names=list(blob["label_names"]))


def _write_cache(path: Path, key: dict, raw: Raw) -> None:
    """Atomic (tmp file + os.replace): several processes may load the same dataset at once."""
    blob = {"key": key, "image_shape": raw.image_shape, "n_classes": raw.n_classes, "divisor": raw.divisor,
            "label_names": raw.label_names,
            **{k: torch.from_numpy(np.require(getattr(raw, k), requirements=["C", "W"]))
               for k in ("train_x", "train_y", "test_x", "test_y")}}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError as e:   # a read-only cache only costs speed
        print(f"tunekae: could not cache {path.name}: {e}", file=sys.stderr)
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _fingerprint(source: str) -> list:
    """Name, size and mtime of the entries of the source folder: replaced files redo the decode."""
    if not (os.path.isabs(source) and os.path.isdir(source)):   # "embedded"
        return []
    return sorted([e.name, e.stat().st_size, int(e.stat().st_mtime)] for e in os.scandir(source))


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def _fetch(spec: Dataset, root: Path) -> bool:
    """Let torchvision download the files (or extract a local archive); False when that fails."""
    if spec.download is None:
        return False
    # Probe first (a black-holed network would make torchvision wait on every file and mirror),
    # unless a local archive only needs extracting or a proxy decides what is reachable.
    if not (spec.archive and (root / spec.archive).exists()) and not getproxies() and not _reachable(spec.url):
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        print(f"tunekae: {spec.name}: files not in {root}; trying torchvision's download", file=sys.stderr)
        spec.download(root)
        return True
    except Exception as e:   # RuntimeError, URLError, OSError, timeouts, ImportError (gdown): all 'failed'
        reason = (str(e).strip().splitlines() or [""])[0]
        print(f"tunekae: {spec.name}: download failed: {type(e).__name__}: {reason}", file=sys.stderr)
        return False
    finally:
        socket.setdefaulttimeout(old)


# ----------------------------------------------------------------------------- options and splits
def _coerce(name: str, key: str, value, default):
    """An option value (maybe a string from 'name:key=value') as the type of its default."""
    try:
        if isinstance(default, bool) and isinstance(value, str):
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError
            return value.lower() in ("1", "true", "yes", "on")
        return type(default)(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: option {key} must be a {type(default).__name__}; got {value!r}") from None


def parse_name(spec: str) -> tuple[str, dict]:
    """'cifar10:rgb=true,foo=1' -> ('cifar10', {'rgb': 'true', 'foo': '1'})."""
    name, _, rest = spec.strip().partition(":")
    opts = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"dataset option {item!r} must look like key=value (e.g. cifar10:rgb=true)")
        opts[key.strip()] = value.strip()
    name = name.lower().replace("_", "-")
    return ALIASES.get(name, ALIASES.get(name.replace("-", "_"), name)), opts


def _carve_val(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified when every class can be (else plain random) train/val indices."""
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(y))
    try:
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=y)
    except ValueError:   # a class with one member, or fewer val samples than classes
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed)
    return np.sort(tr), np.sort(va)


def load_dataset(name: str, *, data_dir=None, seed: int = 0, val_fraction: float = 0.1, **options) -> Splits:
    """Splits of the named dataset (see DATASETS / describe_datasets()); options as keywords or
    in the name ('cifar10:rgb=true'). Raises UserError for unknown names or options and
    DatasetUnavailable when the files are absent and cannot be downloaded. `function:NAME` is a
    function-fitting dataset (tunekae/functions.py): drawn, not read, and fixed by its own seed."""
    if name.strip().lower().startswith("function:"):
        from .functions import load_function
        return load_function(name.strip()[len("function:"):])
    key_name, name_opts = parse_name(name)
    spec = DATASETS.get(key_name)
    if spec is None:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    given = {**name_opts, **options}
    unknown = sorted(set(given) - set(spec.options))
    if unknown:
        valid = ", ".join(f"{k} (default {v})" for k, v in spec.options.items()) or "none"
        raise UserError(f"{spec.name}: unknown option {', '.join(unknown)}; options: {valid}")
    opts = {k: _coerce(spec.name, k, given.get(k, v), v) for k, v in spec.options.items()}
    for k, (lo, hi) in spec.limits.items():
        if not lo <= opts[k] <= hi:
            raise UserError(f"{spec.name}: option {k} must be between {lo} and {hi}; got {opts[k]}")
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")

    root, explicit = data_root(data_dir), data_dir is not None
    source = _locate(spec, root, opts, explicit)
    if source is None and _fetch(spec, root):
        source = _locate(spec, root, opts, explicit)
    if source is None:
        elsewhere = spec.locate(root, opts) if explicit else None
        also = f"; a copy is in {elsewhere}, used when --data-dir is left out" if elsewhere else ""
        raise DatasetUnavailable(f"{spec.name}: files not found and download failed (offline?): "
                                 f"{spec.needed(root)}{also}")

    decode_opts = {k: opts[k] for k in (spec.decode_options if spec.decode_options is not None else opts)}
    key = {"name": spec.name, "options": decode_opts, "source": source, "files": _fingerprint(source),
           "version": CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "decoded" / f"{spec.name}-{digest}.pt"
    raw = _read_cache(path, key)
    if raw is None:
        try:
            raw = spec.decode(source, decode_opts)
        except RuntimeError as e:   # torchvision: "Dataset not found or corrupted" (md5 mismatch)
            if spec.download is None:
                raise
            raise DatasetUnavailable(f"{spec.name}: files in {source} are incomplete or corrupted (torchvision's "
                                     f"md5 check failed): {spec.needed(root)}") from e
        _write_cache(path, key, raw)
    if spec.finish:
        raw = spec.finish(raw, opts)
    return _make_splits(spec.name, raw, seed, val_fraction)


def _locate(spec: Dataset, root: Path, opts: dict, explicit: bool) -> str | None:
    """Where the dataset's files are. A data root given explicitly (--data-dir) is the only place
    looked at: a typo in it must not silently read another copy (Debian's Fashion-MNIST)."""
    source = spec.locate(root, opts)
    if explicit and source is not None and spec.download is not None and not Path(source).is_relative_to(root):
        return None
    return source


def _make_splits(name: str, raw: Raw, seed: int, val_fraction: float) -> Splits:
    tr, va = _carve_val(raw.train_y, val_fraction, seed)

    def x(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.require(a, requirements=["C", "W"])).to(torch.float32)
        return t.div_(raw.divisor) if raw.divisor != 1 else t

    def y(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.require(a, requirements=["C", "W"])).to(torch.int64)

    return Splits(name, x(raw.train_x[tr]), y(raw.train_y[tr]), x(raw.train_x[va]), y(raw.train_y[va]),
                  x(raw.test_x), y(raw.test_y), raw.image_shape, raw.n_classes)


def subset_train(splits: Splits, n: int | None, seed: int) -> Splits:
    """The splits with n of the training images (None: all), drawn with `seed`: the first n of
    one seeded permutation, so a smaller training set is part of every larger one (learning
    curves compare like with like). Validation and test are untouched."""
    if n is None or n >= len(splits.train_x):
        return splits
    keep = torch.randperm(len(splits.train_x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    parts = {f"train_{k}": getattr(splits, f"train_{k}")[keep] for k in ("x", "y", "t")
             if getattr(splits, f"train_{k}") is not None}
    return replace(splits, **parts)
