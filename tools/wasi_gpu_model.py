#!/usr/bin/env python3
"""Read a wasi:gpu forest (`model.bin`, format version 2, docs/algorithm.md §10) into NumPy
arrays and predict with them: no Rust, no WebAssembly, only Python 3 and NumPy.

    python3 tools/wasi_gpu_model.py MODEL.bin DATA.csv [--out predictions.txt]

DATA.csv has a header and the model's feature columns, optionally followed by the target
(then the MSE is printed). Predictions are written one `%.17g` per line, exactly the bytes the
guests' `predict --out` writes: the forest is walked with float32 features and thresholds,
leaf values are summed as exact integers, and the sum is turned into a prediction with the
guests' f64 operations in their order (docs/algorithm.md §9).

To serve a model elsewhere, tools/wasi_gpu_export.py exports it to ONNX or Treelite with this
reader (docs/export.md).
"""

import hashlib
import struct
import sys
from dataclasses import dataclass

import numpy as np

MAGIC = b"WGPURF\x00\x01"
NONE = 0xFFFFFFFF
_M64 = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                           0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M64, 31) * _P1) & _M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 (xxHash's specification), the model file's checksum kind 2."""
    try:
        import xxhash  # the C implementation, when installed
        return xxhash.xxh64_intdigest(data, seed)
    except ImportError:
        pass
    n, p = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        lanes = struct.unpack_from("<%dQ" % (n // 32 * 4), data)
        for i in range(0, len(lanes), 4):
            v = [_round(v[k], lanes[i + k]) for k in range(4)]
        p = n // 32 * 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for k in range(4):
            h = ((h ^ _round(0, v[k])) * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while n - p >= 8:
        h ^= _round(0, struct.unpack_from("<Q", data, p)[0])
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        p += 8
    if n - p >= 4:
        h ^= (struct.unpack_from("<I", data, p)[0] * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    return h ^ (h >> 32)


@dataclass
class Model:
    features: int
    seed: int
    y_min: float
    scale: float
    # One entry per tree: arrays over its nodes.
    feature: list  # uint32, NONE for leaves
    threshold: list  # float32
    left: list  # uint32
    right: list  # uint32
    count: list  # uint32
    value: list  # uint64, 32.32 fixed point
    checksum: str  # as the guests' `model_checksum` reports it


def load(path: str) -> Model:
    """Reads and checks a model file; raises ValueError naming what is wrong."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise ValueError(f"{path}: not a model file (wrong magic)")
    version, task, kind = struct.unpack_from("<3I", data, 8)
    if version != 2 or task != 0:
        raise ValueError(f"{path}: format version {version} / task {task}; this reader reads version 2 regression")
    if kind == 2:
        body, stored = data[:-8], struct.unpack_from("<Q", data, len(data) - 8)[0]
        if xxh64(body) != stored:
            raise ValueError(f"{path}: checksum mismatch")
        checksum = f"xxh64:{stored:016x}"
    elif kind == 1:
        body = data[:-32]
        if hashlib.sha256(body).digest() != data[-32:]:
            raise ValueError(f"{path}: checksum mismatch")
        checksum = "sha256:" + data[-32:].hex()
    else:
        raise ValueError(f"{path}: checksum kind {kind} is not supported")
    features, trees = struct.unpack_from("<2I", data, 20)
    (seed,) = struct.unpack_from("<Q", data, 28)
    outputs = struct.unpack_from("<I", data, 60)[0]
    y_min, scale = struct.unpack_from("<2d", data, 64)
    labels = struct.unpack_from("<I", data, 80)[0]
    if outputs != 1 or labels != 0:
        raise ValueError(f"{path}: {outputs} outputs / {labels} label bytes; this reader reads regression")
    node = np.dtype([("feature", "<u4"), ("threshold", "<f4"), ("left", "<u4"), ("right", "<u4"),
                     ("flags", "<u4"), ("count", "<u4"), ("value", "<u8")])
    m = Model(features, seed, y_min, scale, [], [], [], [], [], [], checksum)
    at = 84
    for t in range(trees):
        (n,) = struct.unpack_from("<I", body, at)
        at += 4
        nodes = np.frombuffer(body, dtype=node, count=n, offset=at)
        at += n * node.itemsize
        leaf = nodes["feature"] == NONE
        inner = ~leaf
        idx = np.arange(n)
        if n == 0 or (nodes["flags"] != 0).any() or (nodes["feature"][inner] >= features).any() \
                or (nodes["left"][inner] <= idx[inner]).any() or (nodes["right"][inner] <= idx[inner]).any() \
                or (nodes["left"][inner] >= n).any() or (nodes["right"][inner] >= n).any():
            raise ValueError(f"{path}: tree {t} is malformed")
        m.feature.append(nodes["feature"].copy())
        m.threshold.append(nodes["threshold"].copy())
        m.left.append(nodes["left"].copy())
        m.right.append(nodes["right"].copy())
        m.count.append(nodes["count"].copy())
        m.value.append(nodes["value"].copy())
    if at != len(body):
        raise ValueError(f"{path}: {len(body) - at} unexpected bytes after the last tree")
    return m


def predict(m: Model, x: np.ndarray) -> np.ndarray:
    """Predictions (float64) for the rows of `x` (rows x features, any float type)."""
    x = np.asarray(x, dtype=np.float64).astype(np.float32)
    x[x == 0] = 0.0  # -0.0 is stored as +0.0, as the guests store features
    rows = np.arange(x.shape[0])
    total = [0] * x.shape[0]  # exact integer sums (up to 128 bits)
    for t in range(len(m.feature)):
        at = np.zeros(x.shape[0], dtype=np.int64)
        while True:
            f = m.feature[t][at]
            inner = f != NONE
            if not inner.any():
                break
            go_left = x[rows[inner], f[inner]] <= m.threshold[t][at[inner]]
            at[inner] = np.where(go_left, m.left[t][at[inner]], m.right[t][at[inner]])
        for r, v in enumerate(m.value[t][at].tolist()):
            total[r] += v
    trees = float(len(m.feature))
    return np.array([m.y_min + ((float(s) / 4294967296.0) / trees) / m.scale for s in total])


def read_csv(path: str, features: int):
    """(x, y or None) of a CSV file with a header; the last column is the target when the
    file has features + 1 columns."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    if table.shape[1] == features + 1:
        return table[:, :features], table[:, features]
    if table.shape[1] == features:
        return table, None
    raise ValueError(f"{path}: {table.shape[1]} columns; the model has {features} features")


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--out"):
        print("usage: " + __doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    model_path, data_path = argv[0], argv[1]
    m = load(model_path)
    x, y = read_csv(data_path, m.features)
    pred = predict(m, x)
    print(f"model: {model_path} ({len(m.feature)} trees, {m.checksum})")
    if y is not None:
        print(f"test MSE: {np.mean((pred - y) ** 2):.6f}")
    if len(argv) == 4:
        with open(argv[3], "w") as f:
            f.writelines("%.17g\n" % v for v in pred)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
