#!/usr/bin/env python3
"""Export a wasi:gpu forest (`model.bin`, format version 2, docs/algorithm.md §10) to ONNX or
Treelite, so that it can be served outside the sandbox (docs/export.md).

    python3 tools/wasi_gpu_export.py --format onnx|treelite MODEL.bin OUT [--check DATA.csv]

* `onnx`: one `ai.onnx.ml` TreeEnsembleRegressor (opset 3 of `ai.onnx.ml`, opset 13 of the
  default domain, IR version 8). Input `X`: float32 [N, features]; it is cast to double inside
  the graph, so that the thresholds (`nodes_values_as_tensor`), the leaf values
  (`target_weights_as_tensor`) and the base value (`base_values_as_tensor`) are doubles.
  Output `Y`: float32 [N, 1], the operator's output type.
* `treelite`: a Treelite checkpoint (`treelite.Model.serialize`, float64 thresholds and leaf
  outputs), built with `treelite.model_builder`; load it with `treelite.Model.deserialize`.

Both keep our split rule exactly: `x <= threshold` goes to the left child, NaN goes right
(ONNX `BRANCH_LEQ`, missing values do not track the true branch; Treelite `<=`,
`default_left = False`). Leaf values are the 32.32 fixed-point means turned into target
units, `(value / 2^32) / scale`, in double; the forest averages the trees and adds `y_min`.
Features must be given as float32, as the guests store them: feed `x.astype(np.float32)`.

`--check DATA.csv` loads the written file in onnxruntime or treelite, predicts DATA.csv (a
header, the feature columns, optionally the target) and compares with this repository's
reader (tools/wasi_gpu_model.py, the guests' `predict --out` exactly); it prints the maximum
relative difference and fails when it exceeds 1e-5.

The model is read and verified by tools/wasi_gpu_model.py. A model that cannot be represented
exactly (non-finite thresholds, a node that is not reachable from its tree's root or is the
child of two nodes, a leaf value above the fixed-point range, predictions beyond float32 for
ONNX, more features than Treelite indexes) is refused with a message. Exit code 0 on success,
1 on a bad model or a failed check, 2 on bad usage.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ next to the reader in the source tree
import wasi_gpu_model  # noqa: E402  (the reader next to this file)

NONE = wasi_gpu_model.NONE
T = (1 << 32) - 1  # the target grid's top (docs/algorithm.md §5)
ONNX_OPSET = 13  # default domain: Cast
ONNX_ML_OPSET = 3  # ai.onnx.ml: TreeEnsembleRegressor with the *_as_tensor (double) attributes
ONNX_IR_VERSION = 8  # the IR version of ONNX 1.11, the release that brought ai.onnx.ml opset 3
CHECK_TOLERANCE = 1e-5
SPLIT_RULE = "x <= threshold goes to the left child (float32 x, float32 threshold); NaN goes right"


class ExportError(Exception):
    """The model cannot be represented exactly in the requested format."""


class Forest:
    """The reader's Model with per-leaf values in target units and the checks that every
    exporter needs. Node ids inside a tree are the model file's (0 is the root; every other
    node is the child of exactly one node with a lower id)."""

    def __init__(self, m):
        self.model = m
        self.features = m.features
        self.trees = len(m.feature)
        self.y_min = float(m.y_min)
        self.scale = float(m.scale)
        if self.trees == 0:
            raise ExportError("the model has no trees")
        if self.features == 0:
            raise ExportError("the model has no features")
        if not (np.isfinite(self.y_min) and np.isfinite(self.scale) and self.scale > 0):
            raise ExportError(f"y_min {self.y_min!r} / scale {self.scale!r}: the scale must be finite and positive")
        self.weight = []  # per tree: float64 leaf values in target units (0 for inner nodes)
        lo, hi = np.inf, -np.inf
        for t in range(self.trees):
            feature, threshold = m.feature[t], m.threshold[t]
            left, right, value = m.left[t], m.right[t], m.value[t]
            n = len(feature)
            inner = feature != NONE
            # A tree: every node but the root is the child of exactly one node (children come
            # after their parent, which the reader checked, so this also makes every node
            # reachable from the root and the ids 0..n-1 those of a tree).
            children = np.sort(np.concatenate([left[inner], right[inner]]).astype(np.int64))
            if len(children) != n - 1 or (children != np.arange(1, n)).any():
                counts = np.bincount(children, minlength=n)
                bad = int(np.nonzero(counts[1:] != 1)[0][0]) + 1
                what = "not reachable from the root" if counts[bad] == 0 else f"the child of {counts[bad]} nodes"
                raise ExportError(f"tree {t}: node {bad} is {what}; only trees (as training writes them) can be exported")
            if not np.isfinite(threshold[inner]).all():
                bad = int(np.nonzero(inner & ~np.isfinite(threshold))[0][0])
                raise ExportError(f"tree {t}: node {bad} has the threshold {float(threshold[bad])!r}; "
                                  "only finite thresholds are exported")
            leaf = ~inner
            if (value[leaf] > T << 32).any():
                bad = int(np.nonzero(leaf & (value > T << 32))[0][0])
                raise ExportError(f"tree {t}: leaf {bad} has the value {int(value[bad])}, "
                                  "above the fixed-point range (2^32 - 1) * 2^32")
            w = np.where(leaf, (value.astype(np.float64) / 4294967296.0) / self.scale, 0.0)
            self.weight.append(w)
            lo = min(lo, float(w[leaf].min()))
            hi = max(hi, float(w[leaf].max()))
        # Every prediction is y_min + an average of leaf values: it lies in [p_lo, p_hi].
        self.p_lo, self.p_hi = self.y_min + lo, self.y_min + hi
        if not (np.isfinite(self.p_lo) and np.isfinite(self.p_hi)):
            raise ExportError(f"predictions span [{self.p_lo!r}, {self.p_hi!r}], beyond double")

    def nodes(self):
        return sum(len(f) for f in self.model.feature)

    def provenance(self):
        """What the exported file records about its source."""
        return {
            "wasi_gpu.source": "model.bin format version 2 (docs/algorithm.md §10)",
            "wasi_gpu.model_checksum": self.model.checksum,
            "wasi_gpu.trees": str(self.trees),
            "wasi_gpu.features": str(self.features),
            "wasi_gpu.seed": str(self.model.seed),
            "wasi_gpu.split_rule": SPLIT_RULE,
            "wasi_gpu.input": "float32 features (x.astype(np.float32)), as the guests store them",
            "wasi_gpu.prediction": "y_min + mean over trees of (leaf value / 2^32) / scale",
        }


def to_onnx(f: Forest):
    """The forest as an ONNX ModelProto (see the module docstring)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise ExportError(f"the onnx export needs the `onnx` package ({e}); pip install onnx") from None
    f32 = np.finfo(np.float32)
    worst = max(abs(f.p_lo), abs(f.p_hi))
    if worst > float(f32.max):
        raise ExportError(f"predictions reach {worst!r}, beyond float32, the output type of TreeEnsembleRegressor")
    if 0 < worst < float(f32.tiny):
        raise ExportError(f"every prediction is below {float(f32.tiny)!r} in magnitude: float32, the output type of "
                          "TreeEnsembleRegressor, holds them only as subnormals, with less than 1e-5 relative precision")
    m = f.model
    tree_ids, node_ids, feature_ids, modes, values, true_ids, false_ids = [], [], [], [], [], [], []
    target_tree, target_node, target_weight = [], [], []
    for t in range(f.trees):
        feature = m.feature[t]
        n = len(feature)
        inner = feature != NONE
        ids = np.arange(n, dtype=np.int64)
        tree_ids.append(np.full(n, t, dtype=np.int64))
        node_ids.append(ids)
        feature_ids.append(np.where(inner, feature, 0).astype(np.int64))
        modes.append(np.where(inner, "BRANCH_LEQ", "LEAF"))
        values.append(np.where(inner, m.threshold[t].astype(np.float64), 0.0))
        true_ids.append(np.where(inner, m.left[t], 0).astype(np.int64))
        false_ids.append(np.where(inner, m.right[t], 0).astype(np.int64))
        target_tree.append(np.full(int((~inner).sum()), t, dtype=np.int64))
        target_node.append(ids[~inner])
        target_weight.append(f.weight[t][~inner])
    cat = np.concatenate
    nodes = len(cat(node_ids))
    regressor = helper.make_node(
        "TreeEnsembleRegressor", ["Xd"], ["Y"], domain="ai.onnx.ml", name="forest",
        n_targets=1, aggregate_function="AVERAGE", post_transform="NONE",
        nodes_treeids=cat(tree_ids).tolist(), nodes_nodeids=cat(node_ids).tolist(),
        nodes_featureids=cat(feature_ids).tolist(), nodes_modes=cat(modes).tolist(),
        nodes_values_as_tensor=numpy_helper.from_array(cat(values), "nodes_values"),
        nodes_truenodeids=cat(true_ids).tolist(), nodes_falsenodeids=cat(false_ids).tolist(),
        nodes_missing_value_tracks_true=[0] * nodes,
        target_ids=[0] * len(cat(target_node)), target_treeids=cat(target_tree).tolist(),
        target_nodeids=cat(target_node).tolist(),
        target_weights_as_tensor=numpy_helper.from_array(cat(target_weight), "target_weights"),
        base_values_as_tensor=numpy_helper.from_array(np.array([f.y_min], dtype=np.float64), "base_values"),
    )
    cast = helper.make_node("Cast", ["X"], ["Xd"], to=TensorProto.DOUBLE, name="to_double")
    graph = helper.make_graph(
        [cast, regressor], "wasi_gpu_forest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", f.features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        doc_string=f"wasi:gpu random forest, {f.trees} trees. {SPLIT_RULE}. The float32 input is cast to double "
                   "(exactly) so that thresholds, leaf values and their sum are doubles; Y is float32.")
    model = helper.make_model(
        graph, producer_name="wasi_gpu_export", producer_version="1", ir_version=ONNX_IR_VERSION,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ONNX_ML_OPSET)],
        doc_string="exported by tools/wasi_gpu_export.py (docs/export.md)")
    helper.set_model_props(model, {**f.provenance(), "wasi_gpu.opset": f"ai.onnx.ml {ONNX_ML_OPSET}, ai.onnx {ONNX_OPSET}"})
    if model.ByteSize() >= 2**31:
        raise ExportError(f"the ONNX model would be {model.ByteSize()} bytes; protobuf files are limited to 2 GiB")
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the ONNX model fails onnx.checker: {e}") from None
    return model


