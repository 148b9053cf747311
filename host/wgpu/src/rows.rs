//! `find-splits-rows`: build-histograms + find-splits through a scratch histogram for
//! batches of few, large slots (the dense path), else without any histogram in device
//! memory (the grouped path, `find_splits_rows.wgsl`).
//!
//! The grouped path reads back the chunk's largest slot and launches the per-slot kernels
//! over a grid of (slot, block of features), each block as wide as the loop budget allows
//! (`loops.rs`), writing partial records that `merge_partials` folds into the records;
//! slots too large for one workgroup's budget even one feature at a time are decided one
//! by one by build-histograms + find-splits over a one-slot histogram.

use wasi_gpu_backend::{BufferId, GpuError, HIST_WORDS, HistogramParams, NONE, RowSplitParams, SPLIT_WORDS, SplitParams};

use crate::WORKGROUP;
use crate::backend::WgpuBackend;
use crate::loops;
use crate::pipelines::{Kernel, Kernels};
use crate::scratch::Which;

/// Words of one scan block of `find_splits_rows.wgsl` (64 threads x 4 words).
const SCAN_BLOCK: u64 = 256;
/// Words of the uniform block of `find_splits_rows.wgsl`.
const ROWS_PARAM_WORDS: usize = 24;
/// Its words set per launch: the chunk's first slot, the scan level (first word, words,
/// next level's first word), the blocks of features (j_per, j_begin, j_end, workgroups per
/// block, blocks), wg_max and the entry counts of the slots merge_partials folds.
const SLOT_BEGIN: usize = 6;
const SCAN_OFF: usize = 12;
const SCAN_LEN: usize = 13;
const SUMS_OFF: usize = 14;
const J_PER: usize = 15;
const J_BEGIN: usize = 16;
const J_END: usize = 17;
const WG_MAX: usize = 18;
const BLOCK_GROUPS: usize = 19;
const BLOCKS: usize = 20;
const M_MIN: usize = 21;
const M_MAX: usize = 22;
/// Bytes of one split record.
const RECORD_BYTES: u64 = SPLIT_WORDS as u64 * 4;
/// The most bytes of partial records one launch writes: more blocks take more launches.
const PARTIALS_MAX_BYTES: u64 = 256 << 20;
/// `find-splits-rows` takes the dense path (build-histograms + find-splits, identical
/// results by definition) only for batches with fewer slots than this: with fewer than
/// about a thousand workgroups a GPU is under-occupied by the one-workgroup-per-slot
/// kernel, whose per-slot work is then a long serial walk over many rows...
const DENSE_MAX_SLOTS: u32 = 1024;
/// ... and only when the batch averages at least this many (tree, row) entries per slot
/// (bounded above by tree_count * rows / slot_count), so that the histogram it
/// materialises is small next to the rows it summarises...
const DENSE_MIN_ENTRIES_PER_SLOT: u64 = 1024;
/// ... and only when that histogram fits in this many bytes of scratch memory (and in the
/// call's scratch budget).
const DENSE_MAX_HIST_BYTES: u64 = 64 << 20;

/// The scan levels of a chunk of `count` slots, as (first word, words); level 0 holds
/// `count + 1` words, each further level one word per block of the level below.
fn scan_levels(count: u32) -> Vec<(u64, u64)> {
    let mut levels = Vec::new();
    let (mut off, mut len) = (0u64, count as u64 + 1);
    loop {
        levels.push((off, len));
        off += len;
        if len <= SCAN_BLOCK {
            return levels;
        }
        len = len.div_ceil(SCAN_BLOCK);
    }
}

/// Words of every scan level of a chunk of `count` slots.
fn scan_words(count: u32) -> u64 {
    scan_levels(count).last().map_or(0, |&(off, len)| off + len)
}

/// Words a chunk of `count` slots needs beside the grouped entries: its scan and one
/// block of partial records.
fn chunk_words(count: u32) -> u64 {
    scan_words(count) + count as u64 * SPLIT_WORDS as u64
}

