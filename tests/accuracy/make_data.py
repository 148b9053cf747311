#!/usr/bin/env python3
"""Writes the accuracy suite's data sets: OUT/<set>_train.csv and OUT/<set>_test.csv.

    python3 tests/accuracy/make_data.py OUT [--sets ties,outliers,...] [--train N] [--test N]

NumPy only, fixed seeds: the same command writes the same bytes on every machine (every
value is written with a fixed format). Each file has a header row and the target in the
last column, as the guests read it (docs/algorithm.md §1). `--train` / `--test` override the
row counts of the synthetic sets (defaults below); `diabetes` is the repository's
data/diabetes_{train,test}.csv, copied as is.

The sets (each tests one way real tables differ from the diabetes sample):

* ties        integer columns with many ties and more than 256 distinct values: uniform and
              skewed integers 0-999, rounded log-normal, Poisson counts, years 1950-2020;
              the target is a nonlinear function of them plus Gaussian noise.
* outliers    Friedman #1 (10 features, 5 of them noise, noise sd 1); 1% of the training
              targets are shifted by +1e7 (a faulty import) and an 11th column `source`
              marks those rows (1; 0 elsewhere); test rows are clean (source 0). Every
              forest isolates the bad rows at the root, so the test MSE measures what a
              target range of 1e7 leaves of the precision of targets around 0-30.
* outliers-random  (not in the default list) the same without the `source` column: the bad
              rows are unpredictable, and the test MSE (~3e10) is the contamination of
              clean cells by leaves holding a shifted row, i.e. how finely a forest can cut
              single rows out; exact-threshold forests cut finer than any 256-bin forest.
* heavy-tail  continuous and integer features; training targets carry Student-t noise
              (df 2.5: finite variance, a few extreme values: |noise| reaches ~100-200 with
              sd ~2.2); test targets carry Gaussian noise (sd 1), so the test MSE measures
              how well the forest recovers the signal despite the heavy training tail.
* zero-heavy  zero-inflated counts and amounts (80-95% zeros), one constant column and one
              near-constant column (a single row differs).
* onehot      four numeric features plus three one-hot blocks (5, 12 and 20 levels);
              run with --max-features sqrt.
* diabetes    the repository's diabetes split (sanity row).
"""
import argparse
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TRAIN_ROWS = 20000
TEST_ROWS = 5000


def ties(rng, n):
    x0 = rng.integers(0, 1000, n)                                      # uniform 0-999
    x1 = np.minimum(999, np.floor(rng.exponential(120.0, n)))          # skewed 0-999
    x2 = np.round(rng.lognormal(3.0, 1.0, n))                          # rounded log-normal
    x3 = rng.poisson(4.0, n)                                           # small counts
    x4 = np.maximum(1950, 2020 - np.floor(rng.exponential(18.0, n)))   # years, recent heavy
    x5 = rng.poisson(60.0, n)                                          # larger counts
    f = (4.0 * np.sin(2.0 * np.pi * x0 / 250.0)
         + 0.012 * np.minimum(x1, 250.0) + 3.0 * (x1 > 250)
         + 2.0 * np.log1p(x2)
         + 1.5 * np.sqrt(x3)
         + 0.12 * (x4 - 1950.0) + 3.0 * (x4 >= 1990)
         + 2.0 * (x3 >= 5) * (x4 >= 2000)
         + 0.05 * np.abs(x5 - 60.0))
    y = f + rng.normal(0.0, 1.0, n)
    X = np.column_stack([x0, x1, x2, x3, x4, x5]).astype(np.float64)
    return ["uniform_int", "skewed_int", "lognormal_int", "poisson4", "year", "poisson60"], X, y


def friedman1(rng, n):
    X = rng.uniform(0.0, 1.0, (n, 10))
    f = (10.0 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20.0 * (X[:, 2] - 0.5) ** 2
         + 10.0 * X[:, 3] + 5.0 * X[:, 4])
    return [f"x{i}" for i in range(10)], X, f + rng.normal(0.0, 1.0, n)


def heavy_tail_features(rng, n):
    x0 = rng.uniform(0.0, 1.0, n)
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.uniform(-2.0, 2.0, n)
    x3 = rng.poisson(10.0, n).astype(np.float64)
    x4 = rng.integers(0, 100, n).astype(np.float64)
    x5 = rng.lognormal(0.0, 1.0, n)
    f = (6.0 * x0 + 3.0 * np.sin(2.0 * x1) + 1.5 * x2 ** 2 + 0.3 * x3
         + 2.0 * (x4 >= 50) + 2.0 * np.log(x5))
    return ["u01", "normal", "u22", "poisson10", "int100", "lognormal"], np.column_stack(
        [x0, x1, x2, x3, x4, x5]), f