def to_treelite(f: Forest):
    """The forest as a treelite.Model (see the module docstring)."""
    try:
        from treelite.core import TreeliteError
        from treelite import model_builder
    except ImportError as e:
        raise ExportError(f"the treelite export needs the `treelite` package ({e}); pip install treelite") from None
    try:
        return _build_treelite(f, model_builder)
    except TreeliteError as e:
        raise ExportError(f"treelite refused the model: {e}") from None


def _build_treelite(f: Forest, mb):
    if f.features > 2**31 - 1:
        raise ExportError(f"{f.features} features: Treelite indexes features with int32")
    if max(len(x) for x in f.model.feature) > 2**31 - 1:
        raise ExportError("a tree has 2^31 nodes or more: Treelite's model builder keys nodes with int")
    builder = mb.ModelBuilder(
        threshold_type="float64", leaf_output_type="float64",
        metadata=mb.Metadata(num_feature=f.features, task_type="kRegressor", average_tree_output=True,
                             num_target=1, num_class=[1], leaf_vector_shape=(1, 1)),
        tree_annotation=mb.TreeAnnotation(num_tree=f.trees, target_id=[0] * f.trees, class_id=[0] * f.trees),
        postprocessor=mb.PostProcessorFunc(name="identity"), base_scores=[f.y_min],
        attributes={**f.provenance(), "wasi_gpu.treelite_types": "float64 thresholds and leaf outputs"})
    m = f.model
    for t in range(f.trees):
        feature = m.feature[t].tolist()
        threshold = m.threshold[t].astype(np.float64).tolist()
        left, right, count = m.left[t].tolist(), m.right[t].tolist(), m.count[t].tolist()
        weight = f.weight[t].tolist()
        builder.start_tree()
        for k in range(len(feature)):
            builder.start_node(k)
            if feature[k] == NONE:
                builder.leaf(weight[k])
            else:
                builder.numerical_test(feature[k], threshold[k], default_left=False, opname="<=",
                                       left_child_key=left[k], right_child_key=right[k])
            builder.sum_hess(float(count[k]))  # the node's weighted (bootstrap) row count
            builder.end_node()
        builder.end_tree()
    return builder.commit()


