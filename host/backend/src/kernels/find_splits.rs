//! `find-splits`: the best (feature, bin) of every slot by exact 128-bit variance score.

use super::par_chunks;
use crate::params::{SplitParams, HIST_WORDS, NONE, SPLIT_WORDS};

/// `floor(s^2 / n)` in wrapping 128-bit arithmetic; `n` must be non-zero.
#[inline]
pub fn score(s: u64, n: u32) -> u128 {
    (s as u128 * s as u128) / n as u128
}

/// Floating-point estimate of [`score`], for pruning only.
#[inline]
fn estimate(s: u64, n: u32) -> f64 {
    (s as f64) * (s as f64) / (n as f64)
}

/// Writes one 8-word record per slot to `splits[(slot_begin + k) * 8 ..]`
/// (docs/algorithm.md §7). Ties go to the lower feature, then the lower bin.
pub fn find_splits(p: &SplitParams, hist: &[u32], feature_mask: &[u32], splits: &mut [u32]) {
    let features = p.features as usize;
    let max_bins = p.max_bins as usize;
    let per_slot = features * max_bins * HIST_WORDS as usize;
    let min_leaf = p.min_samples_leaf.max(1);
    let begin = p.slot_begin as usize * SPLIT_WORDS as usize;
    let end = begin + p.slot_count as usize * SPLIT_WORDS as usize;
    par_chunks(&mut splits[begin..end], 64 * SPLIT_WORDS as usize, |start, out| {
        for (k, record) in out.chunks_exact_mut(SPLIT_WORDS as usize).enumerate() {
            let slot = start / SPLIT_WORDS as usize + k;
            let h = &hist[slot * per_slot..(slot + 1) * per_slot];
            let cell = |j: usize, b: usize| {
                let c = &h[(j * max_bins + b) * HIST_WORDS as usize..];
                (c[0], c[1] as u64 | (c[2] as u64) << 32)
            };
            let (mut n, mut s) = (0u32, 0u64);
            for b in 0..max_bins {
                let (c, v) = cell(0, b);
                n = n.wrapping_add(c);
                s = s.wrapping_add(v);
            }
            // (score, feature, bin, left count, left sum)
            let mut best: Option<(u128, u32, u32, u32, u64)> = None;
            // f64 estimate of the best score, used only to skip candidates that cannot win;
            // -inf disables skipping (no best yet, or a best whose exact score wrapped).
            let mut best_estimate = f64::NEG_INFINITY;
            if n > 0 {
                for j in 0..features {
                    let allowed = p.mask_words == 0
                        || feature_mask[slot * p.mask_words as usize + j / 32] >> (j % 32) & 1 == 1;
                    if !allowed {
                        continue;
                    }
                    let (mut nl, mut sl) = (0u32, 0u64);
                    for b in 0..max_bins - 1 {
                        let (c, v) = cell(j, b);
                        if c == 0 && v == 0 {
                            // Same partition as bin b-1: an equal score never wins a tie.
                            continue;
                        }
                        nl = nl.wrapping_add(c);
                        sl = sl.wrapping_add(v);
                        let (nr, sr) = (n.wrapping_sub(nl), s.wrapping_sub(sl));
                        if nl < min_leaf || nr < min_leaf {
                            continue;
                        }
                        // Below 2^62 no exact sum can wrap and the estimate is within a
                        // relative 1e-15 (plus 2 for the floors) of the exact score.
                        let small = (sl | sr) >> 62 == 0;
                        let estimate = if small { estimate(sl, nl) + estimate(sr, nr) } else { f64::INFINITY };
                        if estimate + 4.0 < best_estimate * (1.0 - 1e-9) {
                            continue;
                        }
                        let sc = score(sl, nl).wrapping_add(score(sr, nr));
                        if best.is_none_or(|bst| sc > bst.0) {
                            best = Some((sc, j as u32, b as u32, nl, sl));
                            best_estimate = if small { estimate } else { f64::NEG_INFINITY };
                        }
                    }
                }
            }
            let split = best.filter(|bst| bst.0 > score(s, n.max(1)));
            let (feature, bin, nl, sl) = match split {
                Some((_, j, b, nl, sl)) => (j, b, nl, sl),
                None => (NONE, 0, 0, 0),
            };
            record.copy_from_slice(&[feature, bin, nl, sl as u32, (sl >> 32) as u32, n, s as u32, (s >> 32) as u32]);
        }
    });
}
