//! `GpuTrainer`: grows a forest level by level on the device (docs/algorithm.md §3-§8).
//!
//! The device keeps the binned features, fixed-point targets, per-tree bootstrap weights,
//! each (tree, row)'s current slot and split records; the guest only reads
//! back the split records of each level, decides which children continue, and uploads
//! the next-slot table. All buffers are allocated once (or grown) and reused across levels
//! and tree batches. Batch sizes come from the device's memory and never change the model.

use crate::bins;
use crate::data::Dataset;
use crate::gpu::{self, DeviceBuffer, DeviceInfo};
use crate::model::{Model, NONE, Node, TARGET_MAX, node_value};
use crate::progress::Progress;
use crate::rounds::{self, Rounds};

/// Slots decided per find-splits-rows call (bounds the feature-mask upload only).
const SLOT_BATCH: u32 = 1 << 18;
/// `rows * trees` above which training reports its progress (src/progress.rs).
const PROGRESS_WORK: u64 = 20_000_000;
/// u32 words per split record (§7).
const SPLIT_WORDS: u64 = rounds::SPLIT_WORDS as u64;

/// How many candidate features each node considers (scikit-learn's `max_features`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFeatures {
    /// An absolute count (must not exceed the number of features).
    Count(u32),
    /// `max(1, floor(fraction * features))`, fraction in (0, 1].
    Fraction(f64),
    /// `max(1, floor(sqrt(features)))`.
    Sqrt,
    /// `max(1, floor(log2(features)))`.
    Log2,
}

impl MaxFeatures {
    /// The count for a data set with `features` features.
    pub fn resolve(self, features: u32) -> Result<u32, String> {
        let f = f64::from(features);
        let m = match self {
            MaxFeatures::Count(n) if n >= 1 && n <= features => n,
            MaxFeatures::Count(n) => {
                return Err(format!("--max-features {n} is more than the data's {features} features; use at most {features}"));
            }
            MaxFeatures::Fraction(x) => (x * f).floor() as u32,
            MaxFeatures::Sqrt => f.sqrt().floor() as u32,
            MaxFeatures::Log2 => f.log2().floor() as u32,
        };
        Ok(m.clamp(1, features))
    }
}

/// The forest's hyper-parameters, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub trees: u32,
    /// `None` = unlimited.
    pub max_depth: Option<u32>,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    pub max_features: MaxFeatures,
    /// Bins per feature, 2..=256.
    pub bins: u32,
    pub seed: u64,
    /// Print per-level progress on stderr for large jobs.
    pub progress: bool,
    /// Only trees `A..B` of the `trees` (a partial forest, docs/algorithm.md §11); `None` = all.
    pub shard: Option<(u32, u32)>,
}

/// The fixed-point mapping of §5: `(y_min, scale)`, or why the targets cannot be mapped.
pub fn target_scale(y: &[f64]) -> Result<(f64, f64), String> {
    let y_min = y.iter().copied().fold(f64::INFINITY, f64::min);
    let y_max = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = y_max - y_min;
    if !range.is_finite() {
        return Err(format!("the targets span {y_min} to {y_max}, a range too large to represent; rescale the target column"));
    }
    let scale = if y_max > y_min { f64::from(TARGET_MAX) / range } else { 1.0 };
    if !scale.is_finite() {
        return Err(format!(
            "the targets span {y_min} to {y_max}, a range too small to represent in 32-bit fixed point; rescale the target column"
        ));
    }
    Ok((y_min, scale))
}

/// Targets as 32-bit fixed point: `round((y - y_min) * scale)` clamped to `[0, 2^32 - 1]`.
pub fn fixed_targets(y: &[f64], y_min: f64, scale: f64) -> Vec<u32> {
    y.iter().map(|&v| ((v - y_min) * scale).round().clamp(0.0, f64::from(TARGET_MAX)) as u32).collect()
}

/// Trees and histogram slots processed together, chosen from the device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSizes {
    pub trees: u32,
    pub slots: u32,
}

impl BatchSizes {
    /// Trees per batch such that weights + node-of (8 bytes per row and tree) fit in a
    /// quarter of device memory; slots per find-splits-rows call bounded by [`SLOT_BATCH`].
    pub fn choose(info: &DeviceInfo, rows: u32, trees: u32) -> Self {
        let per_tree = u64::from(rows) * 8;
        let by_memory = (info.memory_bytes / 4) / per_tree.max(1);
        let by_buffer = info.max_buffer_bytes / (u64::from(rows) * 4).max(1);
        let tree_batch = by_memory.min(by_buffer).clamp(1, u64::from(trees.max(1))) as u32;
        BatchSizes { trees: tree_batch, slots: SLOT_BATCH }
    }
}

