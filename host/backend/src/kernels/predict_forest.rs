//! `predict-forest`: walks every tree for every row and sums the leaf values exactly.

use super::par_chunks;
use crate::params::{PredictParams, NODE_WORDS, NONE};

/// `sums[2r], sums[2r+1]` = low, high word of the u64 sum over trees of row r's leaf
/// value. A walk that leaves the node array or exceeds `max_depth` adds nothing.
pub fn predict_forest(p: &PredictParams, x: &[f32], nodes: &[u32], roots: &[u32], sums: &mut [u32]) {
    let features = p.features as usize;
    // Tree by tree over a block of rows, so one tree's nodes stay in cache for the block.
    par_chunks(&mut sums[..p.rows as usize * 2], 2 * 1024, |start, out| {
        let first_row = start / 2;
        let mut totals = vec![0u64; out.len() / 2];
        for &root in &roots[..p.tree_count as usize] {
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
                        *total = total.wrapping_add(rec[1] as u64);
                        break;
                    }
                    if rec[0] as usize >= features {
                        break;
                    }
                    node = if xs[rec[0] as usize] <= f32::from_bits(rec[1]) { rec[2] } else { rec[3] };
                }
            }
        }
        for (pair, total) in out.chunks_exact_mut(2).zip(totals) {
            pair[0] = total as u32;
            pair[1] = (total >> 32) as u32;
        }
    });
}
