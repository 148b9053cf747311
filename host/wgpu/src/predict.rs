//! `predict-forest`: one invocation per row of the span Device asks for
//! (`predict_forest.wgsl`), in launches of few enough trees that each invocation's walks
//! stay short, and with walks too long for one launch resumed over several.

use wasi_gpu_backend::{BufferId, GpuError, PredictParams, PredictSpan};

use crate::backend::WgpuBackend;
use crate::scratch::Which;

/// Walk steps (row x tree x (max_depth + 1)) of one launch on a hardware adapter, which
/// runs tens of thousands of rows at once: measured with tests/predict_timing.rs on an
/// NVIDIA H200 (Vulkan, driver 580.159), 2^30 steps over 16384-1048576 rows took 2.5-11 ms.
const HARDWARE_STEPS: u64 = 1 << 30;
/// ... and on a software adapter (llvmpipe/lavapipe, the CPU's cores). Measured with
/// tests/predict_timing.rs on lavapipe (Mesa 22.3.6, LLVM 15, 2 busy cores, 256-bit
/// vectors): 4.4-8.8 ns per step with 8 rows or more (2^24 steps in 74-149 ms), ~50 ns per
/// step for a single row (2^24 steps in 0.84 s, as launches of 65535 steps, below). So
/// 2^23 steps take 40-75 ms, and at most ~0.42 s for a lone row (cancellable every ~3 ms).
const SOFTWARE_STEPS: u64 = 1 << 23;
/// Most loop passes one row (one invocation: a serial walk) makes per launch: a tree costs
/// at most `max_depth + 3` (`max_depth + 1` steps, the walk loop's pass that leaves it and
/// the tree loop's pass), and the tree loop's last pass one more. A span of few rows and
/// many trees is split further by trees, so
/// that the launch still ends soon on a GPU, where one invocation's dependent loads take
/// far longer than on a CPU (on the H200 above: 160-220 ns per step of a lone row, so a
/// launch of 2^17 steps a row takes ~21-30 ms however few rows it has)...
const HARDWARE_ROW_STEPS: u64 = 1 << 17;
/// ... and on a software adapter, where llvmpipe ends all loops of a shader invocation once
/// they have made 65535 passes together (`loops.rs`; one row, 2 trees, chains of 32767
/// steps reach 1 leaf, not 2), so a launch of more passes per row would silently stop walks
/// early. Where one tree alone needs more (max_depth >= 65532), its walks are cut into
/// launches of at most 65534 steps ([`WgpuBackend::predict_long_walks`]).
const SOFTWARE_ROW_STEPS: u64 = 65535;

/// [`HARDWARE_ROW_STEPS`] or [`SOFTWARE_ROW_STEPS`].
pub(crate) fn row_steps(hardware: bool) -> u64 {
    if hardware { HARDWARE_ROW_STEPS } else { SOFTWARE_ROW_STEPS }
}

impl WgpuBackend {
    /// [`wasi_gpu_backend::Backend::predict_steps_per_launch`] for this adapter.
    pub(crate) fn predict_steps(&self) -> u64 {
        if self.info.hardware { HARDWARE_STEPS } else { SOFTWARE_STEPS }
    }

