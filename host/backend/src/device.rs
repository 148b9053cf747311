//! The validating front of a backend: every guest call passes through here first.

use std::collections::HashMap;

use crate::backend::{Backend, BufferId, CallBudget, CancelToken, DeviceInfo};
use crate::error::GpuError;
use crate::params::*;

/// Per-guest resource limits, enforced before a backend sees a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Device memory one guest may hold at once, in bytes.
    pub max_device_bytes: u64,
    /// Buffers one guest may hold at once.
    pub max_buffers: u32,
    /// Largest single `write`, `read` or `copy-from`, in bytes.
    pub max_transfer_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_device_bytes: 16 << 30, max_buffers: 4096, max_transfer_bytes: 1 << 30 }
    }
}

/// A backend plus the bookkeeping that makes it safe to hand to an untrusted guest:
/// the size of every live buffer, the bytes in use, and the limits.
///
/// The backend's own scratch memory counts against the same `max_device_bytes` as the
/// guest's buffers: every kernel call gets what is left as its scratch budget, and an
/// allocation that only fails because of kept scratch first releases that scratch.
pub struct Device {
    backend: Box<dyn Backend>,
    limits: Limits,
    sizes: HashMap<BufferId, u64>,
    used: u64,
    next_id: BufferId,
    cancel: CancelToken,
    predict_steps: Option<u64>,
}

impl Device {
    pub fn new(backend: Box<dyn Backend>, limits: Limits) -> Self {
        Device { backend, limits, sizes: HashMap::new(), used: 0, next_id: 1, cancel: CancelToken::new(), predict_steps: None }
    }

    /// Uses `token` (e.g. the run's watchdog's) to stop long calls between launches.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// Overrides the backend's `predict_steps_per_launch` (tests use tiny values to make
    /// every backend split calls into many launches); `None` restores it.
    pub fn set_predict_steps_per_launch(&mut self, steps: Option<u64>) {
        self.predict_steps = steps;
    }

    /// Device bytes held for this guest now: its buffers plus the backend's scratch.
    pub fn held_bytes(&self) -> u64 {
        self.used.saturating_add(self.backend.scratch_bytes())
    }

    /// Tells the backend what the next kernel call may use beyond its buffers.
    fn begin_call(&mut self, kernel: &str) -> Result<(), GpuError> {
        self.cancel.check(kernel)?;
        let budget = CallBudget { scratch_bytes: self.limits.max_device_bytes.saturating_sub(self.used), cancel: self.cancel.clone() };
        self.backend.begin_call(&budget);
        Ok(())
    }