/// The most slots (at least 1, at most `slots`) whose [`chunk_words`] fit in `words` words.
fn largest_chunk(slots: u32, words: u64) -> u32 {
    let (mut lo, mut hi) = (1u32, slots.max(1));
    if chunk_words(hi) <= words {
        return hi;
    }
    // chunk_words(lo) <= words < chunk_words(hi); chunk_words grows with the count.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if chunk_words(mid) <= words { lo = mid } else { hi = mid }
    }
    lo
}

/// One per-slot kernel's part of a grouped chunk's plan.
struct SplitKernel {
    kernel: fn(&Kernels) -> &Kernel,
    /// Workgroups of one block of features.
    block_groups: u64,
    /// Features per block.
    per: u32,
    /// The entry counts of the slots it decides (merge_partials' m_min..=m_max).
    m: (u32, u32),
}

impl WgpuBackend {
    /// The bytes of the dense histogram when `find-splits-rows` should run as
    /// build-histograms + find-splits (see [`DENSE_MAX_SLOTS`]), or None for the grouped
    /// one-workgroup-per-slot path.
    fn dense_rows_path(&self, p: &RowSplitParams) -> Option<u64> {
        let bytes = p.slot_count as u64 * p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
        let per_slot = p.tree_count as u64 * p.rows as u64 / p.slot_count.max(1) as u64;
        let fits = DENSE_MAX_HIST_BYTES.min(self.info.max_buffer_bytes).min(self.budget.scratch_bytes);
        (p.slot_count < DENSE_MAX_SLOTS && per_slot >= DENSE_MIN_ENTRIES_PER_SLOT && bytes <= fits).then_some(bytes)
    }

    /// `find-splits-rows`. `ids`: bins, targets, weights, node-of, feature-mask, splits.
    pub(crate) fn split_rows(&mut self, p: &RowSplitParams, ids: [BufferId; 6]) -> Result<(), GpuError> {
        if p.slot_count == 0 {
            return Ok(());
        }
        if p.tree_count == 0 || p.rows == 0 {
            // No entries: every slot is an empty leaf (feature NONE, every count and sum 0),
            // written without the per-feature launches the loop budget would plan for
            // `features` (bounded by no buffer here). Slots that are empty among other
            // entries still take the kernels' path.
            let mut records = vec![0u32; p.slot_count as usize * SPLIT_WORDS as usize];
            records.iter_mut().step_by(SPLIT_WORDS as usize).for_each(|w| *w = NONE);
            let offset = p.slot_begin as u64 * SPLIT_WORDS as u64 * 4;
            return wasi_gpu_backend::Backend::write(self, ids[5], offset, bytemuck::cast_slice(&records));
        }
        let Some(hist_bytes) = self.dense_rows_path(p) else {
            return self.split_rows_grouped(p, ids);
        };
        self.reserve("find-splits-rows", &[(Which::Hist, hist_bytes)])?;
        let hist = self.scratch.get(Which::Hist)?;
        let [bins, targets, weights, node_of, mask, splits] = ids;
        let h = [self.buf(bins)?, self.buf(targets)?, self.buf(weights)?, self.buf(node_of)?, hist];
        self.build_histograms_all(&p.histogram(), h)?;
        let mut encoder = self.encoder();
        self.encode_find_splits(&mut encoder, &p.split(), [hist, self.buf(mask)?, self.buf(splits)?]);
        self.submit(encoder)
    }

