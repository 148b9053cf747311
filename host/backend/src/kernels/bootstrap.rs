//! `bootstrap`: per-tree draw counts from the counter-based RNG, and root slots.

use super::par_chunks;
use super::rng::{key, mulhi};
use crate::params::{BootstrapParams, NONE};

/// `weights[t*rows + r]` = times row r was drawn for local tree t;
/// `node_of[t*rows + r]` = t where drawn, else NONE.
pub fn bootstrap(p: &BootstrapParams, weights: &mut [u32], node_of: &mut [u32]) {
    let rows = p.rows as usize;
    let (lo, hi) = (p.seed as u32, (p.seed >> 32) as u32);
    let n = p.tree_count as usize * rows;
    par_chunks(&mut weights[..n], rows, |start, w| {
        let t = (start / rows) as u32;
        w.fill(0);
        for d in 0..p.draws {
            let row = mulhi(key(&[lo, hi, 1, p.tree_begin + t, d]), p.rows) as usize;
            w[row] += 1;
        }
    });
    for (i, (node, &w)) in node_of[..n].iter_mut().zip(weights[..n].iter()).enumerate() {
        *node = if w > 0 { (i / rows) as u32 } else { NONE };
    }
}
