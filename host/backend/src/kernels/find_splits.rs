//! `find-splits`: the best (feature, bin) of every slot by exact 128-bit variance score.

use super::par_chunks;
use crate::params::{HIST_WORDS, NONE, SPLIT_WORDS, SplitParams};

/// `floor(s^2 / n)`, exact for any `s < 2^64` (`s^2 < 2^128`); `n` must be non-zero.
#[inline]
pub fn score(s: u64, n: u32) -> u128 {
    (s as u128 * s as u128) / n as u128
}

/// Floating-point estimate of [`score`], for pruning only.
#[inline]
fn estimate(s: u64, n: u32) -> f64 {
    (s as f64) * (s as f64) / (n as f64)
}

/// The running best split of one slot (docs/algorithm.md §7), fed one feature at a time
/// with that feature's non-empty bins in ascending order. Shared by `find-splits` and
/// `find-splits-rows` so both decide identically.
pub(crate) struct SplitSearch {
    n: u32,
    d: u32,
    s: u64,
    /// The slot's minimum target is below its maximum; a pure (or empty) slot is a leaf.
    impure: bool,
    min_leaf: u32,
    max_bins: u32,
    /// Scanned features not constant in the slot: some bin leaves `0 < dL < d`.
    varying: u32,
    /// (score, feature, bin, left count, left entries, left sum); `bin` is the reported one,
    /// in the middle of the gap after the candidate's last non-empty left bin once
    /// `pending` is cleared.
    best: Option<(u128, u32, u32, u32, u32, u64)>,
    /// The best candidate was found in the feature being scanned and its bin is still its
    /// last non-empty left bin `b`: the first non-empty bin `c` after it is not known yet.
    pending: bool,
    /// f64 estimate of the best score, used only to skip candidates that cannot win;
    /// -inf disables skipping (no best yet, or a best whose exact score may have wrapped).
    best_estimate: f64,
}

impl SplitSearch {
    /// A slot with total weighted count `n`, entries `d`, sum `s` and target range
    /// `min..=max` (all over feature 0's in-range bins), with `max_bins` bins per feature.
    pub(crate) fn new(n: u32, d: u32, s: u64, min: u32, max: u32, min_samples_leaf: u32, max_bins: u32) -> Self {
        SplitSearch {
            n,
            d,
            s,
            impure: min < max,
            min_leaf: min_samples_leaf.max(1),
            max_bins,
            varying: 0,
            best: None,
            pending: false,
            best_estimate: f64::NEG_INFINITY,
        }
    }

    /// Scans feature `feature`: `cells` yields (bin, count, entries, sum) for bins below
    /// `max_bins - 1` in ascending order. Empty bins may be left out: a bin that adds
    /// nothing repeats the previous partition, whose equal score never wins a tie (and
    /// leaves `dL` as it was, so the feature's `varying` test sees the same values).
    /// The best candidate reports `b + (c - 1 - b) / 2` (docs/algorithm.md §7, threshold in
    /// the middle of the gap): `c` is the next non-empty bin, else `max_bins - 1`.
    pub(crate) fn feature(&mut self, feature: u32, cells: impl Iterator<Item = (u32, u32, u32, u64)>) {
        // A pure slot is a leaf whatever its candidates.
        if !self.impure {
            return;
        }
        let (mut nl, mut dl, mut sl) = (0u32, 0u32, 0u64);
        let mut varies = false;
        for (b, c, e, v) in cells {
            if c == 0 && e == 0 && v == 0 {
                continue;
            }
            // The first non-empty bin after the best candidate's: report the gap's middle.
            if self.pending {
                self.settle(b);
            }
            nl = nl.wrapping_add(c);
            dl = dl.wrapping_add(e);
            sl = sl.wrapping_add(v);
            // Not constant in the slot: rows on both sides, whether or not the candidate
            // is valid or pruned below.
            varies |= dl != 0 && dl < self.d;
            let (nr, dr, sr) = (self.n.wrapping_sub(nl), self.d.wrapping_sub(dl), self.s.wrapping_sub(sl));
            // Valid: at least min_leaf distinct rows each side. The non-zero weighted
            // counts always hold for real inputs (every entry weighs at least 1); they only
            // keep wrapped or garbage histograms from dividing by zero.
            if dl < self.min_leaf || dr < self.min_leaf || nl == 0 || nr == 0 {
                continue;
            }
            // Below 2^62 no exact sum can wrap and the estimate is within a relative 1e-15
            // (plus 2 for the floors) of the exact score.
            let small = (sl | sr) >> 62 == 0;
            let est = if small { estimate(sl, nl) + estimate(sr, nr) } else { f64::INFINITY };
            if est + 4.0 < self.best_estimate * (1.0 - 1e-9) {
                continue;
            }
            let sc = score(sl, nl).wrapping_add(score(sr, nr));
            if self.best.is_none_or(|best| sc > best.0) {
                self.best = Some((sc, feature, b, nl, dl, sl));
                self.best_estimate = if small { est } else { f64::NEG_INFINITY };
                self.pending = true;
            }
        }
        // No non-empty bin after the best candidate's below max_bins - 1.
        if self.pending {
            self.settle(self.max_bins.wrapping_sub(1));
        }
        self.varying += varies as u32;
    }