/// A device buffer that grows (never shrinks) to the largest size asked for.
struct Growable {
    buffer: Option<DeviceBuffer>,
}

impl Growable {
    fn new() -> Self {
        Growable { buffer: None }
    }

    fn at_least(&mut self, words: u64) -> gpu::GpuResult<&DeviceBuffer> {
        if self.buffer.as_ref().is_none_or(|b| b.words() < words) {
            // Free the old buffer first so that peak memory is one buffer, not two.
            self.buffer = None;
            self.buffer = Some(DeviceBuffer::zeroed(words)?);
        }
        Ok(self.buffer.as_ref().expect("allocated above"))
    }
}

/// Trains a random forest on the `wasi:gpu` device.
pub struct GpuTrainer {
    info: DeviceInfo,
    params: TrainParams,
}

/// Device state shared by every tree batch.
struct Shared {
    rows: u32,
    features: u32,
    max_bins: u32,
    max_features: u32,
    /// Features with at least one finite edge, ascending: the only split candidates (§8).
    candidates: Vec<u32>,
    edges: Vec<f32>,
    bins: DeviceBuffer,
    targets: DeviceBuffer,
}

/// Buffers reused across levels and batches.
struct Scratch {
    weights: DeviceBuffer,
    node_of: DeviceBuffer,
    splits: Growable,
    next_slot: Growable,
    mask: Growable,
}

impl GpuTrainer {
    /// A trainer for `info`'s device with the given hyper-parameters.
    pub fn new(info: DeviceInfo, params: TrainParams) -> Self {
        GpuTrainer { info, params }
    }

    /// Trains on a loaded data set whose features are already in `x`
    /// (rows x features `f32`, row-major); `x` is freed once the features are binned.
    pub fn train(&self, x: DeviceBuffer, mut data: Dataset) -> Result<Model, String> {
        let p = &self.params;
        let rows = u32::try_from(data.rows).map_err(|_| "too many rows for the device kernels")?;
        let features = u32::try_from(data.features).map_err(|_| "too many features for the device kernels")?;
        let y = data.targets.take().ok_or("the training data has no target column")?;
        let max_features = p.max_features.resolve(features)?;

        // §4: quantile edges in the guest, bins on the device.
        let n_edges = (p.bins - 1) as usize;
        let mut edges = Vec::with_capacity(data.features * n_edges);
        for column in &mut data.sample {
            edges.extend(bins::feature_edges(column, p.bins));
        }
        drop(data.sample);
        let bins_buf = DeviceBuffer::zeroed(u64::from(features) * u64::from(rows).div_ceil(4))?;
        {
            let edges_buf = DeviceBuffer::zeroed(edges.len() as u64)?;
            edges_buf.write_f32(0, &edges)?;
            gpu::bin_features(gpu::BinFeaturesParams { rows, features, max_bins: p.bins }, &x, &edges_buf, &bins_buf)?;
        }
        drop(x);

        // §5: fixed-point targets.
        let (y_min, scale) = target_scale(&y)?;
        let targets = DeviceBuffer::from_u32(&fixed_targets(&y, y_min, scale))?;
        drop(y);

        let candidates = (0..features).filter(|&j| edges[j as usize * n_edges].is_finite()).collect();
        let shared = Shared { rows, features, max_bins: p.bins, max_features, candidates, edges, bins: bins_buf, targets };
        let (first, end) = p.shard.unwrap_or((0, p.trees));
        let sizes = BatchSizes::choose(&self.info, rows, end - first);
        let batch_words = u64::from(sizes.trees) * u64::from(rows);
        let mut scratch = Scratch {
            weights: DeviceBuffer::zeroed(batch_words)?,
            node_of: DeviceBuffer::zeroed(batch_words)?,
            splits: Growable::new(),
            next_slot: Growable::new(),
            mask: Growable::new(),
        };

        let mut forest = Vec::with_capacity((end - first) as usize);
        let large = u64::from(rows) * u64::from(end - first) > PROGRESS_WORK;
        let mut progress = Progress::new(p.progress && large, first, end, p.trees, p.max_depth);
        let mut begin = first;
        while begin < end {
            let count = sizes.trees.min(end - begin);
            forest.extend(self.grow_batch(&shared, &mut scratch, sizes, begin, count, &mut progress)?);
            begin += count;
        }
        progress.finish();
        Ok(Model {
            features,
            seed: p.seed,
            max_depth: p.max_depth,
            min_samples_split: p.min_samples_split,
            min_samples_leaf: p.min_samples_leaf,
            max_features,
            max_bins: p.bins,
            train_rows: rows,
            y_min,
            scale,
            trees: forest,
        })
    }

