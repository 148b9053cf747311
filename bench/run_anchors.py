#!/usr/bin/env python3
"""The benchmark anchors: scikit-learn RandomForestRegressor and XGBoost XGBRFRegressor,
trained and evaluated on the same files, with the same parameters, as our guests.

Runs standalone (no Rust needed), e.g. on a GPU machine next to the host binary:

    python3 bench/run_anchors.py --train T.npy --test V.npy --trees 100 --max-depth 16 \
        --repeats 3 --device auto --out anchors.json

Data: `.npy` (2-D, C order, f4 or f8) or CSV with a header row; the last column is the
target (docs/algorithm.md section 1). Features are cast to float32 (as the guests do),
targets stay float64.

Each anchor runs in its own child process (this script with --worker), so its peak RSS
(resource.getrusage) is its own: data, model and library together, like the host's.
Times are wall-clock seconds around fit() and predict() only (file loading excluded, as
the guests' train_ms/predict_ms exclude it); the first fit of XGBoost on CUDA is preceded
by an untimed warm-up fit on 1000 rows so CUDA context creation is not counted (the host
opens its device before the guest starts, outside train_ms as well).

Output: one JSON object (to --out, or stdout) with a `results` list, one entry per anchor:
{"system", "device", "params", "train_ms": [...], "predict_ms": [...], "mse": [...],
 "peak_rss_bytes", "peak_gpu_bytes" (or null), "gpu_mem_method", "error" (or null)}.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time


def load(path):
    import numpy as np

    if path.endswith(".npy"):
        data = np.load(path)
    else:
        data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if data.ndim != 2 or data.shape[1] < 2:
        raise SystemExit(f"error: {path}: expected a 2-D table with features and a target column")
    X = np.ascontiguousarray(data[:, :-1], dtype=np.float32)
    y = np.asarray(data[:, -1], dtype=np.float64)
    del data
    return X, y


def gpu_present():
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        return out.returncode == 0 and "GPU" in out.stdout
    except (OSError, subprocess.SubprocessError):
        return False


def xgboost_cuda():
    """Whether the installed XGBoost was built with CUDA (the xgboost-cpu wheel is not)."""
    try:
        import xgboost

        return bool(xgboost.build_info().get("USE_CUDA"))
    except Exception:
        return False


class GpuMemPoller:
    """Samples nvidia-smi every 0.2 s: this process's used memory if nvidia-smi lists it,
    else the device's used memory above the level seen before the anchor started."""

    def __init__(self):
        self.peak_pid = 0
        self.peak_delta = 0
        self.base = self._device_used()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _query(args):
        try:
            out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10)
            return out.stdout if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    def _device_used(self):
        first = self._query(["--query-gpu=memory.used"]).strip().splitlines()
        try:
            return int(first[0]) * 1024 * 1024 if first else None
        except ValueError:
            return None

    def _sample(self):
        for line in self._query(["--query-compute-apps=pid,used_memory"]).splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0] == str(os.getpid()) and parts[1].isdigit():
                self.peak_pid = max(self.peak_pid, int(parts[1]) * 1024 * 1024)
        used = self._device_used()
        if used is not None and self.base is not None:
            self.peak_delta = max(self.peak_delta, used - self.base)

    def _run(self):
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def result(self):
        if self.peak_pid:
            return self.peak_pid, "nvidia-smi per-process used_memory"
        if self.base is not None:
            return self.peak_delta, "nvidia-smi device memory.used above the pre-run level"
        return None, "n/a"


def make_model(system, a, device):
    if system == "sklearn":
        from sklearn.ensemble import RandomForestRegressor

        params = dict(n_estimators=a.trees, max_depth=a.max_depth or None, max_features=1.0,
                      min_samples_split=2, min_samples_leaf=1, bootstrap=True,
                      n_jobs=-1, random_state=a.seed)
        return RandomForestRegressor(**params), params
    if system == "xgboost":
        from xgboost import XGBRFRegressor

        params = dict(n_estimators=a.trees, tree_method="hist", max_bin=a.bins,
                      subsample=a.subsample, colsample_bynode=1.0, learning_rate=1.0,
                      reg_lambda=1e-5, min_child_weight=1.0, n_jobs=-1,
                      random_state=a.seed, device=device)
        if a.max_depth:
            params.update(max_depth=a.max_depth)
        else:  # unlimited depth needs leaf-wise growth in XGBoost
            params.update(max_depth=0, grow_policy="lossguide", max_leaves=0)
        return XGBRFRegressor(**params), params
    raise SystemExit(f"error: unknown anchor `{system}`")


