//! `GpuPredictor`: evaluates a forest on the device with `predict-forest` and turns the
//! exact fixed-point sums into predictions and an MSE (docs/algorithm.md §9).

use std::fs::File;
use std::io::BufReader;

use crate::error::Error;
use crate::gpu::{self, DeviceBuffer};
use crate::model::{Model, NONE, Node, tree_depth};
use crate::model_io::read_with;

/// The forest, uploaded once, ready to predict any number of feature matrices.
pub struct GpuPredictor {
    nodes: DeviceBuffer,
    roots: DeviceBuffer,
    node_count: u32,
    tree_count: u32,
    depth: u32,
    features: u32,
    y_min: f64,
    scale: f64,
}

/// Words of the node table flattened and uploaded at a time.
const UPLOAD_WORDS: usize = 1 << 20;

/// Appends `tree`'s rows of the `predict-forest` node table to `out`: 4 words per node,
/// children as forest-wide indices (the tree's first node is `offset`), leaves carrying their
/// 64-bit value in words 1-2 (§9).
fn flatten_tree(tree: &[Node], offset: u32, out: &mut Vec<u32>) {
    for n in tree {
        if n.is_leaf() {
            out.extend([NONE, n.value as u32, (n.value >> 32) as u32, 0]);
        } else {
            out.extend([n.feature, n.threshold.to_bits(), offset + n.left, offset + n.right]);
        }
    }
}

impl GpuPredictor {
    /// Uploads a validated model, a few MiB of the node table at a time (the table is never
    /// whole in the guest's memory).
    pub fn new(model: &Model) -> Result<Self, String> {
        let total: usize = model.trees.iter().map(Vec::len).sum();
        if total > NONE as usize {
            return Err(format!("the forest has {total} nodes; predict-forest addresses fewer than 2^32"));
        }
        let nodes = DeviceBuffer::zeroed(total as u64 * 4)?;
        let mut roots = Vec::with_capacity(model.trees.len());
        let mut chunk = Vec::with_capacity(UPLOAD_WORDS + 4);
        let (mut first, mut uploaded) = (0u32, 0u64);
        for tree in &model.trees {
            roots.push(first);
            for part in tree.chunks(UPLOAD_WORDS / 4) {
                flatten_tree(part, first, &mut chunk);
                if chunk.len() >= UPLOAD_WORDS {
                    nodes.write_u32(uploaded, &chunk)?;
                    uploaded += chunk.len() as u64;
                    chunk.clear();
                }
            }
            first += tree.len() as u32;
        }
        nodes.write_u32(uploaded, &chunk)?;
        Ok(GpuPredictor {
            node_count: total as u32,
            tree_count: roots.len() as u32,
            nodes,
            roots: DeviceBuffer::from_u32(&roots)?,
            // The walk limit is the model's own deepest path (§9), whatever --max-depth was.
            depth: model.depth(),
            features: model.features,
            y_min: model.y_min,
            scale: model.scale,
        })
    }

    /// Reads a model file straight into the device's node table, one tree at a time: the
    /// forest is never whole in the guest's memory. Each tree is validated as it arrives
    /// ([`Model::validate_tree`]); errors come in [`Model::load`]'s order and with its words
    /// (the checksum first, then the file's structure, the header, the trees in order).
    /// Returns the predictor, the model's header fields (no trees), its tree count and its
    /// checksum.
    pub fn load(path: &str) -> Result<(Self, Model, u32, String), Error> {
        let cannot_read = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => Error::file(path, "cannot open: no such file (train a model first, or check --model)"),
            _ => Error::file(path, format!("cannot read: {e}")),
        };
        let file = File::open(path).map_err(cannot_read)?;
        let len = file.metadata().map_err(cannot_read)?.len();
        let mut up = Upload {
            file_len: len,
            nodes: None,
            chunk: Vec::with_capacity(UPLOAD_WORDS + 4),
            uploaded: 0,
            first: 0,
            roots: Vec::new(),
            seen: 0,
            depth: 0,
            failed: None,
        };
        let mut walk = Vec::new();
        let (header, checksum) = read_with(&mut BufReader::with_capacity(1 << 20, file), len, &mut |h: &Model, t: u32, tree: Vec<Node>| {
            up.seen += 1;
            if up.failed.is_some() {
                return;
            }
            if let Err(e) = h.validate_tree(t as usize, &tree) {
                up.failed = Some(e);
                return;
            }
            up.depth = up.depth.max(tree_depth(&tree, &mut walk));
            if let Err(e) = up.tree(&tree) {
                up.failed = Some(e);
            }
        })
        .map_err(|e| Error::file(path, e))?;
        let trees = up.seen;
        header.validate_header(trees as usize).map_err(|e| Error::file(path, e))?;
        if let Some(e) = up.failed.take() {
            return Err(Error::file(path, e));
        }
        up.flush().map_err(|e| Error::file(path, e))?;
        let predictor = GpuPredictor {
            node_count: up.first,
            tree_count: trees,
            roots: DeviceBuffer::from_u32(&up.roots).map_err(|e| Error::file(path, e))?,
            depth: up.depth,
            features: header.features,
            y_min: header.y_min,
            scale: header.scale,
            nodes: up.nodes.take().expect("a valid model has a tree, which allocated the table"),
        };
        Ok((predictor, header, trees, checksum))
    }

    /// Predictions for `rows` rows of features in `x` (row-major `f32`, the model's width).
    pub fn predict(&self, x: &DeviceBuffer, rows: usize) -> Result<Vec<f64>, String> {
        let rows32 = u32::try_from(rows).map_err(|_| "too many rows for predict-forest")?;
        let sums = DeviceBuffer::zeroed(rows as u64 * SUM_WORDS)?;
        gpu::predict_forest(
            gpu::PredictParams {
                rows: rows32,
                features: self.features,
                tree_count: self.tree_count,
                node_count: self.node_count,
                max_depth: self.depth,
            },
            x,
            &self.nodes,
            &self.roots,
            &sums,
        )?;
        let words = sums.read_u32(0, rows as u64 * SUM_WORDS)?;
        Ok(words
            .chunks_exact(SUM_WORDS as usize)
            .map(|w| {
                let sum = w.iter().rev().fold(0u128, |acc, &word| acc << 32 | u128::from(word));
                prediction(sum, self.tree_count, self.y_min, self.scale)
            })
            .collect())
    }
}

