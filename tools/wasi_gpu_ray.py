#!/usr/bin/env python3
"""Train one forest in shards on a Ray cluster, one GPU per shard, and merge the shards into
the model that one `train` would have written, byte for byte (docs/algorithm.md §11,
docs/multi-gpu.md).

    python3 tools/wasi_gpu_ray.py --host target/release/wasmtime-gpu-host \\
        --guest target/wasm/guest-rust.wasm --train data.npy --model model.bin \\
        --trees 200 --shards 4 --backend cuda [--address auto] [-- GUEST TRAIN OPTIONS...]

Each shard is a Ray task (`num_gpus=1` for the cuda and wgpu backends, so Ray gives it its own
GPU through CUDA_VISIBLE_DEVICES, which the CUDA backend obeys and Vulkan does not: with wgpu,
the shards on one node all open its first hardware adapter; `num_cpus=1` for the cpu backend)
that runs
`wasmtime-gpu-host run ... -- train --trees T --trees-from A --trees-to B` in a private
directory on whichever node Ray picks. The host binary, the guest component and (unless
`--shared-path`) the training file travel to the task through Ray's object store; the task
sends its partial forest back the same way. The driver then runs the guest's `merge` on the
CPU backend where it runs. Options after `--` go to `train` unchanged (e.g. `--max-depth 16
--max-features sqrt`); the tree range and `--model` are the driver's.

Prints one JSON line: the shards (range, node, backend, device, seconds), the merged model's
size and `model_checksum`, and the wall time. Exit 0 on success, 1 when a shard or the merge
failed (the guest's message is shown), 2 on bad usage.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def shard_ranges(trees: int, shards: int):
    """Contiguous ranges [a, b) covering 0..trees, sizes differing by at most one."""
    base, extra = divmod(trees, shards)
    out, a = [], 0
    for i in range(shards):
        b = a + base + (1 if i < extra else 0)
        out.append((a, b))
        a = b
    return out


def run_host(host, workdir, backend, guest, guest_args, timeout, data_dir=None):
    """Runs the guest under the host with `workdir` as its directory (guest path `.`) and, when
    given, `data_dir` read-only as guest path `data`."""
    dirs = ["--dir-rw", f"{workdir}::."] + (["--dir", f"{data_dir}::data"] if data_dir else [])
    cmd = [host, "run", "--backend", backend] + dirs + [guest, "--"] + guest_args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def train_shard(host_bytes, guest_bytes, data, data_name, backend, trees, a, b, extra, timeout):
    """The body of one Ray task: returns (partial forest bytes, report dict)."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="wasi-gpu-shard-") as d:
        host = os.path.join(d, "wasmtime-gpu-host")
        with open(host, "wb") as f:
            f.write(host_bytes)
        os.chmod(host, 0o755)
        guest = os.path.join(d, "guest.wasm")
        with open(guest, "wb") as f:
            f.write(guest_bytes)
        work = os.path.join(d, "work")
        os.mkdir(work)
        data_dir = None
        if isinstance(data, bytes):
            with open(os.path.join(work, data_name), "wb") as f:
                f.write(data)
            train = data_name
        else:  # a path every node can read (--shared-path): its directory, read-only
            data_dir, train = os.path.dirname(os.path.abspath(data)), "data/" + data_name
        args = ["train", "--train", train, "--trees", str(trees), "--trees-from", str(a),
                "--trees-to", str(b), "--model", "part.bin", "--json", "--quiet"] + extra
        p = run_host(host, work, backend, guest, args, timeout, data_dir)
        if p.returncode != 0:
            raise RuntimeError(f"shard {a}..{b} on {socket.gethostname()}: exit {p.returncode}: "
                               f"{p.stderr.strip() or p.stdout.strip()}")
        line = json.loads(p.stdout.strip().splitlines()[-1])
        with open(os.path.join(work, "part.bin"), "rb") as f:
            part = f.read()
    report = {"trees": [a, b], "node": socket.gethostname(), "backend": line["backend"],
              "device": line["device"], "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "train_ms": line["train_ms"], "seconds": round(time.time() - start, 3)}
    return part, report


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True, help="the wasmtime-gpu-host binary")
    ap.add_argument("--guest", required=True, help="a guest component (guest-rust.wasm or guest-cpp.wasm)")
    ap.add_argument("--train", required=True, help="training data (.csv or .npy)")
    ap.add_argument("--model", required=True, help="where to write the merged model")
    ap.add_argument("--trees", type=int, default=200, help="trees in the whole forest (default 200)")
    ap.add_argument("--shards", type=int, required=True, help="number of shards (Ray tasks)")
    ap.add_argument("--backend", default="cuda", choices=["cuda", "wgpu", "cpu"],
                    help="backend of every shard (default cuda); cuda and wgpu take one GPU per shard")
    ap.add_argument("--address", default=None,
                    help="Ray cluster to join (`auto`, `ray://HOST:10001`); default: a local Ray instance")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    ap.add_argument("--num-gpus", type=int, default=None,
                    help="GPUs the local Ray instance declares (default: those Ray detects)")
    ap.add_argument("--shared-path", action="store_true",
                    help="the --train path is readable at the same path on every node: do not ship the data")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per shard (default 3600)")
    ap.add_argument("extra", nargs="*", help="after --: options for the guest's train")
    args = ap.parse_args(argv)
    if args.shards < 1 or args.trees < args.shards:
        ap.error(f"--shards must be between 1 and --trees ({args.trees})")
    for opt in ("--trees", "--trees-from", "--trees-to", "--model", "--train", "--receipt"):
        if any(e == opt or e.startswith(opt + "=") for e in args.extra):
            ap.error(f"{opt} is set by the driver; do not pass it after --")

    # Ray's own default since 2.x: do not touch CUDA_VISIBLE_DEVICES of tasks without GPUs.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import logging

    import ray  # imported here so that --help works without Ray

    start = time.time()
    init = {"address": args.address, "log_to_driver": False, "include_dashboard": False, "logging_level": logging.WARNING}
    if args.address is None:
        init.update(num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    ray.init(**{k: v for k, v in init.items() if v is not None or k == "address"})
    try:
        with open(args.host, "rb") as f:
            host_ref = ray.put(f.read())
        with open(args.guest, "rb") as f:
            guest_ref = ray.put(f.read())
        if args.shared_path:
            data = os.path.abspath(args.train)
        else:
            with open(args.train, "rb") as f:
                data = ray.put(f.read())
        resources = {"num_gpus": 1} if args.backend in ("cuda", "wgpu") else {"num_cpus": 1}
        task = ray.remote(max_retries=0, **resources)(train_shard)
        ranges = shard_ranges(args.trees, args.shards)
        refs = [task.remote(host_ref, guest_ref, data, os.path.basename(args.train), args.backend,
                            args.trees, a, b, args.extra, args.timeout) for a, b in ranges]
        try:
            results = ray.get(refs)
        except Exception as e:  # a shard's RuntimeError arrives wrapped by Ray
            cause = getattr(e, "cause", None) or e
            print(f"error: {cause}", file=sys.stderr)
            return 1
    finally:
        ray.shutdown()

    with tempfile.TemporaryDirectory(prefix="wasi-gpu-merge-") as d:
        names = []
        for (a, b), (part, _) in zip(ranges, results):
            names.append(f"part-{a}-{b}.bin")
            with open(os.path.join(d, names[-1]), "wb") as f:
                f.write(part)
        p = run_host(args.host, d, "cpu", os.path.abspath(args.guest),
                     ["merge", "--model", "model.bin", "--json", "--quiet"] + names, args.timeout)
        if p.returncode != 0:
            print(f"error: merge: {p.stderr.strip() or p.stdout.strip()}", file=sys.stderr)
            return 1
        merged = json.loads(p.stdout.strip().splitlines()[-1])
        tmp = args.model + ".tmp"
        shutil.copyfile(os.path.join(d, "model.bin"), tmp)
        os.replace(tmp, args.model)
    print(json.dumps({"model": args.model, "model_bytes": os.path.getsize(args.model),
                      "model_checksum": merged["model_checksum"], "trees": args.trees,
                      "shards": [r for _, r in results], "wall_s": round(time.time() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