    /// `find-splits-rows` without a histogram in device memory: per chunk of slots, count
    /// the entries of each slot, scan the counts (multi-level), scatter entry indices by
    /// slot, then decide each slot ([`Self::decide_chunk`]). Chunks are as large as the
    /// scratch budget allows next to the grouped entries; the GPU is waited for and the
    /// cancel token checked between launches.
    fn split_rows_grouped(&mut self, p: &RowSplitParams, ids: [BufferId; 6]) -> Result<(), GpuError> {
        const KERNEL: &str = "find-splits-rows";
        // Device validated node-of as tree_count * rows words inside one buffer, so the
        // entry count fits u32.
        let entries = p.tree_count as u64 * p.rows as u64;
        let entries32 = u32::try_from(entries)
            .map_err(|_| GpuError::LimitExceeded(format!("{entries} (tree, row) entries exceed this wgpu device")))?;
        let order_bytes = (entries * 4).max(4);
        let budget = self.budget.scratch_bytes;
        let room_words = budget.saturating_sub(order_bytes).min(self.info.max_buffer_bytes) / 4;
        if room_words < chunk_words(1) {
            let least = order_bytes + chunk_words(1) * 4;
            return Err(GpuError::LimitExceeded(format!(
                "{KERNEL} needs at least {least} bytes of device scratch memory to group its {entries} (tree, row) \
                 entries, but only {budget} bytes of this guest's limit (--max-device-memory) are left beside its \
                 buffers; raise --max-device-memory or drop buffers first"
            )));
        }
        let chunk = largest_chunk(p.slot_count, room_words);
        let mut first = 0u32;
        while first < p.slot_count {
            if first > 0 {
                // Wait for the chunk before, so that a cancelled run stops here rather than
                // after the GPU has worked through every chunk queued.
                self.wait()?;
                self.budget.cancel.check(KERNEL)?;
            }
            // (Again for every chunk: a one-slot histogram may have displaced them.)
            let needs = [(Which::Order, order_bytes), (Which::Scan, scan_words(chunk) * 4)];
            self.reserve(KERNEL, &needs)?;
            let count = chunk.min(p.slot_count - first);
            let levels = scan_levels(count);
            let (scan, order) = (self.scratch.get(Which::Scan)?, self.scratch.get(Which::Order)?);
            let [_, _, weights, node_of, _, _] = ids.map(|id| self.buf(id));
            let (weights, node_of) = (weights?, node_of?);
            let mut params = [0u32; ROWS_PARAM_WORDS];
            params[2..12].copy_from_slice(&[
                p.rows,
                p.features,
                p.max_bins,
                p.rows.div_ceil(4),
                p.slot_begin + first,
                count,
                p.min_samples_leaf,
                p.mask_words,
                first,
                entries32,
            ]);
            let entry_groups = entries.div_ceil(WORKGROUP as u64);
            let mut encoder = self.encoder();
            encoder.clear_buffer(scan, 0, Some((count as u64 + 1) * 4));
            let k = &self.kernels;
            self.dispatch_groups(&mut encoder, &k.rows_count, &params, &[(3, weights), (4, node_of), (7, scan)], entry_groups);
            for (i, &(off, len)) in levels.iter().enumerate() {
                let mut q = params;
                q[SCAN_OFF] = off as u32;
                q[SCAN_LEN] = len as u32;
                q[SUMS_OFF] = levels.get(i + 1).map_or(NONE, |l| l.0 as u32);
                self.dispatch_groups(&mut encoder, &k.rows_scan, &q, &[(7, scan)], len.div_ceil(SCAN_BLOCK));
            }
            for i in (0..levels.len() - 1).rev() {
                let mut q = params;
                q[SCAN_OFF] = levels[i].0 as u32;
                q[SCAN_LEN] = levels[i].1 as u32;
                q[SUMS_OFF] = levels[i + 1].0 as u32;
                self.dispatch_groups(&mut encoder, &k.rows_add, &q, &[(7, scan)], levels[i].1.div_ceil(WORKGROUP as u64));
            }
            self.dispatch_groups(
                &mut encoder,
                &k.rows_scatter,
                &params,
                &[(3, weights), (4, node_of), (7, scan), (8, order)],
                entry_groups,
            );
            // The largest slot's entry count into scan[count], which nothing reads after the
            // scan.
            encoder.clear_buffer(scan, count as u64 * 4, Some(4));
            self.dispatch_groups(&mut encoder, &k.rows_largest, &params, &[(7, scan)], (count as u64).div_ceil(WORKGROUP as u64));
            self.submit(encoder)?;
            self.decide_chunk(p, ids, &params, &needs)?;
            first += count;
        }
        Ok(())
    }