/// The node table being uploaded by [`GpuPredictor::load`].
struct Upload {
    /// Bytes of the model file: it holds at most `file_len / 32` nodes, which sizes the table
    /// when the first tree arrives (after the header was read and checked).
    file_len: u64,
    nodes: Option<DeviceBuffer>,
    chunk: Vec<u32>,
    /// Words written to the table so far.
    uploaded: u64,
    /// The next tree's first node (forest-wide).
    first: u32,
    roots: Vec<u32>,
    /// Trees read, uploaded or not.
    seen: u32,
    depth: u32,
    /// The first problem: the rest of the file is still read (its checksum comes first).
    failed: Option<String>,
}

impl Upload {
    fn tree(&mut self, tree: &[Node]) -> Result<(), String> {
        if self.nodes.is_none() {
            let most = self.file_len / 32;
            if most > u64::from(NONE) {
                return Err(format!("the file could hold {most} nodes; predict-forest addresses fewer than 2^32"));
            }
            self.nodes = Some(DeviceBuffer::zeroed(most * 4)?);
        }
        self.roots.push(self.first);
        for part in tree.chunks(UPLOAD_WORDS / 4) {
            flatten_tree(part, self.first, &mut self.chunk);
            if self.chunk.len() >= UPLOAD_WORDS {
                self.flush()?;
            }
        }
        self.first += tree.len() as u32;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(nodes) = &self.nodes {
            nodes.write_u32(self.uploaded, &self.chunk)?;
        }
        self.uploaded += self.chunk.len() as u64;
        self.chunk.clear();
        Ok(())
    }
}

/// u32 words per row of `predict-forest`'s 128-bit sums.
const SUM_WORDS: u64 = 4;

/// `y_min + ((sum / 2^32) / trees) / scale`, in exactly this order of f64 operations;
/// `sum as f64` is the correctly rounded conversion (§9).
pub fn prediction(sum: u128, trees: u32, y_min: f64, scale: f64) -> f64 {
    y_min + ((sum as f64 / 4_294_967_296.0) / f64::from(trees)) / scale
}

/// Mean squared error, summed over rows in order and divided by the row count.
pub fn mse(predictions: &[f64], targets: &[f64]) -> f64 {
    let total = predictions.iter().zip(targets).fold(0.0, |acc, (p, y)| acc + (p - y) * (p - y));
    total / predictions.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_offsets_children() {
        let model = Model {
            features: 2,
            seed: 1,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 2,
            max_bins: 4,
            train_rows: 3,
            y_min: 0.0,
            scale: 1.0,
            trees: vec![
                vec![Node::leaf(1, 5)],
                vec![
                    Node { feature: 1, threshold: 2.5, left: 1, right: 2, flags: 0, count: 3, value: 3 },
                    Node::leaf(1, 1 << 32 | 1),
                    Node::leaf(2, 9),
                ],
            ],
        };
        let mut nodes = Vec::new();
        flatten_tree(&model.trees[0], 0, &mut nodes);
        flatten_tree(&model.trees[1], 1, &mut nodes);
        assert_eq!(nodes, vec![NONE, 5, 0, 0, 1, 2.5f32.to_bits(), 2, 3, NONE, 1, 1, 0, NONE, 9, 0, 0]);
    }

    #[test]
    fn prediction_and_mse() {
        assert_eq!(prediction(300 << 32, 3, 10.0, 2.0), 10.0 + 100.0 / 2.0);
        // Fractions of a target unit survive: 1.5 units over one tree.
        assert_eq!(prediction(3 << 31, 1, 0.0, 1.0), 1.5);
        assert_eq!(mse(&[1.0, 3.0], &[2.0, 1.0]), 2.5);
    }
}
