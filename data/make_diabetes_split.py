"""Writes data/diabetes_{train,test}.csv: scikit-learn's diabetes data set split with
train_test_split(test_size=0.2, random_state=42), header row, target in the last column.

Also prints scikit-learn's RandomForestRegressor(n_estimators=200, max_depth=16) test MSE
on that split (the reference recorded in docs/results.md).

    python3 data/make_diabetes_split.py            # needs scikit-learn and numpy
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

here = os.path.dirname(os.path.abspath(__file__))
data = load_diabetes()
X, y = data.data, data.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
header = ",".join(data.feature_names + ["target"])
for name, Xs, ys in (("train", X_train, y_train), ("test", X_test, y_test)):
    rows = np.column_stack([Xs, ys])
    path = os.path.join(here, f"diabetes_{name}.csv")
    with open(path, "w") as f:
        f.write(header + "\n")
        for r in rows:
            f.write(",".join(repr(float(v)) for v in r) + "\n")
    print(f"wrote {path}: {len(rows)} rows", file=sys.stderr)

mses = []
for seed in range(5):
    rf = RandomForestRegressor(n_estimators=200, max_depth=16, random_state=seed, n_jobs=-1)
    rf.fit(X_train, y_train)
    mses.append(mean_squared_error(y_test, rf.predict(X_test)))
print(f"sklearn RandomForestRegressor(200, max_depth=16) test MSE over seeds 0-4: "
      f"mean {np.mean(mses):.2f}, min {min(mses):.2f}, max {max(mses):.2f}")
