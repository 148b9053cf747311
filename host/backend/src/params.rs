//! Kernel parameter records (mirrors of the WIT records) and their validation.
//!
//! Each `check` verifies the parameters' ranges and returns the minimum size in bytes of
//! every buffer argument, in argument order, computed with overflow-checked arithmetic.

use crate::error::GpuError;

/// Marks "no node": a finished row, a leaf split record, a leaf child.
pub const NONE: u32 = u32::MAX;
/// Largest number of bins per feature (one byte per row and feature).
pub const MAX_BINS: u32 = 256;
/// Largest fixed-point target value `T = 2^32 - 1` (docs/algorithm.md §5): a node's
/// weighted target sum stays below 2^64 and every score exact in 128 bits.
pub const TARGET_MAX: u32 = u32::MAX;
/// u32 words per split record: feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi,
/// varying (allowed features not constant in the slot), impure (docs/algorithm.md §7).
pub const SPLIT_WORDS: u32 = 12;
/// u32 words per histogram bin: count, entries, sum low, sum high, min target, max target.
pub const HIST_WORDS: u32 = 6;
/// u32 words per node given to `predict-forest`.
pub const NODE_WORDS: u32 = 4;

fn bytes(what: &str, factors: &[u64]) -> Result<u64, GpuError> {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| GpuError::invalid(format!("size of `{what}` overflows 64 bits")))
}

fn positive(name: &str, v: u32) -> Result<(), GpuError> {
    if v == 0 { Err(GpuError::invalid(format!("`{name}` must be at least 1"))) } else { Ok(()) }
}

fn bins_range(max_bins: u32) -> Result<(), GpuError> {
    if !(2..=MAX_BINS).contains(&max_bins) {
        return Err(GpuError::invalid(format!("`max-bins` is {max_bins}; it must be between 2 and {MAX_BINS}")));
    }
    Ok(())
}

/// The facts of one kernel's parameter record, in one place: the kernel's WIT name, its
/// buffer arguments' names in order, and the bytes each must hold (`check`, which also
/// validates the parameters). [`crate::Device::validate`] checks a call with them.
pub trait KernelParams<const N: usize> {
    /// The kernel's name in the WIT (`bin-features`, ...).
    const NAME: &'static str;
    /// The buffer arguments' WIT names, in argument order.
    const BUFFERS: [&'static str; N];
    /// Validates the parameters and returns the least bytes of each buffer argument.
    fn check(&self) -> Result<[u64; N], GpuError>;
}

/// Implements [`KernelParams`] from each record's inherent `check`.
macro_rules! kernel_params {
    ($($ty:ident: $name:literal [$($buf:literal),+];)+) => {$(
        impl KernelParams<{ [$($buf),+].len() }> for $ty {
            const NAME: &'static str = $name;
            const BUFFERS: [&'static str; { [$($buf),+].len() }] = [$($buf),+];
            fn check(&self) -> Result<[u64; { [$($buf),+].len() }], GpuError> {
                $ty::check(self)
            }
        }
    )+};
}

kernel_params! {
    BinFeaturesParams: "bin-features" ["x", "edges", "bins"];
    BootstrapParams: "bootstrap" ["weights", "node-of"];
    HistogramParams: "build-histograms" ["bins", "targets", "weights", "node-of", "hist"];
    SplitParams: "find-splits" ["hist", "feature-mask", "splits"];
    RowSplitParams: "find-splits-rows" ["bins", "targets", "weights", "node-of", "feature-mask", "splits"];
    ApplyParams: "apply-splits" ["bins", "splits", "next-slot", "node-of"];
    PredictParams: "predict-forest" ["x", "nodes", "roots", "sums"];
}

/// Bytes of the feature-major packed bin matrix: `features * ceil(rows/4)` words.
pub fn bin_matrix_bytes(rows: u32, features: u32) -> Result<u64, GpuError> {
    bytes("bins", &[features as u64, (rows as u64).div_ceil(4), 4])
}

/// Mirror of WIT `bin-features-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinFeaturesParams {
    pub rows: u32,
    pub features: u32,
    pub max_bins: u32,
}

impl BinFeaturesParams {
    /// Sizes of `x`, `edges`, `bins`.
    pub fn check(&self) -> Result<[u64; 3], GpuError> {
        positive("features", self.features)?;
        bins_range(self.max_bins)?;
        Ok([
            bytes("x", &[self.rows as u64, self.features as u64, 4])?,
            bytes("edges", &[self.features as u64, (self.max_bins - 1) as u64, 4])?,
            bin_matrix_bytes(self.rows, self.features)?,
        ])
    }
}

/// Mirror of WIT `bootstrap-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapParams {
    pub seed: u64,
    pub rows: u32,
    pub tree_begin: u32,
    pub tree_count: u32,
    pub draws: u32,
}

