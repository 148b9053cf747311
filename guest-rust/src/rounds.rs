//! Feature draws of one level when `max_features` is below the candidate count
//! (docs/algorithm.md §8): each node keeps drawing features, in rounds of `find-splits-rows`
//! calls, until it has found `max_features` that are not constant in it or has drawn every
//! candidate, and keeps the best split record over its rounds.

use crate::model::NONE;
use crate::rng::Shuffle;

/// u32 words per split record:
/// (feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi, varying, impure) (§7).
pub const SPLIT_WORDS: usize = 12;

/// `floor(SL^2 / nL) + floor(SR^2 / nR)` of a split record, exactly (§7).
pub fn score(rec: &[u32]) -> u128 {
    let (nl, n) = (rec[2], rec[6]);
    let sl = u64::from(rec[4]) | u64::from(rec[5]) << 32;
    let s = u64::from(rec[8]) | u64::from(rec[9]) << 32;
    let term = |s: u64, n: u32| if n == 0 { 0 } else { u128::from(s) * u128::from(s) / u128::from(n) };
    term(sl, nl).wrapping_add(term(s.wrapping_sub(sl), n.wrapping_sub(nl)))
}

/// Whether split record `a` beats split record `b`: the higher score, then the lower
/// feature, then the lower bin.
pub fn better(a: &[u32], b: &[u32]) -> bool {
    let (sa, sb) = (score(a), score(b));
    sa > sb || (sa == sb && (a[0], a[1]) < (b[0], b[1]))
}

/// One node's draws over the rounds of a level.
struct Node {
    shuffle: Shuffle,
    /// Features drawn in the round now running.
    pending: u32,
    /// Drawn features found not constant in the node, over the finished rounds.
    found: u32,
    /// Still drawing.
    active: bool,
    /// The merged record: totals of the first round, split of the best round.
    record: Option<[u32; SPLIT_WORDS]>,
}

/// The draws of every slot of one level.
pub struct Rounds<'a> {
    seed: u64,
    candidates: &'a [u32],
    features: u32,
    max_features: u32,
    nodes: Vec<Node>,
}

impl<'a> Rounds<'a> {
    /// `slots` holds each slot's (global tree, node index), in slot order.
    /// Requires `0 < max_features < candidates.len()`.
    pub fn new(seed: u64, candidates: &'a [u32], features: u32, max_features: u32, slots: impl Iterator<Item = (u32, u32)>) -> Self {
        let nodes = slots
            .map(|(t, k)| Node { shuffle: Shuffle::new(t, k), pending: 0, found: 0, active: true, record: None })
            .collect();
        Rounds { seed, candidates, features, max_features, nodes }
    }

    /// u32 words of feature mask per slot.
    pub fn mask_words(&self) -> u32 {
        self.features.div_ceil(32)
    }

    /// Whether any slot takes part in another round.
    pub fn any_active(&self) -> bool {
        self.nodes.iter().any(|n| n.active)
    }

    /// Draws the next round's features of slots `first..first + count` and returns their
    /// masks, or `None` when none of them is still drawing (the call can be skipped).
    pub fn next_masks(&mut self, first: usize, count: usize) -> Option<Vec<u32>> {
        let words = self.mask_words() as usize;
        let len = self.candidates.len() as u32;
        let mut masks = vec![0u32; count * words];
        let mut any = false;
        for (k, node) in self.nodes[first..first + count].iter_mut().enumerate() {
            node.pending = 0;
            if !node.active {
                continue;
            }
            any = true;
            let take = (self.max_features - node.found).min(len - node.shuffle.drawn());
            for _ in 0..take {
                let j = node.shuffle.next(self.seed, self.candidates);
                masks[k * words + (j / 32) as usize] |= 1 << (j % 32);
            }
            node.pending = take;
        }
        any.then_some(masks)
    }

