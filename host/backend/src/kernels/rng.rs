//! Counter-based random numbers shared by every backend and both guests
//! (docs/algorithm.md §2): the same keys give the same numbers everywhere.

/// A 32-bit integer hash with good avalanche ("lowbias32").
#[inline]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846ca68b);
    x ^= x >> 16;
    x
}

/// Hashes a sequence of words into one random number.
#[inline]
pub fn key(words: &[u32]) -> u32 {
    words.iter().fold(0x243f6a88, |h, &w| mix32(h ^ w))
}

/// Maps a random `r` uniformly onto `[0, n)`.
#[inline]
pub fn mulhi(r: u32, n: u32) -> u32 {
    ((r as u64 * n as u64) >> 32) as u32
}