    /// The split records of one level's slots (`level`: (local tree, node)), from one
    /// `find-splits-rows` pass over every feature, or from rounds of feature draws when
    /// `max_features` is below the candidate count (§8).
    fn decide_level(
        &self,
        s: &Shared,
        scratch: &mut Scratch,
        sizes: BatchSizes,
        begin: u32,
        count: u32,
        level: &[(u32, u32)],
    ) -> Result<Vec<u32>, String> {
        let p = &self.params;
        let n_slots = level.len() as u32;
        let splits = scratch.splits.at_least(u64::from(n_slots) * SPLIT_WORDS)?;
        let call = |first: u32, slots: u32, mask: &DeviceBuffer, mask_words: u32| {
            gpu::find_splits_rows(
                gpu::RowSplitParams {
                    rows: s.rows,
                    features: s.features,
                    max_bins: s.max_bins,
                    tree_count: count,
                    slot_begin: first,
                    slot_count: slots,
                    min_samples_leaf: p.min_samples_leaf,
                    mask_words,
                },
                &s.bins,
                &s.targets,
                &scratch.weights,
                &scratch.node_of,
                mask,
                splits,
            )
        };
        let batches = || (0..n_slots).step_by(sizes.slots as usize).map(|first| (first, sizes.slots.min(n_slots - first)));
        if s.max_features >= s.candidates.len() as u32 {
            let mask = scratch.mask.at_least(1)?;
            for (first, slots) in batches() {
                call(first, slots, mask, 0)?;
            }
            return splits.read_u32(0, u64::from(n_slots) * SPLIT_WORDS);
        }
        let slots = level.iter().map(|&(t, k)| (begin + t, k));
        let mut rounds = Rounds::new(p.seed, &s.candidates, s.features, s.max_features, slots);
        let mut count_rounds = 0u32;
        while rounds.any_active() {
            count_rounds += 1;
            for (first, slots) in batches() {
                if let Some((at, words)) = rounds.next_masks(first as usize, slots as usize) {
                    let mask = scratch.mask.at_least(words.len() as u64)?;
                    mask.write_u32(0, &words)?;
                    call(at as u32, words.len() as u32 / rounds.mask_words(), mask, rounds.mask_words())?;
                }
            }
            rounds.absorb(&splits.read_u32(0, u64::from(n_slots) * SPLIT_WORDS)?);
        }
        // apply-splits reads the device's records: after a later round they are no longer the
        // merged ones (a single round's are).
        let records = rounds.records();
        if count_rounds > 1 {
            splits.write_u32(0, &records)?;
        }
        Ok(records)
    }