impl BootstrapParams {
    /// Sizes of `weights`, `node-of`.
    pub fn check(&self) -> Result<[u64; 2], GpuError> {
        positive("rows", self.rows)?;
        positive("tree-count", self.tree_count)?;
        if self.tree_begin.checked_add(self.tree_count).is_none() {
            return Err(GpuError::invalid("`tree-begin + tree-count` overflows u32"));
        }
        if self.draws > self.rows {
            return Err(GpuError::invalid(format!("`draws` is {}; at most `rows` ({}) draws per tree are allowed", self.draws, self.rows)));
        }
        if self.tree_count == NONE {
            return Err(GpuError::invalid("`tree-count` must be below 0xffffffff"));
        }
        let b = bytes("weights", &[self.tree_count as u64, self.rows as u64, 4])?;
        Ok([b, b])
    }
}

/// Mirror of WIT `histogram-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramParams {
    pub rows: u32,
    pub features: u32,
    pub max_bins: u32,
    pub tree_count: u32,
    pub slot_begin: u32,
    pub slot_count: u32,
}

impl HistogramParams {
    /// Sizes of `bins`, `targets`, `weights`, `node-of`, `hist`.
    pub fn check(&self) -> Result<[u64; 5], GpuError> {
        positive("features", self.features)?;
        bins_range(self.max_bins)?;
        if self.slot_begin.checked_add(self.slot_count).is_none() {
            return Err(GpuError::invalid("`slot-begin + slot-count` overflows u32"));
        }
        let per_tree = bytes("weights", &[self.tree_count as u64, self.rows as u64, 4])?;
        Ok([
            bin_matrix_bytes(self.rows, self.features)?,
            bytes("targets", &[self.rows as u64, 4])?,
            per_tree,
            per_tree,
            bytes("hist", &[self.slot_count as u64, self.features as u64, self.max_bins as u64, HIST_WORDS as u64, 4])?,
        ])
    }
}

/// Mirror of WIT `split-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitParams {
    pub features: u32,
    pub max_bins: u32,
    pub slot_begin: u32,
    pub slot_count: u32,
    pub min_samples_leaf: u32,
    pub mask_words: u32,
}

impl SplitParams {
    /// Sizes of `hist`, `feature-mask`, `splits`.
    pub fn check(&self) -> Result<[u64; 3], GpuError> {
        positive("features", self.features)?;
        bins_range(self.max_bins)?;
        let end =
            self.slot_begin.checked_add(self.slot_count).ok_or_else(|| GpuError::invalid("`slot-begin + slot-count` overflows u32"))?;
        if self.mask_words != 0 && self.mask_words != self.features.div_ceil(32) {
            return Err(GpuError::invalid(format!(
                "`mask-words` is {}; it must be 0 (all features) or ceil(features/32) = {}",
                self.mask_words,
                self.features.div_ceil(32)
            )));
        }
        Ok([
            bytes("hist", &[self.slot_count as u64, self.features as u64, self.max_bins as u64, HIST_WORDS as u64, 4])?,
            bytes("feature-mask", &[self.slot_count as u64, self.mask_words as u64, 4])?,
            bytes("splits", &[end as u64, SPLIT_WORDS as u64, 4])?,
        ])
    }
}

/// Mirror of WIT `apply-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyParams {
    pub rows: u32,
    pub features: u32,
    pub tree_count: u32,
    pub slot_count: u32,
}

impl ApplyParams {
    /// Sizes of `bins`, `splits`, `next-slot`, `node-of`.
    pub fn check(&self) -> Result<[u64; 4], GpuError> {
        positive("features", self.features)?;
        Ok([
            bin_matrix_bytes(self.rows, self.features)?,
            bytes("splits", &[self.slot_count as u64, SPLIT_WORDS as u64, 4])?,
            bytes("next-slot", &[self.slot_count as u64, 2, 4])?,
            bytes("node-of", &[self.tree_count as u64, self.rows as u64, 4])?,
        ])
    }
}

/// Mirror of WIT `predict-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictParams {
    pub rows: u32,
    pub features: u32,
    pub tree_count: u32,
    pub node_count: u32,
    pub max_depth: u32,
}

