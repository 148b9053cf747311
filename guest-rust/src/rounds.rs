//! Feature draws of one level when `max_features` is below the candidate count
//! (docs/algorithm.md §8), as scikit-learn draws them: each node draws `max_features`
//! features, and while every feature it drew is constant in it, it draws more, in further
//! rounds of `find-splits-rows` calls, until one is not or every candidate is drawn; it keeps
//! the best split record over its rounds.
//!
//! How many features a later round draws does not change the model, only the number of
//! calls: the features evaluated are always the draws up to the first non-constant one
//! (draws after it in the same round are constant, so they add no candidate), and the best
//! record over disjoint rounds is the best over their union. So where most draws so far
//! were constant, a round draws ahead (twice as many as the last accepted round), and a
//! round that found too many non-constant features is undone (the shuffle rewound, its
//! record dropped) and retried with half; elsewhere it draws just the features still needed.

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
    /// The shuffle before the round now running, to undo a round that overshoots.
    before: Option<Shuffle>,
    /// Features drawn in the round now running.
    pending: u32,
    /// Non-constant features to find: `max_features` in round 1 (all of its draws count),
    /// then 1.
    goal: u32,
    /// Draws of the next round.
    step: u32,
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
    nodes: Vec<Node>,
}

impl<'a> Rounds<'a> {
    /// `slots` holds each slot's (global tree, node index), in slot order.
    /// Requires `0 < max_features < candidates.len()`.
    pub fn new(seed: u64, candidates: &'a [u32], features: u32, max_features: u32, slots: impl Iterator<Item = (u32, u32)>) -> Self {
        let nodes = slots
            .map(|(t, k)| Node {
                shuffle: Shuffle::new(t, k),
                before: None,
                pending: 0,
                goal: max_features,
                step: max_features,
                found: 0,
                active: true,
                record: None,
            })
            .collect();
        Rounds { seed, candidates, features, nodes }
    }

    /// u32 words of feature mask per slot.
    pub fn mask_words(&self) -> u32 {
        self.features.div_ceil(32)
    }

    /// Whether any slot takes part in another round.
    pub fn any_active(&self) -> bool {
        self.nodes.iter().any(|n| n.active)
    }

    /// Draws the next round's features of the slots in `first..first + count` that are still
    /// drawing. Returns `(begin, masks)` for the shortest run of slots `begin..` that holds
    /// them all (slots in between that are done get an empty mask), or `None` when none of
    /// them is drawing, so the call can be skipped or narrowed.
    pub fn next_masks(&mut self, first: usize, count: usize) -> Option<(usize, Vec<u32>)> {
        let words = self.mask_words() as usize;
        let len = self.candidates.len() as u32;
        let nodes = &mut self.nodes[first..first + count];
        let lo = nodes.iter().position(|n| n.active)?;
        let hi = nodes.iter().rposition(|n| n.active).map_or(lo, |h| h + 1);
        let mut masks = vec![0u32; (hi - lo) * words];
        for (k, node) in nodes[lo..hi].iter_mut().enumerate() {
            node.pending = 0;
            if !node.active {
                continue;
            }
            let take = node.step.max(node.goal - node.found).min(len - node.shuffle.drawn());
            node.before = Some(node.shuffle.clone());
            for _ in 0..take {
                let j = node.shuffle.next(self.seed, self.candidates);
                masks[k * words + (j / 32) as usize] |= 1 << (j % 32);
            }
            node.pending = take;
        }
        Some((first + lo, masks))
    }