    /// Grows trees `begin..begin + count` together, level by level (§8).
    fn grow_batch(
        &self,
        s: &Shared,
        scratch: &mut Scratch,
        sizes: BatchSizes,
        begin: u32,
        count: u32,
        progress: &mut Progress,
    ) -> Result<Vec<Vec<Node>>, String> {
        let p = &self.params;
        let n_edges = (s.max_bins - 1) as usize;
        let min_split = p.min_samples_split.max(2);

        gpu::bootstrap(
            gpu::BootstrapParams { seed: p.seed, rows: s.rows, tree_begin: begin, tree_count: count, draws: s.rows },
            &scratch.weights,
            &scratch.node_of,
        )?;

        let mut trees: Vec<Vec<Node>> = (0..count).map(|_| vec![Node::leaf(0, 0)]).collect();
        // The slots of the current level: (local tree, node index), ordered by (tree, creation).
        let mut level: Vec<(u32, u32)> = (0..count).map(|t| (t, 0)).collect();
        let mut depth = 0u32;
        while !level.is_empty() {
            let n_slots = level.len() as u32;
            progress.level(begin, count, depth, n_slots);
            let records = self.decide_level(s, scratch, sizes, begin, count, &level)?;

            let mut next_slot = vec![NONE; n_slots as usize * 2];
            let mut next_level = Vec::new();
            for (slot, (&(t, k), rec)) in level.iter().zip(records.chunks_exact(SPLIT_WORDS as usize)).enumerate() {
                let tree = &mut trees[t as usize];
                let (n, d) = (rec[6], rec[7]);
                let sum = u64::from(rec[8]) | u64::from(rec[9]) << 32;
                if depth == 0 {
                    tree[0] = Node::leaf(n, node_value(n, sum));
                }
                // A root with too few distinct rows stays a leaf, like every other node (§8).
                if rec[0] == NONE || (depth == 0 && d < min_split) {
                    continue;
                }
                let (feature, bin, nl, dl) = (rec[0], rec[1], rec[2], rec[3]);
                let sl = u64::from(rec[4]) | u64::from(rec[5]) << 32;
                let bad = feature >= s.features || bin as usize >= n_edges || nl >= n || sl > sum;
                if bad || dl == 0 || dl >= d || dl > nl || d - dl > n - nl {
                    return Err(format!("the device returned an invalid split record {rec:?} for slot {slot}"));
                }
                let (nr, sr, dr) = (n - nl, sum - sl, d - dl);
                let left = tree.len() as u32;
                tree.push(Node::leaf(nl, node_value(nl, sl)));
                tree.push(Node::leaf(nr, node_value(nr, sr)));
                let node = &mut tree[k as usize];
                node.feature = feature;
                node.threshold = s.edges[feature as usize * n_edges + bin as usize];
                node.left = left;
                node.right = left + 1;
                let child_depth = depth + 1;
                for (side, child, entries) in [(0, left, dl), (1, left + 1, dr)] {
                    if p.max_depth.is_none_or(|m| child_depth < m) && entries >= min_split {
                        next_slot[slot * 2 + side] = next_level.len() as u32;
                        next_level.push((t, child));
                    }
                }
            }
            if !next_level.is_empty() {
                let table = scratch.next_slot.at_least(u64::from(n_slots) * 2)?;
                table.write_u32(0, &next_slot)?;
                let splits = scratch.splits.at_least(u64::from(n_slots) * SPLIT_WORDS)?;
                gpu::apply_splits(
                    gpu::ApplyParams { rows: s.rows, features: s.features, tree_count: count, slot_count: n_slots },
                    &s.bins,
                    splits,
                    table,
                    &scratch.node_of,
                )?;
            }
            level = next_level;
            depth += 1;
        }
        Ok(trees)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(memory: u64) -> DeviceInfo {
        DeviceInfo { name: "t".into(), backend: "cpu", driver: "d".into(), memory_bytes: memory, max_buffer_bytes: memory }
    }

    #[test]
    fn batch_sizes_follow_memory() {
        let b = BatchSizes::choose(&device(16 << 30), 353, 200);
        assert_eq!((b.trees, b.slots), (200, SLOT_BATCH));
        // 1 GiB device, 10M rows: a quarter is 256 MiB = 3 trees of 80 MB.
        let b = BatchSizes::choose(&device(1 << 30), 10_000_000, 100);
        assert_eq!(b.trees, 3);
        let b = BatchSizes::choose(&device(1 << 20), 10_000_000, 100);
        assert_eq!(b.trees, 1);
    }

    #[test]
    fn max_features_resolution_matches_scikit_learn() {
        assert_eq!(MaxFeatures::Fraction(1.0).resolve(10), Ok(10));
        assert_eq!(MaxFeatures::Fraction(0.33).resolve(10), Ok(3));
        assert_eq!(MaxFeatures::Fraction(0.01).resolve(10), Ok(1));
        assert_eq!(MaxFeatures::Sqrt.resolve(10), Ok(3));
        assert_eq!(MaxFeatures::Log2.resolve(10), Ok(3));
        assert_eq!(MaxFeatures::Log2.resolve(1), Ok(1));
        assert_eq!(MaxFeatures::Count(4).resolve(10), Ok(4));
        assert!(MaxFeatures::Count(11).resolve(10).is_err());
    }

    #[test]
    fn fixed_point_targets() {
        let y = [25.0, 346.0, 100.5];
        let (y_min, scale) = target_scale(&y).unwrap();
        assert_eq!(y_min, 25.0);
        assert_eq!(scale, 4294967295.0 / 321.0);
        let t = fixed_targets(&y, y_min, scale);
        assert_eq!(t[0], 0);
        assert_eq!(t[1], TARGET_MAX);
        assert_eq!(t[2], ((100.5 - 25.0) * scale).round() as u32);
        assert_eq!(target_scale(&[3.0, 3.0]).unwrap(), (3.0, 1.0));
        assert_eq!(fixed_targets(&[3.0], 3.0, 1.0), vec![0]);
        assert!(target_scale(&[-1e308, 1e308]).unwrap_err().contains("too large"));
        assert!(target_scale(&[0.0, 1e-310]).unwrap_err().contains("too small"));
        // A few extreme rows no longer swallow the bulk: 1e7 apart, units stay distinct.
        let (y_min, scale) = target_scale(&[0.0, 1.0, 2.0, 1e7]).unwrap();
        let t = fixed_targets(&[0.0, 1.0, 2.0, 1e7], y_min, scale);
        assert!(t[0] == 0 && t[1] >= 429 && t[2] >= 2 * t[1], "{t:?}");
    }
}
