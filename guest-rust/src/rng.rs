//! Counter-based random numbers (docs/algorithm.md §2), identical to the kernels' and the
//! C++ guest's: the guest uses them for per-node feature subsampling (§8).

/// The 32-bit integer hash every `key` is built from.
#[inline]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Hashes a sequence of words into one random number.
#[inline]
pub fn key(words: &[u32]) -> u32 {
    words.iter().fold(0x243f_6a88, |h, &w| mix32(h ^ w))
}

/// Maps a random `r` uniformly onto `[0, n)`.
#[inline]
pub fn mulhi(r: u32, n: u32) -> u32 {
    ((u64::from(r) * u64::from(n)) >> 32) as u32
}

/// The low and high 32-bit words of a seed, as every key uses them.
#[inline]
pub fn seed_words(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}

/// The Fisher-Yates shuffle of the candidate features of node `node` of global tree `tree`
/// (§8), drawn lazily: [`Shuffle::next`] gives draw 0, 1, ... of the same permutation that
/// a full shuffle would give, remembering only the positions that earlier draws moved.
#[derive(Debug, Clone)]
pub struct Shuffle {
    tree: u32,
    node: u32,
    drawn: u32,
    /// (position, value) of positions past `drawn` that hold another value than `candidates`.
    moved: Vec<(u32, u32)>,
}

impl Shuffle {
    pub fn new(tree: u32, node: u32) -> Self {
        Shuffle { tree, node, drawn: 0, moved: Vec::new() }
    }

    /// Draws so far.
    pub fn drawn(&self) -> u32 {
        self.drawn
    }

    /// The next draw: `r = key(seed, 2, tree, node, i)`, `p = i + mulhi(r, len - i)`, swap
    /// positions `i` and `p`, return position `i`. Must not be called past `candidates.len()`.
    pub fn next(&mut self, seed: u64, candidates: &[u32]) -> u32 {
        let (lo, hi) = seed_words(seed);
        let i = self.drawn;
        let len = candidates.len() as u32;
        debug_assert!(i < len);
        let p = i + mulhi(key(&[lo, hi, 2, self.tree, self.node, i]), len - i);
        let at =
            |moved: &[(u32, u32)], pos: u32| moved.iter().rev().find(|&&(q, _)| q == pos).map_or(candidates[pos as usize], |&(_, v)| v);
        let (vi, vp) = (at(&self.moved, i), at(&self.moved, p));
        // Position i is never read again; position p now holds what was at i.
        self.moved.retain(|&(q, _)| q > i);
        if p != i {
            self.moved.push((p, vi));
        }
        self.drawn += 1;
        vp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix32_known_values() {
        assert_eq!(mix32(0), 0);
        // Computed by hand from the definition (lowbias32).
        let mut x: u32 = 1;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846ca68b);
        x ^= x >> 16;
        assert_eq!(mix32(1), x);
        assert_ne!(mix32(1), mix32(2));
    }

    #[test]
    fn key_folds_words_in_order() {
        assert_eq!(key(&[]), 0x243f6a88);
        assert_eq!(key(&[7]), mix32(0x243f6a88 ^ 7));
        assert_eq!(key(&[7, 9]), mix32(mix32(0x243f6a88 ^ 7) ^ 9));
        assert_ne!(key(&[7, 9]), key(&[9, 7]));
    }

    #[test]
    fn mulhi_stays_in_range() {
        assert_eq!(mulhi(0, 10), 0);
        assert_eq!(mulhi(u32::MAX, 10), 9);
        assert_eq!(mulhi(1 << 31, 10), 5);
        assert_eq!(mulhi(u32::MAX, 1), 0);
    }

    /// The first `m` draws of a full, eager Fisher-Yates shuffle (the definition).
    fn eager(seed: u64, tree: u32, node: u32, candidates: &[u32], m: u32) -> Vec<u32> {
        let (lo, hi) = seed_words(seed);
        let mut perm = candidates.to_vec();
        let len = perm.len() as u32;
        for i in 0..m {
            let p = i + mulhi(key(&[lo, hi, 2, tree, node, i]), len - i);
            perm.swap(i as usize, p as usize);
        }
        perm.truncate(m as usize);
        perm
    }

    #[test]
    fn lazy_shuffle_equals_the_full_shuffle() {
        for (len, seed, tree, node) in [(1u32, 1u64, 0u32, 0u32), (10, 42, 3, 5), (40, 7, 1, 2), (300, 0x1234_5678_9abc_def0, 9, 77)] {
            let candidates: Vec<u32> = (0..len).map(|j| 3 * j + 1).collect();
            let mut lazy = Shuffle::new(tree, node);
            let drawn: Vec<u32> = (0..len).map(|_| lazy.next(seed, &candidates)).collect();
            assert_eq!(drawn, eager(seed, tree, node, &candidates, len));
            assert_eq!(lazy.drawn(), len);
            let mut sorted = drawn.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, candidates, "a permutation of the candidates");
        }
    }

    #[test]
    fn first_draw_follows_the_key() {
        // Draw 0 is candidates[mulhi(key(lo, hi, 2, t, k, 0), len)].
        let (lo, hi) = seed_words(0x1234_5678_9abc_def0);
        let r = key(&[lo, hi, 2, 1, 2, 0]);
        let even: Vec<u32> = (0..10).step_by(2).collect();
        assert_eq!(Shuffle::new(1, 2).next(0x1234_5678_9abc_def0, &even), even[mulhi(r, 5) as usize]);
    }
}
