//! `apply-splits`: moves every (tree, row) to its child's slot in the next level.

use super::{bin_at, par_chunks};
use crate::params::{ApplyParams, NONE, SPLIT_WORDS};

/// `node_of[i]` becomes `next_slot[2*s + side]`, side 0 when `bin <= split bin`,
/// or NONE when its slot is out of range, has no split, or names a bad feature. Only
/// words 0 (feature) and 1 (bin) of each `SPLIT_WORDS`-word record are read.
pub fn apply_splits(p: &ApplyParams, bins: &[u32], splits: &[u32], next_slot: &[u32], node_of: &mut [u32]) {
    let rows = p.rows as usize;
    let words = rows.div_ceil(4);
    let n = p.tree_count as usize * rows;
    par_chunks(&mut node_of[..n], 4096, |start, out| {
        for (k, node) in out.iter_mut().enumerate() {
            let s = *node;
            if s >= p.slot_count {
                *node = NONE;
                continue;
            }
            let rec = &splits[s as usize * SPLIT_WORDS as usize..];
            let feature = rec[0];
            if feature >= p.features {
                *node = NONE;
                continue;
            }
            let row = (start + k) % rows;
            let side = (bin_at(bins, words, feature as usize, row) > rec[1]) as usize;
            *node = next_slot[s as usize * 2 + side];
        }
    });
}