    /// Decides the slots of one grouped chunk (`params`: its uniform words; `needs`: its
    /// scratch) within `self.loop_budget` loop passes per invocation (`loops.rs`): reads
    /// back the largest slot's entry count (left in the scan's word `count`), then launches
    /// `split_small` and `split_slots` over a grid of (slot, block of features), blocks as
    /// wide as that allows, as many blocks a launch as the partials scratch holds, each
    /// launch followed by `merge_partials`; a slot too large for a workgroup even one
    /// feature at a time is decided alone, by build-histograms + find-splits over blocks of
    /// features of a one-slot histogram.
    fn decide_chunk(
        &mut self,
        p: &RowSplitParams,
        ids: [BufferId; 6],
        params: &[u32; ROWS_PARAM_WORDS],
        needs: &[(Which, u64); 2],
    ) -> Result<(), GpuError> {
        const KERNEL: &str = "find-splits-rows";
        let loop_budget = self.loop_budget;
        let (first, count) = (params[10], params[7]);
        let largest = self.read_words(self.scratch.get(Which::Scan)?, count as u64, 1)?[0];
        let wg_max = loops::split_slots_max_entries(loop_budget);
        let small_groups = (count as u64).div_ceil(WORKGROUP as u64);
        let small_per = loops::split_small_features(loop_budget, largest.min(loops::SMALL));
        let mut plan =
            vec![SplitKernel { kernel: |k| &k.rows_split_small, block_groups: small_groups, per: small_per, m: (0, loops::SMALL) }];
        if largest > loops::SMALL {
            let per = loops::split_slots_features(loop_budget, largest.min(wg_max));
            plan.push(SplitKernel { kernel: |k| &k.rows_split, block_groups: count as u64, per, m: (loops::SMALL + 1, wg_max) });
        }
        // Blocks a launch: as many partial records as the budget leaves beside the chunk's
        // scan and entries (at least one block: the chunk was sized for it), and as
        // merge_partials may fold.
        // What Order and Scan hold now (at least their needs, perhaps more from earlier
        // calls): the partials must fit beside that, or reserve() would remake those
        // buffers smaller and lose the grouped entries and slot ends they hold.
        let held: u64 = needs.iter().map(|&(w, need)| self.scratch.size(w).max(need)).sum();
        let room = self.budget.scratch_bytes.saturating_sub(held).min(self.info.max_buffer_bytes).min(PARTIALS_MAX_BYTES);
        let per_launch = (room / (count as u64 * RECORD_BYTES)).clamp(1, loops::merge_blocks(loop_budget) as u64);
        let mut launches = 0u32;
        for SplitKernel { kernel, block_groups, per, m: (m_min, m_max) } in plan {
            let total = (p.features as u64).div_ceil(per as u64).max(1);
            let mut blk = 0u64;
            while blk < total {
                if launches > 0 {
                    // Wait, so that a cancelled run stops after the launch in flight.
                    self.wait()?;
                    self.budget.cancel.check(KERNEL)?;
                }
                launches += 1;
                let blocks = per_launch.min(total - blk);
                let partial_bytes = blocks * count as u64 * RECORD_BYTES;
                self.reserve(KERNEL, &[needs[0], needs[1], (Which::Partial, partial_bytes)])?;
                let j_begin = (blk * per as u64).min(p.features as u64) as u32;
                let j_end = ((blk + blocks) * per as u64).min(p.features as u64) as u32;
                let mut q = *params;
                (q[J_PER], q[J_BEGIN], q[J_END], q[WG_MAX], q[BLOCK_GROUPS], q[BLOCKS]) =
                    (per, j_begin, j_end, wg_max, block_groups as u32, blocks as u32);
                (q[M_MIN], q[M_MAX]) = (m_min, m_max);
                let [bins, targets, weights, _, mask, splits] = ids.map(|id| self.buf(id));
                let (bins, targets, weights, mask, splits) = (bins?, targets?, weights?, mask?, splits?);
                let (scan, order, partial) =
                    (self.scratch.get(Which::Scan)?, self.scratch.get(Which::Order)?, self.scratch.get(Which::Partial)?);
                // The split kernels write their partial records at blk * count + k of the
                // buffer bound as `splits`, from record 0.
                let mut split_q = q;
                split_q[SLOT_BEGIN] = 0;
                let bindings = [(1, bins), (2, targets), (3, weights), (5, mask), (6, partial), (7, scan), (8, order)];
                let mut encoder = self.encoder();
                self.dispatch_groups(&mut encoder, kernel(&self.kernels), &split_q, &bindings, blocks * block_groups);
                let merge = [(6, splits), (7, scan), (9, partial)];
                self.dispatch_groups(&mut encoder, &self.kernels.rows_merge, &q, &merge, small_groups);
                self.submit(encoder)?;
                blk += blocks;
            }
        }
        if largest <= wg_max {
            return Ok(());
        }
        // The slots above wg_max, from the slot ends the scatter left in scan[0..count]
        // (bounded as the kernels' slot_range bounds them).
        let entries = params[11];
        let ends = self.read_words(self.scratch.get(Which::Scan)?, 0, count as u64)?;
        let mut begin = 0u32;
        let mut large = Vec::new();
        for (k, &end) in ends.iter().enumerate() {
            let end = end.min(entries);
            let start = begin.min(end);
            if end - start > wg_max {
                large.push(k as u32);
            }
            begin = end;
        }
        // One slot's histogram over one block of features: the block as large as both
        // kernels' budgets allow.
        let width = loops::find_splits_features(loop_budget, p.max_bins).min(loops::histogram_features(loop_budget)).min(p.features);
        let hist_bytes = width as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
        self.reserve(KERNEL, &[(Which::Hist, hist_bytes)])?;
        let hist = self.scratch.get(Which::Hist)?;
        let [bins, targets, weights, node_of, mask, splits] = ids.map(|id| self.buf(id));
        let (bins, targets, weights, node_of, mask, splits) = (bins?, targets?, weights?, node_of?, mask?, splits?);
        for k in large {
            let slot_begin = p.slot_begin + first + k;
            let hp = HistogramParams { slot_begin, slot_count: 1, ..p.histogram() };
            let sp = SplitParams { slot_begin, slot_count: 1, ..p.split() };
            for (j0, j1) in loops::blocks(0, p.features, width) {
                self.wait()?;
                self.budget.cancel.check(KERNEL)?;
                self.histogram_block(&hp, [bins, targets, weights, node_of, hist], (j0, j1), (j0, j1 - j0))?;
                let mut encoder = self.encoder();
                self.encode_find_splits_block(&mut encoder, &sp, [hist, mask, splits], first + k, (j0, j1), (j0, j1 - j0));
                self.submit(encoder)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_their_scan() {
        assert_eq!(scan_words(1), 2);
        assert_eq!(scan_words(255), 256);
        assert_eq!(scan_words(256), 257 + 2);
        assert_eq!(chunk_words(1), 2 + 12);
        for words in [2, 3, 256, 257, 258, 259, 260, 1000, 70_000, 1 << 30] {
            for slots in [1, 2, 255, 256, 257, 5000, 1 << 20, u32::MAX] {
                let c = largest_chunk(slots, words);
                assert!(c >= 1 && c <= slots);
                assert!(chunk_words(c) <= words || c == 1, "{slots} slots in {words} words: {c}");
                assert!(c == slots || chunk_words(c + 1) > words, "{slots} slots in {words} words: {c} is not the largest");
            }
        }
    }
}
