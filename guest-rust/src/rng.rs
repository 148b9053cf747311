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

/// The candidate features of node `node` of global tree `tree` (§8): the first `m` entries
/// of a partial Fisher-Yates shuffle of `candidates` (the non-constant features, ascending),
/// as a bit set of `ceil(features/32)` words.
pub fn feature_mask(seed: u64, tree: u32, node: u32, candidates: &[u32], features: u32, m: u32) -> Vec<u32> {
    let (lo, hi) = seed_words(seed);
    let mut perm = candidates.to_vec();
    let len = perm.len() as u32;
    let m = m.min(len);
    for i in 0..m {
        let r = key(&[lo, hi, 2, tree, node, i]);
        let p = i + mulhi(r, len - i);
        perm.swap(i as usize, p as usize);
    }
    let mut mask = vec![0u32; features.div_ceil(32) as usize];
    for &j in &perm[..m as usize] {
        mask[(j / 32) as usize] |= 1 << (j % 32);
    }
    mask
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

    #[test]
    fn feature_mask_has_m_bits_and_is_deterministic() {
        let all: Vec<u32> = (0..40).collect();
        for m in 1..=40 {
            let mask = feature_mask(42, 3, 5, &all, 40, m);
            assert_eq!(mask.len(), 2);
            assert_eq!(mask.iter().map(|w| w.count_ones()).sum::<u32>(), m);
            assert_eq!(mask, feature_mask(42, 3, 5, &all, 40, m));
            assert_eq!(mask[1] >> 8, 0, "bits beyond feature 39 must be clear");
        }
        assert_ne!(feature_mask(42, 3, 5, &all, 40, 5), feature_mask(42, 3, 6, &all, 40, 5));
        assert_ne!(feature_mask(42, 3, 5, &all, 40, 5), feature_mask(43, 3, 5, &all, 40, 5));
    }

    #[test]
    fn feature_mask_follows_fisher_yates_over_candidates() {
        // With one draw the chosen feature is candidates[mulhi(key(lo, hi, 2, t, k, 0), len)].
        let (lo, hi) = seed_words(0x1234_5678_9abc_def0);
        let r = key(&[lo, hi, 2, 1, 2, 0]);
        let all: Vec<u32> = (0..10).collect();
        assert_eq!(feature_mask(0x1234_5678_9abc_def0, 1, 2, &all, 10, 1), vec![1 << mulhi(r, 10)]);
        // Constant features (here the odd ones) are never drawn.
        let even: Vec<u32> = (0..10).step_by(2).collect();
        let j = even[mulhi(r, 5) as usize];
        assert_eq!(feature_mask(0x1234_5678_9abc_def0, 1, 2, &even, 10, 1), vec![1 << j]);
        for m in 1..=5 {
            let mask = feature_mask(7, 0, 0, &even, 10, m)[0];
            assert_eq!(mask & 0xaaaa_aaaa, 0);
            assert_eq!(mask.count_ones(), m);
        }
    }
}
