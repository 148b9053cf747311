//! The kernels' reference implementations in Rust, one module per kernel.
//!
//! Each `NAME.rs` sits beside `NAME.wgsl` (wgpu backend) and `NAME.cu` (CUDA backend)
//! with the same name, arguments and structure; the conformance suite in `tests/`
//! requires all three to produce identical bytes. These functions run on plain slices
//! so the CPU backend and the tests call them directly. They never trust buffer
//! contents: indices read from buffers are range-checked and bad entries skipped.

pub mod apply_splits;
pub mod bin_features;
pub mod bootstrap;
pub mod build_histograms;
pub mod find_splits;
pub mod find_splits_rows;
pub mod predict_forest;
pub mod rng;

pub use apply_splits::apply_splits;
pub use bin_features::bin_features;
pub use bootstrap::bootstrap;
pub use build_histograms::{build_histograms, build_histograms_cancellable};
pub use find_splits::find_splits;
pub use find_splits_rows::{find_splits_rows, find_splits_rows_cancellable};
pub use predict_forest::{predict_forest, predict_forest_span};

/// Splits `out` into `chunk`-element pieces and runs `f(first_index, piece)` on all
/// cores; the pieces are disjoint, so results never depend on scheduling.
pub(crate) fn par_chunks<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk = chunk.max(1);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if threads <= 1 || out.len() <= chunk {
        for (i, piece) in out.chunks_mut(chunk).enumerate() {
            f(i * chunk, piece);
        }
        return;
    }
    let pieces: Vec<(usize, &mut [T])> = out.chunks_mut(chunk).enumerate().map(|(i, p)| (i * chunk, p)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let pieces = std::sync::Mutex::new(pieces.into_iter().map(Some).collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let item = {
                        let mut guard = pieces.lock().unwrap_or_else(|e| e.into_inner());
                        match guard.get_mut(i) {
                            Some(slot) => slot.take(),
                            None => return,
                        }
                    };
                    if let Some((start, piece)) = item {
                        f(start, piece);
                    }
                }
            });
        }
    });
}

/// Reads byte `row` of feature `feature` from a packed feature-major bin matrix.
#[inline]
pub(crate) fn bin_at(bins: &[u32], words_per_feature: usize, feature: usize, row: usize) -> u32 {
    (bins[feature * words_per_feature + row / 4] >> ((row % 4) * 8)) & 0xff
}
