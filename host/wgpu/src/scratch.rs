//! The backend's own device buffers ("scratch"), kept between calls to save allocations.
//!
//! Policy: all scratch held together never exceeds the current call's budget
//! (`CallBudget::scratch_bytes`, the guest's `--max-device-memory` less its live buffers),
//! not even while a buffer is replaced: the old one is destroyed and the GPU waited for
//! before the new one is created. A buffer grows by at least half when it must grow, but
//! only into the room the budget leaves next to the other buffers; buffers the call does not
//! use give way first. A call whose least needs exceed the budget is `limit-exceeded`.
//! Device charges [`Scratch::held`] to the guest and drops it all when the guest needs the
//! memory ([`WgpuBackend::drop_scratch`]).

use wasi_gpu_backend::GpuError;

use crate::backend::WgpuBackend;
use crate::round4;

/// Which scratch buffer (`find-splits-rows`, `rows.rs`, but for [`Which::Walk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Per-slot counts, then offsets (all levels of the scan).
    Scan,
    /// Entry indices grouped by slot.
    Order,
    /// The dense path's histogram (or one slot's, `rows.rs`).
    Hist,
    /// `predict-forest`: where each row's walk stands between launches (`predict.rs`).
    Walk,
    /// The per-block partial split records of the grouped path's launches.
    Partial,
}

const ALL: [Which; 5] = [Which::Scan, Which::Order, Which::Hist, Which::Walk, Which::Partial];

/// The scratch buffers held now, one optional buffer per [`Which`].
#[derive(Default)]
pub(crate) struct Scratch {
    buffers: [Option<wgpu::Buffer>; 5],
}

impl Scratch {
    pub(crate) fn size(&self, which: Which) -> u64 {
        self.buffers[which as usize].as_ref().map_or(0, |b| b.size())
    }

    /// Bytes of every scratch buffer held.
    pub(crate) fn held(&self) -> u64 {
        ALL.iter().map(|&w| self.size(w)).sum()
    }

    pub(crate) fn get(&self, which: Which) -> Result<&wgpu::Buffer, GpuError> {
        self.buffers[which as usize].as_ref().ok_or_else(|| GpuError::KernelFailure(format!("the {which:?} scratch buffer is missing")))
    }

    /// Destroys `which`; true if it held a buffer.
    fn drop_one(&mut self, which: Which) -> bool {
        self.buffers[which as usize].take().map(|b| b.destroy()).is_some()
    }
}

impl WgpuBackend {
    /// Destroys every scratch buffer and waits until their memory is back.
    pub(crate) fn drop_scratch(&mut self) {
        let mut any = false;
        for w in ALL {
            any |= self.scratch.drop_one(w);
        }
        if any {
            // A destroyed buffer's memory returns once the GPU is done with it; errors are
            // left for the next operation to report.
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
            self.staged.set(0);
        }
    }

    /// Makes each `(which, bytes)` scratch buffer at least `bytes` long for a call of
    /// `kernel`, within `self.budget` (see the module notes).
    pub(crate) fn reserve(&mut self, kernel: &str, needs: &[(Which, u64)]) -> Result<(), GpuError> {
        let budget = self.budget.scratch_bytes;
        let max = self.info.max_buffer_bytes;
        let need = |w: Which| needs.iter().find(|n| n.0 == w).map(|n| round4(n.1).max(4));
        let least = ALL.iter().filter_map(|&w| need(w)).fold(0u64, u64::saturating_add);
        if let Some(n) = ALL.iter().filter_map(|&w| need(w)).find(|&n| n > max) {
            return Err(GpuError::LimitExceeded(format!(
                "{kernel} needs a scratch buffer of {n} bytes; this wgpu device binds at most {max} bytes"
            )));
        }
        if least > budget {
            return Err(GpuError::LimitExceeded(format!(
                "{kernel} needs {least} bytes of device scratch memory, but only {budget} bytes of this guest's limit \
                 (--max-device-memory) are left beside its buffers; raise --max-device-memory or drop buffers first"
            )));
        }
        // Bytes held once every needed buffer is large enough, the others kept as they are.
        let after = |s: &Scratch| ALL.iter().map(|&w| need(w).map_or(s.size(w), |n| s.size(w).max(n))).sum::<u64>();
        let mut freed = false;
        if after(&self.scratch) > budget {
            for w in ALL.into_iter().filter(|&w| need(w).is_none()) {
                freed |= self.scratch.drop_one(w);
            }
        }
        if after(&self.scratch) > budget {
            // Needed buffers grown in earlier calls no longer fit: remake them at their need.
            for w in ALL {
                if need(w).is_some_and(|n| self.scratch.size(w) > n) {
                    freed |= self.scratch.drop_one(w);
                }
            }
        }
        // Now after() <= budget, and each growth below keeps it so.
        for w in ALL {
            let Some(n) = need(w) else { continue };
            let have = self.scratch.size(w);
            if have >= n {
                continue;
            }
            let room = budget - (after(&self.scratch) - n);
            // Grow by at least half, so that slowly growing levels reallocate rarely.
            let size = ((have + have / 2).max(n).min(room).min(max) / 4 * 4).max(n);
            freed |= self.scratch.drop_one(w);
            if freed {
                self.wait()?;
                freed = false;
            }
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
            let buffer = self.create(&format!("{kernel} scratch"), size, usage)?;
            self.scratch.buffers[w as usize] = Some(buffer);
        }
        if freed {
            self.wait()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use wasi_gpu_backend::GpuError;

    use super::Which::{self, *};
    use crate::adapter::test_backend;

    /// Scratch needs of one call, then the sizes of Scan, Order and Hist it leaves.
    type Step = (&'static [(Which, u64)], [u64; 3]);

    #[test]
    fn reserve_stays_within_the_budget() {
        let Some(mut b) = test_backend() else { return };
        b.budget.scratch_bytes = 10_000;
        let steps: [Step; 6] = [
            (&[(Order, 1000)], [0, 1000, 0]),
            // Growth by half.
            (&[(Order, 1001)], [0, 1500, 0]),
            (&[(Order, 1100), (Scan, 8000)], [8000, 1500, 0]),
            // The grown buffer no longer fits beside the other: remade at its need.
            (&[(Order, 1100), (Scan, 8897)], [8900, 1100, 0]),
            // Buffers the call does not use give way.
            (&[(Hist, 5000)], [0, 0, 5000]),
            (&[(Hist, 5000), (Scan, 10)], [12, 0, 5000]),
        ];
        for (needs, sizes) in steps {
            b.reserve("test", needs).unwrap_or_else(|e| panic!("{needs:?}: {e}"));
            assert_eq!([Scan, Order, Hist].map(|w| b.scratch.size(w)), sizes, "{needs:?}");
            assert!(b.scratch.held() <= b.budget.scratch_bytes);
        }
        let e = b.reserve("test", &[(Hist, 6000), (Order, 4001)]).unwrap_err();
        assert!(matches!(&e, GpuError::LimitExceeded(m) if m.contains("10004 bytes")), "{e}");
        b.drop_scratch();
        assert_eq!(b.scratch.held(), 0);
    }
}
