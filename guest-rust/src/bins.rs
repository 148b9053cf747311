//! Bin edges per feature (docs/algorithm.md §4), computed in the guest from the training
//! column or its random sample, then handed to the `bin-features` kernel.

use crate::rng;

/// Training rows above which the edges come from a sample of this many rows.
pub const SAMPLE_ROWS: u64 = 200_000;

/// The training rows the bin edges are computed from, ascending (a row drawn twice appears
/// twice): every row, or when there are more than [`SAMPLE_ROWS`] the draws
/// `mulhi(key(seed, 3, k), rows)` for `k in 0..SAMPLE_ROWS` (§4, with replacement).
pub fn sample_rows(rows: u64, seed: u64) -> Vec<u32> {
    if rows <= SAMPLE_ROWS {
        return (0..rows as u32).collect();
    }
    let (lo, hi) = rng::seed_words(seed);
    let mut drawn: Vec<u32> = (0..SAMPLE_ROWS as u32).map(|k| rng::mulhi(rng::key(&[lo, hi, 3, k]), rows as u32)).collect();
    drawn.sort_unstable();
    drawn
}

/// The midpoint of two adjacent sorted values, rounded to f32 and never equal to `b`.
fn mid(a: f32, b: f32) -> f32 {
    let m = ((f64::from(a) + f64::from(b)) * 0.5) as f32;
    if m >= b { a } else { m }
}

/// Exactly `max_bins - 1` edges for one feature (§4), padded with `+inf`: every midpoint
/// between distinct values when there are at most `max_bins` of them, otherwise edges between
/// runs of equal values placed greedily so that bins are as balanced as the runs allow.
/// `column` is sorted here; it must hold no NaN.
pub fn feature_edges(column: &mut [f32], max_bins: u32) -> Vec<f32> {
    column.sort_unstable_by(f32::total_cmp);
    // Runs of equal values: (value, count).
    let mut runs: Vec<(f32, u64)> = Vec::new();
    for &v in column.iter() {
        match runs.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => runs.push((v, 1)),
        }
    }
    let n_edges = (max_bins - 1) as usize;
    let mut edges: Vec<f32> = Vec::with_capacity(n_edges);
    let d = runs.len() as u64;
    if d <= u64::from(max_bins) {
        edges.extend(runs.windows(2).map(|w| mid(w[0].0, w[1].0)));
    } else {
        let (mut left, mut rest, mut cur) = (u64::from(max_bins), column.len() as u64, 0u64);
        for i in 0..runs.len() - 1 {
            cur += runs[i].1;
            if left == 1 {
                break;
            }
            let runs_after = d - 1 - i as u64;
            if runs_after < left || (2 * cur + runs[i + 1].1) * left >= 2 * rest {
                edges.push(mid(runs[i].0, runs[i + 1].0));
                rest -= cur;
                cur = 0;
                left -= 1;
            }
        }
    }
    debug_assert!(edges.len() <= n_edges && edges.windows(2).all(|w| w[0] < w[1]));
    edges.resize(n_edges, f32::INFINITY);
    edges
}

/// `bin(x)` = number of edges below `x`, as the kernel computes it (for tests and checks).
#[cfg(test)]
pub fn bin_of(edges: &[f32], x: f32) -> usize {
    edges.partition_point(|&e| e < x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_midpoints() {
        let mut col = vec![3.0, 1.0, 2.0, 1.0, 3.0];
        let e = feature_edges(&mut col, 4);
        assert_eq!(e, vec![1.5, 2.5, f32::INFINITY]);
        assert_eq!(bin_of(&e, 1.0), 0);
        assert_eq!(bin_of(&e, 2.0), 1);
        assert_eq!(bin_of(&e, 3.0), 2);
    }

    #[test]
    fn constant_column_has_no_edges() {
        let mut col = vec![5.0; 10];
        assert_eq!(feature_edges(&mut col, 256), vec![f32::INFINITY; 255]);
    }

    #[test]
    fn many_values_get_balanced_bins() {
        let mut col: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let e = feature_edges(&mut col, 4);
        assert_eq!(e, vec![24.5, 49.5, 74.5]);
    }

    #[test]
    fn ties_never_lose_boundaries() {
        // Integers 0..999, 20 copies each: 255 edges, all between distinct values, about
        // four values per bin.
        let mut col: Vec<f32> = (0..20_000).map(|i| (i % 1000) as f32).collect();
        let e = feature_edges(&mut col, 256);
        let finite: Vec<f32> = e.iter().copied().filter(|v| v.is_finite()).collect();
        assert_eq!(finite.len(), 255);
        assert!(finite.windows(2).all(|w| w[0] < w[1]));
        assert!(finite.iter().all(|v| v.fract() == 0.5));
        // A heavy run gets its own bin and the rest is spread evenly.
        let mut col: Vec<f32> = vec![0.0; 900];
        col.extend((0..100).map(|i| 1.0 + i as f32));
        let e = feature_edges(&mut col, 8);
        assert_eq!(e[0], 0.5);
        assert!(e.iter().all(|v| v.is_finite()));
        let sizes: Vec<usize> = (0..8).map(|b| col.iter().filter(|&&x| bin_of(&e, x) == b).count()).collect();
        assert_eq!(sizes[0], 900);
        assert!(sizes[1..].iter().all(|&n| (13..=16).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn edges_use_every_bin_when_runs_allow() {
        // 257 distinct values, the first with most of the weight: still 255 edges.
        let mut col: Vec<f32> = vec![0.0; 10_000];
        col.extend((1..257).map(|i| i as f32));
        let e = feature_edges(&mut col, 256);
        assert!(e.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn midpoint_never_reaches_upper_value() {
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        let m = mid(a, b);
        assert!(m < b);
        assert_eq!(m, a);
        let mut col = vec![a, b];
        let e = feature_edges(&mut col, 2);
        assert_eq!(bin_of(&e, a), 0);
        assert_eq!(bin_of(&e, b), 1);
    }

    #[test]
    fn sample_rows_are_random_draws() {
        assert_eq!(sample_rows(5, 42), vec![0, 1, 2, 3, 4]);
        let rows = 1_000_000u64;
        let s = sample_rows(rows, 42);
        assert_eq!(s.len() as u64, SAMPLE_ROWS);
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s[0], s.iter().copied().min().unwrap());
        let (lo, hi) = rng::seed_words(42);
        let first = rng::mulhi(rng::key(&[lo, hi, 3, 0]), rows as u32);
        assert!(s.binary_search(&first).is_ok());
        // Spread over the whole range, not a prefix.
        assert!(*s.last().unwrap() > 990_000 && s[0] < 10_000);
        assert_ne!(sample_rows(rows, 42), sample_rows(rows, 43));
    }
}