impl PredictParams {
    /// Sizes of `x`, `nodes`, `roots`, `sums`.
    pub fn check(&self) -> Result<[u64; 4], GpuError> {
        positive("features", self.features)?;
        if self.max_depth > self.node_count {
            return Err(GpuError::invalid(format!(
                "`max-depth` is {}; it must be at most `node-count` ({})",
                self.max_depth, self.node_count
            )));
        }
        Ok([
            bytes("x", &[self.rows as u64, self.features as u64, 4])?,
            bytes("nodes", &[self.node_count as u64, NODE_WORDS as u64, 4])?,
            bytes("roots", &[self.tree_count as u64, 4])?,
            bytes("sums", &[self.rows as u64, 4, 4])?,
        ])
    }
}

/// The part of a `predict-forest` call one launch does: rows `row_begin..row_end` and trees
/// `tree_begin..tree_end` ([`crate::Device`] splits long calls into such launches). Not part
/// of the WIT: a guest always asks for every row and tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictSpan {
    pub row_begin: u32,
    pub row_end: u32,
    pub tree_begin: u32,
    pub tree_end: u32,
}

impl PredictSpan {
    /// Every row and every tree of `p`.
    pub fn all(p: &PredictParams) -> Self {
        PredictSpan { row_begin: 0, row_end: p.rows, tree_begin: 0, tree_end: p.tree_count }
    }

    pub fn rows(&self) -> std::ops::Range<u32> {
        self.row_begin..self.row_end
    }

    pub fn trees(&self) -> std::ops::Range<u32> {
        self.tree_begin..self.tree_end
    }

    /// The launches of `p` with at most `steps` walk steps (row x tree x (max_depth + 1))
    /// each where possible (one row and one tree is the least a launch does), in the order
    /// they run: row blocks outermost, trees in ascending blocks within a row block, so a
    /// row's sum is set by its first launch and added to by the rest. Lazy: a hostile call
    /// may have billions of launches, which the caller stops early when cancelled.
    pub fn split(p: &PredictParams, steps: u64) -> impl Iterator<Item = PredictSpan> + use<> {
        let (rows, trees) = (p.rows, p.tree_count);
        let depth = p.max_depth as u64 + 1;
        let steps = steps.max(1);
        let rows_per = (steps / depth).clamp(1, rows.max(1) as u64) as u32;
        let trees_per = (steps / (depth * rows_per as u64)).clamp(1, trees.max(1) as u64) as u32;
        let mut next = (rows > 0).then_some((0u32, 0u32));
        std::iter::from_fn(move || {
            let (r, t) = next?;
            let span =
                PredictSpan { row_begin: r, row_end: r + rows_per.min(rows - r), tree_begin: t, tree_end: t + trees_per.min(trees - t) };
            next = if span.tree_end < trees {
                Some((r, span.tree_end))
            } else if span.row_end < rows {
                Some((span.row_end, 0))
            } else {
                None
            };
            Some(span)
        })
    }
}

/// Mirror of WIT `row-split-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSplitParams {
    pub rows: u32,
    pub features: u32,
    pub max_bins: u32,
    pub tree_count: u32,
    pub slot_begin: u32,
    pub slot_count: u32,
    pub min_samples_leaf: u32,
    pub mask_words: u32,
}

impl RowSplitParams {
    /// The equivalent `build-histograms` parameters.
    pub fn histogram(&self) -> HistogramParams {
        HistogramParams {
            rows: self.rows,
            features: self.features,
            max_bins: self.max_bins,
            tree_count: self.tree_count,
            slot_begin: self.slot_begin,
            slot_count: self.slot_count,
        }
    }

    /// The equivalent `find-splits` parameters.
    pub fn split(&self) -> SplitParams {
        SplitParams {
            features: self.features,
            max_bins: self.max_bins,
            slot_begin: self.slot_begin,
            slot_count: self.slot_count,
            min_samples_leaf: self.min_samples_leaf,
            mask_words: self.mask_words,
        }
    }

    /// Sizes of `bins`, `targets`, `weights`, `node-of`, `feature-mask`, `splits`.
    pub fn check(&self) -> Result<[u64; 6], GpuError> {
        let [bins, targets, weights, node_of, _] = self.histogram().check()?;
        let [_, mask, splits] = self.split().check()?;
        Ok([bins, targets, weights, node_of, mask, splits])
    }
}