    /// Takes in the records of a round (all slots; only the slots that drew are read).
    pub fn absorb(&mut self, records: &[u32]) {
        let len = self.candidates.len() as u32;
        for (node, rec) in self.nodes.iter_mut().zip(records.chunks_exact(SPLIT_WORDS)) {
            if !node.active {
                continue;
            }
            // At most the features this round allowed can be found (a device can only err).
            let varying = rec[10].min(node.pending);
            let need = node.goal - node.found;
            if node.record.is_some() && varying > need {
                // Overshot: some non-constant feature here comes after the last one allowed.
                // Undo the round and retry with half as many draws (never fewer than `need`,
                // which cannot overshoot).
                node.shuffle = node.before.take().unwrap_or_else(|| node.shuffle.clone());
                node.step = (node.pending / 2).max(need);
                continue;
            }
            node.found += varying;
            // Mostly non-constant so far: draw just what is needed (drawing ahead would only
            // overshoot); mostly constant: draw twice as many as this round.
            node.step = if 2 * u64::from(node.found) >= u64::from(node.shuffle.drawn()) { 0 } else { node.pending.saturating_mul(2) };
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
            // After round 1 only a node whose draws were all constant goes on, for one more.
            node.goal = 1;
            node.active = rec[11] == 1 && node.found < node.goal && node.shuffle.drawn() < len;
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

    #[allow(clippy::too_many_arguments)]
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
    fn nodes_draw_more_only_while_every_draw_was_constant() {
        let candidates: Vec<u32> = (0..8).collect();
        let mut r = Rounds::new(5, &candidates, 8, 3, [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter());
        let (at, masks) = r.next_masks(0, 4).unwrap();
        assert_eq!(at, 0);
        assert!(masks.iter().all(|w| w.count_ones() == 3), "round 1 draws max_features");
        // Slot 0 found 3 varying, slot 1 found 1 (both done, as in scikit-learn), slot 2 is
        // pure, slot 3 drew 3 constant features: it alone goes on.
        let mut round = Vec::new();
        round.extend(rec(1, 4, 2, 6, 4, 10, 3, 1));
        round.extend(rec(2, 1, 1, 3, 4, 10, 1, 1));
        round.extend(rec(NONE, 0, 0, 0, 4, 8, 0, 0));
        round.extend(rec(NONE, 0, 0, 0, 4, 10, 0, 1));
        r.absorb(&round);
        // Mostly constant so far: slot 3 draws ahead, twice the last round's 3, capped by 5.
        let (at, masks) = r.next_masks(0, 4).unwrap();
        assert_eq!((at, masks.len(), masks[0].count_ones()), (3, 1, 5), "only slot 3 draws");
        let drawn_ahead = masks[0];
        assert_eq!(r.next_masks(0, 3), None, "slots 0-2 draw no more");
        // Those 5 hold 2 non-constant features, one more than the 1 needed: undone.
        let mut over = vec![0u32; 4 * SPLIT_WORDS];
        over[3 * SPLIT_WORDS..].copy_from_slice(&rec(7, 0, 3, 9, 4, 10, 2, 1));
        r.absorb(&over);
        assert_eq!(r.records()[3 * SPLIT_WORDS], NONE, "the overshooting round's split is dropped");
        // The retry draws a prefix of the undone round's draws: 2 (half of 5), still 2 varying.
        let (at, masks) = r.next_masks(0, 4).unwrap();
        assert_eq!((at, masks[0].count_ones(), masks[0] & drawn_ahead), (3, 2, masks[0]));
        r.absorb(&over);
        // Then 1, which cannot overshoot.
        let (_, masks) = r.next_masks(0, 4).unwrap();
        assert_eq!(masks[0].count_ones(), 1);
        let j = masks[0].trailing_zeros();
        let mut last = vec![0u32; 4 * SPLIT_WORDS];
        last[3 * SPLIT_WORDS..].copy_from_slice(&rec(j, 2, 1, 1, 4, 10, 1, 1));
        r.absorb(&last);
        assert!(!r.any_active());
        let out = r.records();
        assert_eq!(&out[..SPLIT_WORDS], &rec(1, 4, 2, 6, 4, 10, 3, 1));
        assert_eq!(&out[SPLIT_WORDS..SPLIT_WORDS + 6], &rec(2, 1, 1, 3, 4, 10, 1, 1)[..6]);
        assert_eq!(out[2 * SPLIT_WORDS], NONE);
        assert_eq!(&out[3 * SPLIT_WORDS..3 * SPLIT_WORDS + 6], &rec(j, 2, 1, 1, 4, 10, 1, 1)[..6]);
    }
}