def zero_heavy(rng, n):
    cols, names = [], []
    # zero-inflated counts: 80%, 90%, 95% zeros
    for i, pz in enumerate((0.80, 0.90, 0.95)):
        cols.append(np.where(rng.uniform(size=n) < pz, 0.0, 1.0 + rng.poisson(3.0, n)))
        names.append(f"count{i}")
    # zero-inflated amounts (money, two decimals): 85%, 92% zeros
    for i, pz in enumerate((0.85, 0.92)):
        cols.append(np.where(rng.uniform(size=n) < pz, 0.0, np.round(rng.lognormal(4.0, 1.2, n), 2)))
        names.append(f"amount{i}")
    cols.append(rng.uniform(0.0, 1.0, n))           # one dense column
    names.append("dense")
    cols.append(np.full(n, 7.0))                    # constant
    names.append("constant")
    near = np.zeros(n)
    near[0] = 1.0                                   # near-constant: a single row differs
    cols.append(near)
    names.append("near_constant")
    X = np.column_stack(cols)
    c0, c1, c2, a0, a1, d = (X[:, i] for i in range(6))
    f = (3.0 * np.sqrt(c0) + 2.0 * (c1 > 0) + 1.0 * c2
         + 1.5 * np.log1p(a0) + 4.0 * (a1 > 100.0) + 0.02 * np.minimum(a1, 100.0)
         + 3.0 * d + 2.0 * (c0 > 0) * (a0 > 0))
    return names, X, f + rng.normal(0.0, 1.0, n)


def onehot(rng, n):
    num = rng.normal(0.0, 1.0, (n, 4))
    names = [f"num{i}" for i in range(4)]
    blocks = [num]
    f = 3.0 * np.sin(num[:, 0]) + 2.0 * num[:, 1] + num[:, 2] * num[:, 3]
    for b, levels in enumerate((5, 12, 20)):
        p = rng.dirichlet(np.full(levels, 2.0))             # uneven level frequencies
        cat = rng.choice(levels, size=n, p=p)
        effect = rng.normal(0.0, 2.0, levels)
        f = f + effect[cat]
        blocks.append(np.eye(levels)[cat])
        names += [f"cat{b}_{k}" for k in range(levels)]
    return names, np.column_stack(blocks), f + rng.normal(0.0, 1.0, n)


def write(path, names, X, y):
    # Features with 9 significant digits (every value the guests see is an f32, and scikit-learn's
    # trees also read f32), targets exactly (repr of the f64).
    with open(path, "w") as f:
        f.write(",".join(names + ["target"]) + "\n")
        for row, t in zip(X, y):
            f.write(",".join("%.9g" % v for v in row) + "," + repr(float(t)) + "\n")


def make(name, out, n_train, n_test):
    n = n_train + n_test
    if name == "diabetes":
        for part in ("train", "test"):
            shutil.copyfile(os.path.join(REPO, "data", f"diabetes_{part}.csv"),
                            os.path.join(out, f"diabetes_{part}.csv"))
        return
    seed = {"ties": 101, "outliers": 102, "outliers-random": 102, "heavy-tail": 103, "zero-heavy": 104, "onehot": 105}[name]
    rng = np.random.default_rng(seed)
    if name == "ties":
        names, X, y = ties(rng, n)
    elif name in ("outliers", "outliers-random"):
        names, X, y = friedman1(rng, n)
        bad = rng.choice(n_train, size=max(1, n_train // 100), replace=False)
        y[bad] += 1e7
        if name == "outliers":
            source = np.zeros(n)
            source[bad] = 1.0
            names, X = names + ["source"], np.column_stack([X, source])
    elif name == "heavy-tail":
        names, X, f = heavy_tail_features(rng, n)
        y = np.empty(n)
        y[:n_train] = f[:n_train] + rng.standard_t(2.5, n_train)
        y[n_train:] = f[n_train:] + rng.normal(0.0, 1.0, n_test)
    elif name == "zero-heavy":
        names, X, y = zero_heavy(rng, n)
    elif name == "onehot":
        names, X, y = onehot(rng, n)
    else:
        raise SystemExit(f"unknown set {name}")
    write(os.path.join(out, f"{name}_train.csv"), names, X[:n_train], y[:n_train])
    write(os.path.join(out, f"{name}_test.csv"), names, X[n_train:], y[n_train:])


SETS = ["ties", "outliers", "heavy-tail", "zero-heavy", "onehot", "diabetes"]  # the default list


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--train", type=int, default=TRAIN_ROWS)
    ap.add_argument("--test", type=int, default=TEST_ROWS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.sets.split(","):
        make(name, args.out, args.train, args.test)
        print(f"wrote {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
