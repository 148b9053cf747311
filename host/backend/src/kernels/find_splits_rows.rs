//! `find-splits-rows`: the split records of `build-histograms` + `find-splits` for the same
//! slots, computed from each slot's rows without materialising histograms.

use super::bin_at;
use super::find_splits::{SplitSearch, allowed};
use super::par_chunks;
use crate::backend::CancelToken;
use crate::params::{NONE, RowSplitParams, SPLIT_WORDS};

/// Groups the (tree, row) entries of the batch's slots by slot (counting sort), then
/// decides each slot from its own rows, per feature tallying only the bins its rows touch.
/// Integer sums make this exactly equal to the histogram path.
pub fn find_splits_rows(
    p: &RowSplitParams,
    bins: &[u32],
    targets: &[u32],
    weights: &[u32],
    node_of: &[u32],
    feature_mask: &[u32],
    splits: &mut [u32],
) {
    find_splits_rows_cancellable(p, bins, targets, weights, node_of, feature_mask, splits, &CancelToken::new());
}

/// [`find_splits_rows`] that gives up between features once `cancel` is cancelled (the
/// CPU backend's call under a time limit: its work is up to entries x features); the
/// records are then incomplete, and the caller reports the call as cancelled.
#[allow(clippy::too_many_arguments)]
pub fn find_splits_rows_cancellable(
    p: &RowSplitParams,
    bins: &[u32],
    targets: &[u32],
    weights: &[u32],
    node_of: &[u32],
    feature_mask: &[u32],
    splits: &mut [u32],
    cancel: &CancelToken,
) {
    let rows = p.rows as usize;
    let features = p.features as usize;
    let max_bins = p.max_bins as usize;
    let words = rows.div_ceil(4);
    let slots = p.slot_count as usize;
    let entries = p.tree_count as usize * rows;
    let local = |i: usize| {
        let s = node_of[i].wrapping_sub(p.slot_begin);
        // Weight-0 entries add nothing to any count or sum.
        (node_of[i] >= p.slot_begin && (s as usize) < slots && weights[i] != 0).then_some(s as usize)
    };
    // Counting sort of entries by local slot; `start[s]..start[s+1]` are slot s's entries.
    let mut start = vec![0u32; slots + 1];
    for i in 0..entries {
        if let Some(s) = local(i) {
            start[s + 1] += 1;
        }
    }
    for s in 0..slots {
        start[s + 1] += start[s];
    }
    let mut fill = start.clone();
    let mut order = vec![0u32; start[slots] as usize];
    for i in 0..entries {
        if let Some(s) = local(i) {
            order[fill[s] as usize] = i as u32;
            fill[s] += 1;
        }
    }

    // Row-major copy of the bins so that a slot's rows are gathered with one cache line
    // per row instead of one per row and feature (deep levels scatter a slot's rows).
    let mut row_bins = vec![0u8; rows * features];
    par_chunks(&mut row_bins, 4096 * features.max(1), |first, out| {
        let first_row = first / features.max(1);
        for (k, row) in out.chunks_exact_mut(features.max(1)).enumerate() {
            for (j, b) in row.iter_mut().enumerate() {
                *b = bin_at(bins, words, j, first_row + k) as u8;
            }
        }
    });

    let begin = p.slot_begin as usize * SPLIT_WORDS as usize;
    let end = begin + slots * SPLIT_WORDS as usize;
    par_chunks(&mut splits[begin..end], 4 * SPLIT_WORDS as usize, |first, out| {
        // Per-bin tallies of one feature, reset after each use through `touched`.
        let mut count = vec![0u32; max_bins];
        let mut entries = vec![0u32; max_bins];
        let mut sum = vec![0u64; max_bins];
        let mut seen = vec![false; max_bins];
        let mut touched: Vec<u32> = Vec::new();
        // The slot's entries: weight, weighted target, target, and their bins row by row.
        let mut weighted: Vec<(u32, u64, u32)> = Vec::new();
        let mut slot_bins: Vec<u8> = Vec::new();
        for (k, record) in out.chunks_exact_mut(SPLIT_WORDS as usize).enumerate() {
            let slot = first / SPLIT_WORDS as usize + k;
            let mine = &order[start[slot] as usize..start[slot + 1] as usize];
            weighted.clear();
            slot_bins.clear();
            // Totals over feature 0's in-range bins, as find-splits takes them: every entry
            // is one distinct row of the slot's tree, so `d` counts entries.
            let (mut n, mut d, mut s, mut lo, mut hi) = (0u32, 0u32, 0u64, NONE, 0u32);
            for &i in mine {
                let (i, row) = (i as usize, i as usize % rows);
                let (w, t) = (weights[i], targets[row]);
                let v = w as u64 * t as u64;
                weighted.push((w, v, t));
                if (row_bins[row * features] as usize) < max_bins {
                    (n, d, s) = (n.wrapping_add(w), d.wrapping_add(1), s.wrapping_add(v));
                    (lo, hi) = (lo.min(t), hi.max(t));
                }
            }
            // The slot's rows' bins are gathered only when some feature will be scanned: a
            // pure slot is a leaf, and a slot may have no allowed feature (later rounds of
            // the guests' feature draws give most slots an empty mask).
            let mask = &feature_mask[slot * p.mask_words as usize..][..p.mask_words as usize];
            let scanned = lo < hi && (p.mask_words == 0 || mask.iter().any(|&w| w != 0));
            if scanned {
                for &i in mine {
                    let row = i as usize % rows;
                    slot_bins.extend_from_slice(&row_bins[row * features..(row + 1) * features]);
                }
            }
            let column = |j: usize| {
                weighted
                    .iter()
                    .zip(slot_bins.get(j..).unwrap_or(&[]).iter().step_by(features))
                    .map(|(&(w, v, t), &b)| (b as usize, w, v, t))
            };
            let mut search = SplitSearch::new(n, d, s, lo, hi, p.min_samples_leaf, p.max_bins);
            // An empty slot counts as pure (`lo < hi` fails), so it costs nothing per feature.
            for j in 0..if scanned { features } else { 0 } {
                if !allowed(feature_mask, p.mask_words, slot, j) {
                    continue;
                }
                if cancel.is_cancelled() {
                    return;
                }
                // Tally the slot's rows into the bins they touch, then scan only those bins
                // in ascending order: O(rows + touched bins), never O(max_bins) per slot.
                touched.clear();
                for (b, w, v, _) in column(j) {
                    if b < max_bins {
                        if !seen[b] {
                            seen[b] = true;
                            touched.push(b as u32);
                        }
                        count[b] = count[b].wrapping_add(w);
                        entries[b] = entries[b].wrapping_add(1);
                        sum[b] = sum[b].wrapping_add(v);
                    }
                }
                if touched.len() * 4 < max_bins {
                    touched.sort_unstable();
                    let cells = touched.iter().map(|&b| (b, count[b as usize], entries[b as usize], sum[b as usize]));
                    search.feature(j as u32, cells.filter(|c| (c.0 as usize) < max_bins - 1));
                } else {
                    let cells = (0..max_bins - 1).filter(|&b| seen[b]).map(|b| (b as u32, count[b], entries[b], sum[b]));
                    search.feature(j as u32, cells);
                }
                for &b in &touched {
                    let b = b as usize;
                    (seen[b], count[b], entries[b], sum[b]) = (false, 0, 0, 0);
                }
            }
            record.copy_from_slice(&search.record());
        }
    });
}