    /// Device facts, with memory capped by this guest's limit.
    pub fn info(&self) -> DeviceInfo {
        let mut info = self.backend.info();
        info.memory_bytes = info.memory_bytes.min(self.limits.max_device_bytes);
        info.max_buffer_bytes = info.max_buffer_bytes.min(self.limits.max_device_bytes);
        info
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes this guest holds on the device now.
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Buffers this guest holds now.
    pub fn live_buffers(&self) -> usize {
        self.sizes.len()
    }

    pub fn create_buffer(&mut self, size: u64) -> Result<BufferId, GpuError> {
        if self.sizes.len() as u64 >= self.limits.max_buffers as u64 {
            return Err(GpuError::LimitExceeded(format!(
                "this guest already holds {} buffers, the limit (--max-buffers); drop buffers it no longer needs",
                self.sizes.len()
            )));
        }
        let max_buffer = self.backend.info().max_buffer_bytes;
        if size > max_buffer {
            return Err(GpuError::LimitExceeded(format!(
                "a buffer of {size} bytes is larger than the device's largest buffer ({max_buffer} bytes); split the data"
            )));
        }
        let total = self.used.saturating_add(size);
        if total.saturating_add(self.backend.scratch_bytes()) > self.limits.max_device_bytes {
            // Scratch kept from earlier calls gives way to the guest's own buffers.
            self.backend.release_scratch();
        }
        let total = total.saturating_add(self.backend.scratch_bytes());
        if total > self.limits.max_device_bytes {
            return Err(GpuError::LimitExceeded(format!(
                "allocating {size} bytes would bring this guest to {total} bytes of device memory (its buffers and the backend's scratch), over its limit of {} (--max-device-memory)",
                self.limits.max_device_bytes
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.backend.alloc(id, size)?;
        self.sizes.insert(id, size);
        self.used += size;
        Ok(id)
    }

    /// Frees a buffer; unknown ids are ignored (the resource table already rejected them).
    pub fn drop_buffer(&mut self, id: BufferId) {
        if let Some(size) = self.sizes.remove(&id) {
            self.used -= size;
            self.backend.free(id);
        }
    }

    /// Frees every buffer, e.g. when the guest exits or traps.
    pub fn release_all(&mut self) {
        let ids: Vec<BufferId> = self.sizes.keys().copied().collect();
        for id in ids {
            self.drop_buffer(id);
        }
    }

    pub fn buffer_size(&self, id: BufferId) -> Result<u64, GpuError> {
        self.sizes.get(&id).copied().ok_or_else(|| GpuError::invalid(format!("buffer {id} does not exist (already dropped?)")))
    }

    /// Checks a write of `len` bytes at `offset` (limits and bounds) without its data, so a
    /// host can refuse it before copying the bytes out of the guest.
    pub fn check_write(&self, id: BufferId, offset: u64, len: u64) -> Result<(), GpuError> {
        self.check_range(id, "write", offset, len)
    }

    fn check_range(&self, id: BufferId, what: &str, offset: u64, len: u64) -> Result<(), GpuError> {
        let size = self.buffer_size(id)?;
        if len > self.limits.max_transfer_bytes {
            return Err(GpuError::LimitExceeded(format!(
                "{what} of {len} bytes exceeds the transfer limit of {} bytes (--max-transfer); split it",
                self.limits.max_transfer_bytes
            )));
        }
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(GpuError::invalid(format!("{what} of {len} bytes at offset {offset} runs past the end of a {size}-byte buffer"))),
        }
    }

    pub fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        self.check_range(id, "write", offset, data.len() as u64)?;
        self.backend.write(id, offset, data)
    }

    pub fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        self.check_range(id, "read", offset, len)?;
        self.backend.read(id, offset, len)
    }

    pub fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        self.check_range(src, "copy source", src_offset, len)?;
        self.check_range(dst, "copy destination", dst_offset, len)?;
        if src == dst {
            let overlap = src_offset < dst_offset + len && dst_offset < src_offset + len;
            if overlap && len > 0 {
                return Err(GpuError::invalid("copy-from within one buffer with overlapping ranges"));
            }
        }
        self.backend.copy(src, src_offset, dst, dst_offset, len)
    }

    pub fn synchronize(&mut self) -> Result<(), GpuError> {
        self.backend.synchronize()
    }

    /// Checks one kernel call: its parameters, and that each buffer exists, is large
    /// enough and is passed once (a kernel must never read what it writes through another
    /// name). Then tells the backend the call's scratch budget and checks the time limit.
    pub fn validate<P: KernelParams<N>, const N: usize>(&mut self, p: &P, ids: [BufferId; N]) -> Result<(), GpuError> {
        let need = p.check()?;
        for (i, ((name, id), need)) in P::BUFFERS.iter().zip(ids).zip(need).enumerate() {
            let size =
                self.sizes.get(&id).copied().ok_or_else(|| GpuError::invalid(format!("{}: `{name}` is not a live buffer", P::NAME)))?;
            if size < need {
                return Err(GpuError::invalid(format!("{}: `{name}` holds {size} bytes but these parameters need {need}", P::NAME)));
            }
            if let Some(other) = ids[..i].iter().position(|&o| o == id) {
                return Err(GpuError::invalid(format!(
                    "{}: the same buffer is passed as `{}` and `{name}`; they must be distinct",
                    P::NAME,
                    P::BUFFERS[other]
                )));
            }
        }
        self.begin_call(P::NAME)
    }

    pub fn bin_features(&mut self, p: &BinFeaturesParams, x: BufferId, edges: BufferId, bins: BufferId) -> Result<(), GpuError> {
        self.validate(p, [x, edges, bins])?;
        self.backend.bin_features(p, x, edges, bins)
    }

    pub fn bootstrap(&mut self, p: &BootstrapParams, weights: BufferId, node_of: BufferId) -> Result<(), GpuError> {
        self.validate(p, [weights, node_of])?;
        self.backend.bootstrap(p, weights, node_of)
    }

    pub fn build_histograms(
        &mut self,
        p: &HistogramParams,
        bins: BufferId,
        targets: BufferId,
        weights: BufferId,
        node_of: BufferId,
        hist: BufferId,
    ) -> Result<(), GpuError> {
        self.validate(p, [bins, targets, weights, node_of, hist])?;
        self.backend.build_histograms(p, bins, targets, weights, node_of, hist)
    }

    pub fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError> {
        self.validate(p, [hist, feature_mask, splits])?;
        self.backend.find_splits(p, hist, feature_mask, splits)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn find_splits_rows(
        &mut self,
        p: &RowSplitParams,
        bins: BufferId,
        targets: BufferId,
        weights: BufferId,
        node_of: BufferId,
        feature_mask: BufferId,
        splits: BufferId,
    ) -> Result<(), GpuError> {
        self.validate(p, [bins, targets, weights, node_of, feature_mask, splits])?;
        self.backend.find_splits_rows(p, bins, targets, weights, node_of, feature_mask, splits)
    }

    pub fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError> {
        self.validate(p, [bins, splits, next_slot, node_of])?;
        self.backend.apply_splits(p, bins, splits, next_slot, node_of)
    }

    pub fn predict_forest(
        &mut self,
        p: &PredictParams,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError> {
        self.validate(p, [x, nodes, roots, sums])?;
        // Work is rows x trees x walk length, more than the buffers: split it into
        // launches of bounded work, with a cancel check (and a wait) between them.
        let steps = self.predict_steps.unwrap_or_else(|| self.backend.predict_steps_per_launch());
        let mut spans = PredictSpan::split(p, steps).peekable();
        let mut first = true;
        while let Some(span) = spans.next() {
            if !std::mem::take(&mut first) {
                self.begin_call(PredictParams::NAME)?;
            }
            self.backend.predict_forest(p, &span, x, nodes, roots, sums)?;
            if spans.peek().is_some() {
                self.backend.synchronize()?;
            }
        }
        Ok(())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.release_all();
    }
}
