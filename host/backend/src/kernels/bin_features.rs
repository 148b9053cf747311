//! `bin-features`: raw f32 features to one quantile-bin byte per row and feature.

use super::par_chunks;
use crate::params::BinFeaturesParams;

/// `x`: rows*features f32 row-major; `edges`: features*(max_bins-1) ascending;
/// `bins`: features*ceil(rows/4) words, bin = number of edges < x.
pub fn bin_features(p: &BinFeaturesParams, x: &[f32], edges: &[f32], bins: &mut [u32]) {
    let rows = p.rows as usize;
    let features = p.features as usize;
    let n_edges = (p.max_bins - 1) as usize;
    let words = rows.div_ceil(4);
    // Edges are buffer contents: count them one by one unless they are sorted, where a
    // binary search gives the same count.
    let sorted: Vec<bool> = (0..features).map(|j| edges[j * n_edges..(j + 1) * n_edges].windows(2).all(|e| e[0] <= e[1])).collect();
    par_chunks(&mut bins[..features * words], 1024, |start, out| {
        for (k, word) in out.iter_mut().enumerate() {
            let index = start + k;
            let (feature, w) = (index / words, index % words);
            let edges = &edges[feature * n_edges..(feature + 1) * n_edges];
            let sorted = sorted[feature];
            let mut packed = 0u32;
            for lane in 0..4 {
                let row = w * 4 + lane;
                if row < rows {
                    let v = x[row * features + feature];
                    // Number of edges strictly below v.
                    let bin = if sorted { edges.partition_point(|&e| e < v) } else { edges.iter().filter(|&&e| e < v).count() } as u32;
                    packed |= bin.min(255) << (lane * 8);
                }
            }
            *word = packed;
        }
    });
}