    /// Takes in the records of a round (all slots; only the slots that drew are read).
    pub fn absorb(&mut self, records: &[u32]) {
        let len = self.candidates.len() as u32;
        for (node, rec) in self.nodes.iter_mut().zip(records.chunks_exact(SPLIT_WORDS)) {
            if !node.active {
                continue;
            }
            // At most the features this round allowed can be found (a device can only err).
            node.found += rec[10].min(node.pending);
            let merged = match node.record {
                None => {
                    let mut first = [0u32; SPLIT_WORDS];
                    first.copy_from_slice(rec);
                    first
                }
                Some(mut best) => {
                    if rec[0] != NONE && (best[0] == NONE || better(rec, &best)) {
                        best[..6].copy_from_slice(&rec[..6]);
                    }
                    best
                }
            };
            node.record = Some(merged);
            node.active = rec[11] == 1 && node.found < self.max_features && node.shuffle.drawn() < len;
        }
    }

    /// The merged record of every slot, in slot order.
    pub fn records(&self) -> Vec<u32> {
        self.nodes.iter().flat_map(|n| n.record.unwrap_or([0; SPLIT_WORDS])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(feature: u32, bin: u32, nl: u32, sl: u64, n: u32, s: u64, varying: u32, impure: u32) -> [u32; SPLIT_WORDS] {
        [feature, bin, nl, nl, sl as u32, (sl >> 32) as u32, n, n, s as u32, (s >> 32) as u32, varying, impure]
    }

    #[test]
    fn scores_are_exact_and_ties_go_low() {
        // SL = 6 over 2, SR = 4 over 2: 36/2 + 16/2 = 26.
        assert_eq!(score(&rec(0, 0, 2, 6, 4, 10, 1, 1)), 26);
        let big = rec(0, 0, 1, u64::MAX, 2, u64::MAX, 1, 1);
        assert_eq!(score(&big), u128::from(u64::MAX) * u128::from(u64::MAX));
        let a = rec(3, 5, 2, 6, 4, 10, 1, 1);
        assert!(better(&rec(2, 9, 2, 6, 4, 10, 1, 1), &a));
        assert!(better(&rec(3, 4, 2, 6, 4, 10, 1, 1), &a));
        assert!(!better(&a, &a));
        assert!(better(&rec(9, 9, 1, 9, 4, 10, 1, 1), &a)); // 81 + 1/3 -> 81 > 26
    }

    #[test]
    fn nodes_keep_drawing_until_m_varying_features() {
        let candidates: Vec<u32> = (0..8).collect();
        let mut r = Rounds::new(5, &candidates, 8, 3, [(0, 0), (0, 1), (1, 0)].into_iter());
        let masks = r.next_masks(0, 3).unwrap();
        assert!(masks.iter().all(|w| w.count_ones() == 3));
        // Slot 0 found 3 varying (done), slot 1 found 1 (draws 2 more), slot 2 is pure.
        let mut round = Vec::new();
        round.extend(rec(1, 4, 2, 6, 4, 10, 3, 1));
        round.extend(rec(NONE, 0, 0, 0, 4, 10, 1, 1));
        round.extend(rec(NONE, 0, 0, 0, 4, 8, 0, 0));
        r.absorb(&round);
        assert!(r.any_active());
        let masks = r.next_masks(0, 3).unwrap();
        assert_eq!((masks[0], masks[1].count_ones(), masks[2]), (0, 2, 0));
        assert_eq!(r.next_masks(0, 1), None, "slot 0 draws no more");
        // Round 2: slot 1 finds a split on one of its new features and 1 more varying.
        let mut round2 = vec![0u32; 3 * SPLIT_WORDS];
        round2[SPLIT_WORDS..2 * SPLIT_WORDS].copy_from_slice(&rec(6, 2, 1, 1, 4, 10, 1, 1));
        r.absorb(&round2);
        let out = r.records();
        assert_eq!(&out[..SPLIT_WORDS], &rec(1, 4, 2, 6, 4, 10, 3, 1));
        assert_eq!(&out[SPLIT_WORDS..SPLIT_WORDS + 6], &rec(6, 2, 1, 1, 4, 10, 1, 1)[..6]);
        assert_eq!(out[2 * SPLIT_WORDS], NONE);
        // Slot 1 found 2 of 3 and has drawn 5 of 8: it goes on with one more draw.
        let masks = r.next_masks(0, 3).unwrap();
        assert_eq!(masks[1].count_ones(), 1);
    }
}