    /// Sums trees `span.trees()` into rows `span.rows()`: set when `span.tree_begin == 0`,
    /// added otherwise. `ids`: x, nodes, roots, sums.
    pub(crate) fn predict_span(&mut self, p: &PredictParams, span: &PredictSpan, ids: [BufferId; 4]) -> Result<(), GpuError> {
        // Each tree costs at most max_depth + 2 passes of the walk loop and one of the tree
        // loop; the tree loop's last pass one more.
        let per_tree = p.max_depth as u64 + 3;
        if per_tree + 1 > self.predict_row_steps {
            // One tree is too much for a launch: on a software adapter a must (or the walks
            // would stop early), on a hardware one where the scratch it needs fits (else
            // one tree a launch, as long as its walks are).
            let rows = span.row_end.saturating_sub(span.row_begin) as u64;
            if !self.info.hardware || rows.min(LONG_WALK_ROWS) * 4 <= self.budget.scratch_bytes {
                return self.predict_long_walks(p, span, ids);
            }
        }
        let trees_per = (self.predict_row_steps.saturating_sub(1) / per_tree).clamp(1, u32::MAX as u64) as u32;
        let rows = span.row_end.saturating_sub(span.row_begin) as u64;
        let [x, nodes, roots, sums] = ids;
        let bufs = [self.buf(x)?, self.buf(nodes)?, self.buf(roots)?, self.buf(sums)?];
        let mut tree = span.tree_begin;
        loop {
            // The first launch sets the sums when the span starts at tree 0; later ones add.
            let end = tree + trees_per.min(span.tree_end.saturating_sub(tree));
            let params = [0, 0, p.features, p.node_count, p.max_depth, span.row_begin, span.row_end, tree, end];
            let mut encoder = self.encoder();
            self.dispatch(&mut encoder, &self.kernels.predict_forest, &params, &bufs, rows);
            self.submit(encoder)?;
            tree = end;
            if tree >= span.tree_end {
                return Ok(());
            }
            self.wait()?;
            self.budget.cancel.check("predict-forest")?;
        }
    }

    /// [`Self::predict_span`] for walks longer than one launch may take: tree by tree, each
    /// tree's walks cut into launches of at most `predict_row_steps - 1` steps (plus the
    /// pass that leaves the loop), where each row's walk stands kept between them in scratch
    /// (`walk_part` in predict_forest.wgsl); rows in blocks of at most [`LONG_WALK_ROWS`]
    /// (fewer if the scratch budget is smaller).
    pub(crate) fn predict_long_walks(&mut self, p: &PredictParams, span: &PredictSpan, ids: [BufferId; 4]) -> Result<(), GpuError> {
        const KERNEL: &str = "predict-forest";
        let rows = span.row_end.saturating_sub(span.row_begin) as u64;
        if rows == 0 {
            return Ok(());
        }
        // A walk takes at most max_depth + 1 steps, and no more than there are nodes (every
        // step goes to a later node).
        let walk_steps = (p.max_depth as u64 + 1).min(p.node_count as u64).max(1);
        let per_launch = self.predict_row_steps.saturating_sub(1).clamp(1, u32::MAX as u64);
        let block = rows.min(LONG_WALK_ROWS).min(self.budget.scratch_bytes / 4).min(self.info.max_buffer_bytes / 4);
        if block == 0 {
            return Err(GpuError::LimitExceeded(format!(
                "{KERNEL} with max-depth {} needs at least 4 bytes of device scratch memory on this device, but only {} \
                 bytes of this guest's limit (--max-device-memory) are left beside its buffers; raise --max-device-memory \
                 or drop buffers first",
                p.max_depth, self.budget.scratch_bytes
            )));
        }
        self.reserve(KERNEL, &[(Which::Walk, block * 4)])?;
        let [x, nodes, roots, sums] = ids;
        let bufs = [self.buf(x)?, self.buf(nodes)?, self.buf(roots)?, self.buf(sums)?];
        let walk = self.scratch.get(Which::Walk)?;
        let bindings = [(1, bufs[0]), (2, bufs[1]), (3, bufs[2]), (4, bufs[3]), (5, walk)];
        let mut launched = false;
        let mut row = span.row_begin as u64;
        while row < span.row_end as u64 {
            let end = (row + block).min(span.row_end as u64);
            let (row_begin, row_end) = (row as u32, end as u32);
            let mut encoder = self.encoder();
            if span.tree_begin == 0 {
                // The rows' sums start at 0: `main` over no tree sets them so.
                let params = [0, 0, p.features, p.node_count, p.max_depth, row_begin, row_end, 0, 0];
                self.dispatch(&mut encoder, &self.kernels.predict_forest, &params, &bufs, end - row);
            }
            for tree in span.tree_begin..span.tree_end {
                let mut done = 0;
                while done < walk_steps {
                    if launched {
                        self.submit(std::mem::replace(&mut encoder, self.encoder()))?;
                        self.wait()?;
                        self.budget.cancel.check(KERNEL)?;
                    }
                    launched = true;
                    let steps = per_launch.min(walk_steps - done);
                    let params =
                        [0, 0, p.features, p.node_count, p.max_depth, row_begin, row_end, tree, tree + 1, steps as u32, (done > 0) as u32];
                    self.dispatch_at(&mut encoder, &self.kernels.predict_walk, &params, &bindings, end - row);
                    done += steps;
                }
            }
            self.submit(encoder)?;
            row = end;
        }
        Ok(())
    }
}

