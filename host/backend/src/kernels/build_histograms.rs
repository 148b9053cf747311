//! `build-histograms`: exact integer (count, entries, 64-bit target sum, target min and
//! max) histograms for every (slot, feature, bin) of one slot batch of one level, across
//! all trees of the batch.

use super::{bin_at, par_chunks};
use crate::backend::CancelToken;
use crate::params::{HIST_WORDS, HistogramParams, NONE};

/// A cell no entry reaches: (count, entries, sum lo, sum hi, min target, max target).
pub const EMPTY_CELL: [u32; HIST_WORDS as usize] = [0, 0, 0, 0, NONE, 0];

/// `hist[((slot - slot_begin) * features + j) * max_bins + bin]` =
/// (count, entries, sum lo, sum hi, min target, max target); the whole output is overwritten.
pub fn build_histograms(p: &HistogramParams, bins: &[u32], targets: &[u32], weights: &[u32], node_of: &[u32], hist: &mut [u32]) {
    build_histograms_cancellable(p, bins, targets, weights, node_of, hist, &CancelToken::new());
}

/// [`build_histograms`] that gives up between features once `cancel` is cancelled (the
/// CPU backend's call under a time limit: its work is entries x features); the output is
/// then incomplete, and the caller reports the call as cancelled.
pub fn build_histograms_cancellable(
    p: &HistogramParams,
    bins: &[u32],
    targets: &[u32],
    weights: &[u32],
    node_of: &[u32],
    hist: &mut [u32],
    cancel: &CancelToken,
) {
    let rows = p.rows as usize;
    let features = p.features as usize;
    let max_bins = p.max_bins as usize;
    let words = rows.div_ceil(4);
    let per_slot = features * max_bins;
    let slots = p.slot_count as usize;
    if slots == 0 {
        return;
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let slots_per_piece = slots.div_ceil(threads);
    let entries = p.tree_count as usize * rows;
    par_chunks(&mut hist[..slots * per_slot * HIST_WORDS as usize], slots_per_piece * per_slot * HIST_WORDS as usize, |start, out| {
        let first = (start / (per_slot * HIST_WORDS as usize)) as u32;
        let count = (out.len() / (per_slot * HIST_WORDS as usize)) as u32;
        let lo = p.slot_begin.wrapping_add(first);
        // The (row, local slot, weight) of every entry that falls in this piece's slots.
        let mine: Vec<(u32, u32, u32)> = (0..entries)
            .filter_map(|i| {
                let s = node_of[i].wrapping_sub(lo);
                (node_of[i] >= lo && s < count && weights[i] != 0).then(|| ((i % rows) as u32, s, weights[i]))
            })
            .collect();
        for cell in out.chunks_exact_mut(HIST_WORDS as usize) {
            cell.copy_from_slice(&EMPTY_CELL);
        }
        for j in 0..features {
            if cancel.is_cancelled() {
                return;
            }
            for &(row, s, w) in &mine {
                let b = bin_at(bins, words, j, row as usize) as usize;
                if b < max_bins {
                    let cell = &mut out[((s as usize * features + j) * max_bins + b) * HIST_WORDS as usize..][..HIST_WORDS as usize];
                    let t = targets[row as usize];
                    let sum = (cell[2] as u64 | (cell[3] as u64) << 32).wrapping_add(w as u64 * t as u64);
                    cell[0] = cell[0].wrapping_add(w);
                    cell[1] = cell[1].wrapping_add(1);
                    cell[2] = sum as u32;
                    cell[3] = (sum >> 32) as u32;
                    cell[4] = cell[4].min(t);
                    cell[5] = cell[5].max(t);
                }
            }
        }
    });
}
