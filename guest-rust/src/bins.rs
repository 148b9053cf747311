//! Quantile bin edges per feature (docs/algorithm.md §4), computed in the guest from the
//! training column or its fixed sample, then handed to the `bin-features` kernel.

/// Training rows above which the edges come from a fixed sample of this many rows.
pub const SAMPLE_ROWS: u64 = 200_000;

/// The training rows the bin edges are computed from: every row, or
/// `floor(k * rows / 200000)` for `k in 0..200000` when there are more rows.
pub fn sample_row(k: u64, rows: u64) -> u64 {
    if rows > SAMPLE_ROWS { k * rows / SAMPLE_ROWS } else { k }
}

/// How many rows [`sample_row`] yields.
pub fn sample_len(rows: u64) -> u64 {
    rows.min(SAMPLE_ROWS)
}

/// The midpoint of two adjacent sorted values, rounded to f32 and never equal to `b`.
fn mid(a: f32, b: f32) -> f32 {
    let m = ((f64::from(a) + f64::from(b)) * 0.5) as f32;
    if m >= b { a } else { m }
}

/// Exactly `max_bins - 1` edges for one feature: the strictly increasing quantile edges
/// of `column`, padded with `+inf`. `column` is sorted here; it must hold no NaN.
pub fn feature_edges(column: &mut [f32], max_bins: u32) -> Vec<f32> {
    column.sort_unstable_by(f32::total_cmp);
    let s: &[f32] = column;
    let n_edges = (max_bins - 1) as usize;
    let mut edges: Vec<f32> = Vec::with_capacity(n_edges);
    fn keep(c: f32, edges: &mut Vec<f32>) {
        if edges.last().is_none_or(|&last| c > last) {
            edges.push(c);
        }
    }
    let mut distinct: Vec<f32> = s.to_vec();
    distinct.dedup();
    if distinct.len() <= max_bins as usize {
        for pair in distinct.windows(2) {
            keep(mid(pair[0], pair[1]), &mut edges);
        }
    } else {
        let n = s.len() as u64;
        for j in 1..u64::from(max_bins) {
            let i = j * n / u64::from(max_bins);
            if 0 < i && i < n && s[i as usize - 1] < s[i as usize] {
                keep(mid(s[i as usize - 1], s[i as usize]), &mut edges);
            }
        }
    }
    debug_assert!(edges.len() <= n_edges);
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
    fn many_values_use_quantiles() {
        let mut col: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let e = feature_edges(&mut col, 4);
        // i = 25, 50, 75 -> mid(24, 25) etc.
        assert_eq!(e, vec![24.5, 49.5, 74.5]);
    }

    #[test]
    fn quantile_ties_are_skipped_and_edges_increase() {
        let mut col: Vec<f32> = vec![0.0; 90];
        col.extend((0..10).map(|i| 1.0 + i as f32));
        let e = feature_edges(&mut col, 8);
        let finite: Vec<f32> = e.iter().copied().filter(|v| v.is_finite()).collect();
        assert!(finite.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(e.len(), 7);
        // Only the last quantile (i = 87) would cross 0; ties inside the zeros give nothing.
        assert!(finite.len() < 7);
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
    fn sample_rows_are_spread() {
        assert_eq!(sample_len(10), 10);
        assert_eq!(sample_row(7, 10), 7);
        assert_eq!(sample_len(400_000), 200_000);
        assert_eq!(sample_row(1, 400_000), 2);
        assert_eq!(sample_row(199_999, 400_001), 199_999u64 * 400_001 / 200_000);
    }
}