def write_atomic(path, data: bytes = None, writer=None):
    """Writes to PATH.tmp and renames it over PATH, so a failed export leaves no half file."""
    tmp = path + ".tmp"
    try:
        if writer is not None:
            writer(tmp)
        else:
            with open(tmp, "wb") as out:
                out.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def predict_exported(fmt, path, x):
    """Predictions (float64) of the exported file at PATH for float32 features X."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(["Y"], {"X": x})[0][:, 0].astype(np.float64)
    import treelite
    return treelite.gtil.predict(treelite.Model.deserialize(path), x).reshape(len(x)).astype(np.float64)


def relative_difference(got, want):
    """|got - want| / |want| per row (0 where both are 0)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    diff = np.abs(got - want)
    return np.where(diff == 0, 0.0, diff / np.maximum(np.abs(want), np.finfo(np.float64).tiny))


def main(argv):
    parser = argparse.ArgumentParser(
        prog="wasi_gpu_export.py", description="Export a wasi:gpu model.bin to ONNX or Treelite (docs/export.md).")
    parser.add_argument("--format", required=True, choices=["onnx", "treelite"])
    parser.add_argument("model", metavar="MODEL.bin")
    parser.add_argument("out", metavar="OUT")
    parser.add_argument("--check", metavar="DATA.csv",
                        help="predict DATA.csv with the written file and with tools/wasi_gpu_model.py; "
                             f"fail when a row differs by more than {CHECK_TOLERANCE:g} relative")
    args = parser.parse_args(argv)  # exits with 2 on bad usage
    try:
        forest = Forest(wasi_gpu_model.load(args.model))
        if args.format == "onnx":
            write_atomic(args.out, to_onnx(forest).SerializeToString())
            what = f"ONNX (ai.onnx.ml opset {ONNX_ML_OPSET} TreeEnsembleRegressor, ai.onnx opset {ONNX_OPSET})"
        else:
            model = to_treelite(forest)
            write_atomic(args.out, writer=model.serialize)
            what = "Treelite checkpoint (float64)"
    except (OSError, ValueError, ExportError) as e:
        print(f"error: {args.model}: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {what}, {forest.trees} trees, {forest.nodes()} nodes, {forest.features} features, "
          f"from {forest.model.checksum}")
    if args.check:
        try:
            x, _ = wasi_gpu_model.read_csv(args.check, forest.features)
            want = wasi_gpu_model.predict(forest.model, x)
            got = predict_exported(args.format, args.out, x.astype(np.float32))
        except (OSError, ValueError, ImportError) as e:
            print(f"error: --check {args.check}: {e}", file=sys.stderr)
            return 1
        rel = relative_difference(got, want)
        row = int(np.argmax(rel)) if len(rel) else 0
        worst = float(rel[row]) if len(rel) else 0.0
        print(json.dumps({"check": args.check, "rows": len(rel), "max_relative_difference": worst, "row": row}))
        if not worst <= CHECK_TOLERANCE:
            print(f"error: --check {args.check}: row {row} differs by {worst:.3g} relative "
                  f"({float(got[row])!r} against {float(want[row])!r})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