def worker(a):
    """Runs one anchor `a.repeats` times in this process; prints one JSON line."""
    import numpy as np

    device = "cpu"
    if a.worker == "xgboost" and (a.device == "cuda" or (a.device == "auto" and xgboost_cuda() and gpu_present())):
        device = "cuda"
    X, y = load(a.train)
    Xt, yt = load(a.test)
    result = {"system": a.worker, "device": device, "train_rows": int(X.shape[0]),
              "test_rows": int(Xt.shape[0]), "features": int(X.shape[1]),
              "train_ms": [], "predict_ms": [], "mse": [], "error": None}
    poller = GpuMemPoller() if device == "cuda" else None
    try:
        if poller:
            poller.__enter__()
        if device == "cuda":
            warm, _ = make_model(a.worker, argparse.Namespace(**{**vars(a), "trees": 1}), device)
            warm.fit(X[:1000], y[:1000])
            del warm
        predict_input = Xt
        cupy = None
        if device == "cuda":
            try:
                import cupy  # noqa: F401  (predicting from device memory avoids a fallback)
            except ImportError:
                cupy = None
        for _ in range(a.repeats):
            model, params = make_model(a.worker, a, device)
            t0 = time.perf_counter()
            model.fit(X, y)
            t1 = time.perf_counter()
            if cupy is not None:
                predict_input = cupy.asarray(Xt)
            pred = model.predict(predict_input)
            if cupy is not None and not isinstance(pred, np.ndarray):
                pred = cupy.asnumpy(pred)
            t2 = time.perf_counter()
            pred = np.asarray(pred, dtype=np.float64)
            result["train_ms"].append((t1 - t0) * 1e3)
            result["predict_ms"].append((t2 - t1) * 1e3)
            result["mse"].append(float(np.mean((pred - yt) ** 2)))
            result["params"] = params
            del model, pred
            print(f"anchors: {a.worker} ({device}): train {result['train_ms'][-1]:.1f} ms, "
                  f"predict {result['predict_ms'][-1]:.1f} ms, mse {result['mse'][-1]:.6g}",
                  file=sys.stderr, flush=True)
    finally:
        if poller:
            poller.__exit__(None, None, None)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if poller:
        result["peak_gpu_bytes"], result["gpu_mem_method"] = poller.result()
    else:
        result["peak_gpu_bytes"], result["gpu_mem_method"] = None, "n/a (CPU)"
    print(json.dumps(result))


def versions():
    out = {"python": platform.python_version()}
    for mod in ("numpy", "sklearn", "xgboost"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as e:  # report, don't fail: the anchor itself will say why
            out[mod] = f"unavailable: {type(e).__name__}: {e}"
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--trees", type=int, default=200)
    p.add_argument("--max-depth", type=int, default=16, help="0 = unlimited")
    p.add_argument("--bins", type=int, default=256, help="XGBoost max_bin (the guests' --bins)")
    p.add_argument("--subsample", type=float, default=0.632,
                   help="XGBoost row subsample per tree (0.632 = expected distinct share of a bootstrap)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="XGBoost's device (scikit-learn is CPU only); auto = cuda if nvidia-smi sees a GPU "
                        "and XGBoost was built with CUDA")
    p.add_argument("--anchors", default="sklearn,xgboost", help="comma-separated: sklearn, xgboost")
    p.add_argument("--timeout", type=float, default=None, help="seconds per anchor")
    p.add_argument("--out", default=None, help="write the JSON here instead of stdout")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.repeats < 1 or a.trees < 1 or a.max_depth < 0 or not 2 <= a.bins <= 256:
        p.error("--repeats and --trees must be >= 1, --max-depth >= 0, --bins in 2..=256")
    if a.worker:
        return worker(a)

    results = []
    for system in [s for s in a.anchors.split(",") if s]:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", system,
               *[x for k, v in vars(a).items() if k not in ("worker", "anchors", "out", "timeout")
                 for x in (f"--{k.replace('_', '-')}", str(v))]]
        print(f"anchors: running {system} ({a.repeats} repeats)", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=a.timeout)
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if proc.returncode == 0 and line.startswith("{"):
                results.append(json.loads(line))
            else:
                results.append({"system": system, "error": f"worker exited with status {proc.returncode}"})
        except subprocess.TimeoutExpired:
            results.append({"system": system, "error": f"timed out after {a.timeout} s"})
    for r in results:
        for k in ("train_ms", "predict_ms", "mse"):
            if r.get(k):
                r[f"median_{k}"] = statistics.median(r[k])
    doc = {"versions": versions(), "cpus": os.cpu_count(), "machine": platform.node(),
           "train": a.train, "test": a.test, "repeats": a.repeats, "results": results}
    text = json.dumps(doc, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if all(not r.get("error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