    /// Moves the pending best's bin `b` to the middle of `b ..= c - 1`.
    fn settle(&mut self, c: u32) {
        if let Some(best) = self.best.as_mut() {
            best.2 += (c - 1 - best.2) / 2;
        }
        self.pending = false;
    }

    /// The 12-word split record: the best valid candidate of an impure slot, else a leaf;
    /// then the number of varying features and whether the slot is impure.
    pub(crate) fn record(&self) -> [u32; SPLIT_WORDS as usize] {
        let (n, d, s) = (self.n, self.d, self.s);
        let split = self.best.filter(|_| self.impure);
        let (feature, bin, nl, dl, sl) = match split {
            Some((_, j, b, nl, dl, sl)) => (j, b, nl, dl, sl),
            None => (NONE, 0, 0, 0, 0),
        };
        let (varying, impure) = (self.varying, self.impure as u32);
        [feature, bin, nl, dl, sl as u32, (sl >> 32) as u32, n, d, s as u32, (s >> 32) as u32, varying, impure]
    }
}

/// Whether `feature` is a candidate for local slot `slot` under a `mask_words`-word mask.
#[inline]
pub(crate) fn allowed(feature_mask: &[u32], mask_words: u32, slot: usize, feature: usize) -> bool {
    mask_words == 0 || feature_mask[slot * mask_words as usize + feature / 32] >> (feature % 32) & 1 == 1
}

/// Writes one 12-word record per slot to `splits[(slot_begin + k) * 12 ..]`
/// (docs/algorithm.md §7). Ties go to the lower feature, then the lower bin.
pub fn find_splits(p: &SplitParams, hist: &[u32], feature_mask: &[u32], splits: &mut [u32]) {
    let features = p.features as usize;
    let max_bins = p.max_bins as usize;
    let per_slot = features * max_bins * HIST_WORDS as usize;
    let begin = p.slot_begin as usize * SPLIT_WORDS as usize;
    let end = begin + p.slot_count as usize * SPLIT_WORDS as usize;
    par_chunks(&mut splits[begin..end], 64 * SPLIT_WORDS as usize, |start, out| {
        for (k, record) in out.chunks_exact_mut(SPLIT_WORDS as usize).enumerate() {
            let slot = start / SPLIT_WORDS as usize + k;
            let h = &hist[slot * per_slot..(slot + 1) * per_slot];
            // (count, entries, sum, min target, max target) of one cell.
            let cell = |j: usize, b: usize| {
                let c = &h[(j * max_bins + b) * HIST_WORDS as usize..][..HIST_WORDS as usize];
                (c[0], c[1], c[2] as u64 | (c[3] as u64) << 32, c[4], c[5])
            };
            let (mut n, mut d, mut s, mut lo, mut hi) = (0u32, 0u32, 0u64, NONE, 0u32);
            for b in 0..max_bins {
                let (c, e, v, mn, mx) = cell(0, b);
                (n, d, s) = (n.wrapping_add(c), d.wrapping_add(e), s.wrapping_add(v));
                (lo, hi) = (lo.min(mn), hi.max(mx));
            }
            let mut search = SplitSearch::new(n, d, s, lo, hi, p.min_samples_leaf, p.max_bins);
            for j in 0..features {
                if allowed(feature_mask, p.mask_words, slot, j) {
                    search.feature(
                        j as u32,
                        (0..max_bins - 1).map(|b| {
                            let (c, e, v, _, _) = cell(j, b);
                            (b as u32, c, e, v)
                        }),
                    );
                }
            }
            record.copy_from_slice(&search.record());
        }
    });
}
