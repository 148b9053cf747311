#!/usr/bin/env python3
"""scikit-learn's reference test MSE on the accuracy suite's data sets (make_data.py).

    python3 tests/accuracy/sklearn_ref.py DIR [SET[:MAX_FEATURES] ...] [--seeds 0,1,2] [--binned]

For each set, reads DIR/<set>_train.csv and DIR/<set>_test.csv (header row, target last)
and fits RandomForestRegressor(n_estimators=200, max_depth=16, max_features=M,
random_state=s) for every seed s, M being 1.0 (all features) unless the set is given as
SET:sqrt (or another value: an integer count, a fraction with a '.', sqrt, log2). Prints one
JSON object on stdout:

    {"sklearn": "1.9.1", "numpy": "...", "trees": 200, "max_depth": 16, "binned": false,
     "sets": {"ties": {"max_features": "1.0", "train_rows": N, "test_rows": N,
                       "features": N, "seeds": [0, 1, 2], "mse": [...], "mean": F,
                       "min": F, "max": F, "fit_s": F}, ...}}

(`fit_s`: wall seconds for all seeds' fit + predict.) With no SET the default list is used.

`--binned` is a diagnostic: every feature is first replaced by its bin index under
256-bin tie-aware binning (docs/algorithm.md v2 §4, computed here in NumPy), which estimates
what any 256-bin histogram forest can reach on the set.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

DEFAULT = ["ties:1.0", "outliers:1.0", "heavy-tail:1.0", "zero-heavy:1.0", "onehot:sqrt", "diabetes:1.0"]


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return data[:, :-1], data[:, -1]


def max_features(text):
    if text in ("sqrt", "log2"):
        return text
    if "." in text or "e" in text.lower():
        return float(text)
    return int(text)


def greedy_edges(col, max_bins=256):
    """Tie-aware greedy edges of docs/algorithm.md v2 §4 (f32 midpoints between runs)."""
    v, c = np.unique(col.astype(np.float32), return_counts=True)
    d = len(v)
    mids = ((v[:-1].astype(np.float64) + v[1:].astype(np.float64)) * 0.5).astype(np.float32)
    mids = np.where(mids >= v[1:], v[:-1], mids)
    if d <= max_bins:
        return mids
    edges, left, rest, cur = [], max_bins, int(c.sum()), 0
    for i in range(d - 1):
        cur += int(c[i])
        if left == 1:
            break
        if d - 1 - i <= left - 1 or (2 * cur + int(c[i + 1])) * left >= 2 * rest:
            edges.append(mids[i])
            rest -= cur
            cur = 0
            left -= 1
    return np.array(edges, dtype=np.float32)


def binned(Xtr, Xte):
    out_tr, out_te = np.empty_like(Xtr), np.empty_like(Xte)
    for j in range(Xtr.shape[1]):
        e = greedy_edges(Xtr[:, j])
        # bin(x) = number of edges < x
        out_tr[:, j] = np.searchsorted(e, Xtr[:, j].astype(np.float32), side="left")
        out_te[:, j] = np.searchsorted(e, Xte[:, j].astype(np.float32), side="left")
    return out_tr, out_te


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("sets", nargs="*", default=DEFAULT)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--max-depth", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=-1)
    ap.add_argument("--binned", action="store_true")
    args = ap.parse_intermixed_args()

    import sklearn
    from sklearn.ensemble import RandomForestRegressor

    seeds = [int(s) for s in args.seeds.split(",")]
    result = {"sklearn": sklearn.__version__, "numpy": np.__version__, "trees": args.trees,
              "max_depth": args.max_depth, "binned": args.binned, "sets": {}}
    for spec in args.sets:
        name, _, mf = spec.partition(":")
        mf = mf or "1.0"
        Xtr, ytr = load(os.path.join(args.dir, f"{name}_train.csv"))
        Xte, yte = load(os.path.join(args.dir, f"{name}_test.csv"))
        if args.binned:
            Xtr, Xte = binned(Xtr, Xte)
        start = time.perf_counter()
        mses = []
        for s in seeds:
            rf = RandomForestRegressor(n_estimators=args.trees, max_depth=args.max_depth,
                                       max_features=max_features(mf), random_state=s, n_jobs=args.jobs)
            rf.fit(Xtr, ytr)
            mses.append(float(np.mean((rf.predict(Xte) - yte) ** 2)))
        elapsed = time.perf_counter() - start
        result["sets"][name] = {
            "max_features": mf, "train_rows": int(len(ytr)), "test_rows": int(len(yte)),
            "features": int(Xtr.shape[1]), "seeds": seeds, "mse": mses,
            "mean": float(np.mean(mses)), "min": min(mses), "max": max(mses), "fit_s": round(elapsed, 3),
        }
        print(f"sklearn {name}: mean {np.mean(mses):.6g} (min {min(mses):.6g}, max {max(mses):.6g}), "
              f"{elapsed:.1f} s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
