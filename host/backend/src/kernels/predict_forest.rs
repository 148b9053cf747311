//! `predict-forest`: walks every tree for every row and sums the leaf values exactly.

use super::par_chunks;
use crate::params::{NODE_WORDS, NONE, PredictParams, PredictSpan};

/// `sums[4r..4r+4]` = the wrapping u128 sum over trees of row r's 64-bit leaf value, least
/// significant word first. A walk that leaves the node array, names a feature out of range,
/// steps to a child that is not after its parent, or exceeds `max_depth + 1` steps adds
/// nothing (docs/algorithm.md §9).
pub fn predict_forest(p: &PredictParams, x: &[f32], nodes: &[u32], roots: &[u32], sums: &mut [u32]) {
    predict_forest_span(p, &PredictSpan::all(p), x, nodes, roots, sums)
}

/// One launch of a split call: rows `span.rows()` get the sum over trees `span.trees()`,
/// added to their current sums when `span.tree_begin > 0`, set otherwise.
pub fn predict_forest_span(p: &PredictParams, span: &PredictSpan, x: &[f32], nodes: &[u32], roots: &[u32], sums: &mut [u32]) {
    let features = p.features as usize;
    let rows = span.row_begin as usize * 4..span.row_end as usize * 4;
    // Tree by tree over a block of rows, so one tree's nodes stay in cache for the block.
    par_chunks(&mut sums[rows], 4 * 1024, |start, out| {
        let first_row = span.row_begin as usize + start / 4;
        let mut totals: Vec<u128> = if span.tree_begin == 0 {
            vec![0u128; out.len() / 4]
        } else {
            out.chunks_exact(4).map(|q| q.iter().rev().fold(0u128, |acc, &w| acc << 32 | w as u128)).collect()
        };
        for &root in &roots[span.tree_begin as usize..span.tree_end as usize] {
            for (k, total) in totals.iter_mut().enumerate() {
                let row = first_row + k;
                let xs = &x[row * features..(row + 1) * features];
                let mut node = root;
                for _ in 0..=p.max_depth {
                    if node >= p.node_count {
                        break;
                    }
                    let rec = &nodes[node as usize * NODE_WORDS as usize..];
                    if rec[0] == NONE {
                        *total = total.wrapping_add((rec[1] as u64 | (rec[2] as u64) << 32) as u128);
                        break;
                    }
                    if rec[0] as usize >= features {
                        break;
                    }
                    let next = if xs[rec[0] as usize] <= f32::from_bits(rec[1]) { rec[2] } else { rec[3] };
                    if next <= node {
                        break;
                    }
                    node = next;
                }
            }
        }
        for (quad, total) in out.chunks_exact_mut(4).zip(totals) {
            for (i, word) in quad.iter_mut().enumerate() {
                *word = (total >> (32 * i)) as u32;
            }
        }
    });
}