/// Most rows of one block of [`WgpuBackend::predict_long_walks`] (their walks' state takes 4
/// bytes each of scratch).
const LONG_WALK_ROWS: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use wasi_gpu_backend::{Backend, CallBudget, CancelToken, GpuError, NONE, PredictParams, PredictSpan, kernels};

    use crate::adapter::test_backend;
    use crate::backend::WgpuBackend;

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Uploads x, nodes, roots and sums as buffers 1..=4, runs `spans` in order, and
    /// returns the sums, or the first error.
    fn run(b: &mut WgpuBackend, p: &PredictParams, spans: &[PredictSpan], bufs: [&[u32]; 4]) -> Result<Vec<u32>, GpuError> {
        for (i, words) in bufs.iter().enumerate() {
            b.alloc(i as u64 + 1, words.len() as u64 * 4)?;
            b.write(i as u64 + 1, 0, &bytes(words))?;
        }
        let result = spans.iter().try_for_each(|span| b.predict_forest(p, span, 1, 2, 3, 4));
        let out = result.and_then(|_| b.read(4, 0, bufs[3].len() as u64 * 4));
        for i in 1..=4 {
            b.free(i);
        }
        Ok(out?.chunks(4).map(|q| u32::from_le_bytes(q.try_into().unwrap())).collect())
    }

    /// The reference: the same spans through `kernels::predict_forest_span`.
    fn reference(p: &PredictParams, spans: &[PredictSpan], bufs: [&[u32]; 4]) -> Vec<u32> {
        let x: Vec<f32> = bufs[0].iter().map(|&w| f32::from_bits(w)).collect();
        let mut sums = bufs[3].to_vec();
        for span in spans {
            kernels::predict_forest_span(p, span, &x, bufs[1], bufs[2], &mut sums);
        }
        sums
    }

    /// A chain of `depth` splits (both children the next node) ending in a leaf of value 1.
    fn chain(depth: u32) -> Vec<u32> {
        let mut nodes: Vec<u32> = (0..depth).flat_map(|i| [0, 0.5f32.to_bits(), i + 1, i + 1]).collect();
        nodes.extend([NONE, 1, 0, 0]);
        nodes
    }

    /// A call budget with room for the walks' state.
    fn roomy() -> CallBudget {
        CallBudget { scratch_bytes: 1 << 20, cancel: CancelToken::new() }
    }

    #[test]
    fn rows_of_long_walks_take_several_launches() {
        let Some(mut b) = test_backend() else { return };
        b.begin_call(&roomy());
        // Leaves near 2^64 (sums carry), back-edges, children out of range, several trees
        // per launch or one.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        let (rows, features, trees, node_count, max_depth) = (70u32, 3u32, 37u32, 300u32, 9u32);
        let p = PredictParams { rows, features, tree_count: trees, node_count, max_depth };
        let mut nodes = Vec::new();
        for i in 0..node_count {
            if next() % 4 == 0 {
                nodes.extend([NONE, next(), u32::MAX - next() % 3, 0]);
            } else {
                let mut child = || if next() % 10 == 0 { next() % (node_count + 3) } else { i + 1 + next() % 3 };
                let (left, right) = (child(), child());
                nodes.extend([next() % (features + 1), (next() as f32 / u32::MAX as f32).to_bits(), left, right]);
            }
        }
        let x: Vec<u32> = (0..rows * features).map(|_| (next() as f32 / u32::MAX as f32).to_bits()).collect();
        let roots: Vec<u32> = (0..trees).map(|_| next() % (node_count + 2)).collect();
        let sums: Vec<u32> = (0..rows * 4).map(|_| next()).collect();
        let spans = [
            vec![PredictSpan::all(&p)],
            PredictSpan::split(&p, 500).collect(),
            vec![
                PredictSpan { row_begin: 3, row_end: 50, tree_begin: 5, tree_end: 30 },
                PredictSpan { row_begin: 0, row_end: 70, tree_begin: 0, tree_end: 0 },
            ],
        ];
        // 1 and 11: each walk cut into launches of 1 and 10 steps (predict_long_walks).
        for row_steps in [1, 11, 50, 1 << 20] {
            b.predict_row_steps = row_steps;
            for spans in &spans {
                let bufs = [&x[..], &nodes[..], &roots[..], &sums[..]];
                let got = run(&mut b, &p, spans, bufs).unwrap();
                assert_eq!(got, reference(&p, spans, bufs), "row steps {row_steps}, spans {spans:?}");
            }
        }
    }

    #[test]
    fn walks_longer_than_llvmpipe_loop_limit_together() {
        let Some(mut b) = test_backend() else { return };
        b.begin_call(&CallBudget::default());
        // One row walking 3 chains of 40000 steps: 120000 loop iterations in all.
        let nodes = chain(40_000);
        let p = PredictParams { rows: 1, features: 1, tree_count: 3, node_count: 40_001, max_depth: 40_000 };
        let got = run(&mut b, &p, &[PredictSpan::all(&p)], [&[0], &nodes, &[0, 0, 0], &[9, 9, 9, 9]]).unwrap();
        assert_eq!(got, [3, 0, 0, 0]);
    }

    #[test]
    fn one_walk_longer_than_llvmpipe_loop_limit() {
        let Some(mut b) = test_backend() else { return };
        b.begin_call(&roomy());
        // Chains of 70000 internal nodes before the leaf: its walk takes 70001 steps, more
        // than one llvmpipe invocation may loop; one step fewer does not reach it. Three rows,
        // two trees, the second span adding to the first.
        let nodes = chain(70_000);
        for (max_depth, want) in [(70_000, 2), (69_999, 0)] {
            let p = PredictParams { rows: 3, features: 1, tree_count: 2, node_count: 70_001, max_depth };
            let spans = [
                PredictSpan { row_begin: 0, row_end: 3, tree_begin: 0, tree_end: 1 },
                PredictSpan { row_begin: 0, row_end: 3, tree_begin: 1, tree_end: 2 },
            ];
            let got = run(&mut b, &p, &spans, [&[0; 3], &nodes, &[0, 0], &[9; 12]]).unwrap();
            assert_eq!(got, [want, 0, 0, 0].repeat(3), "max-depth {max_depth}");
        }
        // Without scratch for the walks' state, a software adapter refuses rather than stop
        // the walks early.
        if !b.info.hardware {
            b.begin_call(&CallBudget::default());
            let p = PredictParams { rows: 1, features: 1, tree_count: 1, node_count: 70_001, max_depth: 70_000 };
            let got = run(&mut b, &p, &[PredictSpan::all(&p)], [&[0], &nodes, &[0], &[9; 4]]);
            assert!(matches!(&got, Err(GpuError::LimitExceeded(m)) if m.contains("--max-device-memory")), "{got:?}");
        }
    }

    #[test]
    fn cancel_stops_between_launches() {
        let Some(mut b) = test_backend() else { return };
        let cancel = CancelToken::new();
        cancel.cancel();
        b.begin_call(&CallBudget { scratch_bytes: 0, cancel });
        b.predict_row_steps = 13;
        let nodes = chain(3);
        let p = PredictParams { rows: 5, features: 1, tree_count: 40, node_count: 4, max_depth: 3 };
        let got = run(&mut b, &p, &[PredictSpan::all(&p)], [&[0; 5], &nodes, &[0; 40], &[0; 20]]);
        assert!(matches!(got, Err(GpuError::Cancelled(_))), "{got:?}");
        // One launch of 2 trees fits in 13 loop passes per row (6 a tree and the last one):
        // it runs before the check.
        b.begin_call(&CallBudget::default());
        let got = run(&mut b, &p, &[PredictSpan { tree_end: 2, ..PredictSpan::all(&p) }], [&[0; 5], &nodes, &[0; 40], &[0; 20]]);
        assert_eq!(got.unwrap().iter().step_by(4).copied().collect::<Vec<_>>(), [2; 5]);
    }
}
