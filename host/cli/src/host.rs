//! The `wasi:gpu` host: bindings for the `ml-compute` world, the per-guest store data,
//! and the implementation of every `compute` and `ml-kernels` function.
//!
//! Each function forwards to [`wasi_gpu_backend::Device`] (the validating front) inside
//! [`guarded`], which times the call for `--profile`, enforces the wall-clock deadline,
//! and turns a panic inside a backend into a `kernel-failure` error for the guest.

use std::time::Instant;

use wasi_gpu_backend::{BufferId, CancelToken, Device, GpuError};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::GuestLimiter;
use crate::profile::Profile;

/// Generated bindings of `wit/gpu.wit`, world `ml-compute`.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "ml-compute",
        path: "../../wit",
        imports: { default: trappable },
        with: {
            "wasi:gpu/compute.buffer": super::GpuBuffer,
        },
    });
}

use bindings::wasi::gpu::{compute, ml_kernels};

/// What a guest's `buffer` handle refers to: one live allocation of the [`Device`].
#[derive(Debug)]
pub struct GpuBuffer {
    /// The device-side id; freed through [`Device::drop_buffer`] when the handle drops.
    pub id: BufferId,
}

/// Marker error for a host call made after the `--timeout` deadline, or stopped by it
/// between launches; the runner recognises it to report the timeout rather than a
/// generic trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the wall-clock deadline (--timeout) passed")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Everything one guest instance owns: WASI state, its resource handles, its device,
/// its memory limiter and its profiling counters. Dropping it releases every buffer.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    device: Device,
    /// Enforces `--max-memory` on the guest's linear memories and tables.
    pub limiter: GuestLimiter,
    /// Per-function timings and the device-memory high-water mark.
    pub profile: Profile,
    /// Cancelled by the run's watchdog when `--timeout` passes.
    cancel: CancelToken,
}

impl HostState {
    /// Creates the state of one guest; `cancel` is set when its time limit passes.
    pub fn new(wasi: WasiCtx, device: Device, limiter: GuestLimiter, cancel: CancelToken) -> Self {
        HostState { wasi, table: ResourceTable::new(), device, limiter, profile: Profile::default(), cancel }
    }

    /// The validating device this guest uses.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Frees every buffer the guest still holds (called when it exits or traps).
    pub fn release_all(&mut self) {
        let device = &mut self.device;
        // A panicking backend must not take the host down while cleaning up.
        let _ = crate::catch_panic(|| device.release_all());
    }

    /// The checks of `buffer.write` that need only the data's length: the run linker calls
    /// it before copying the bytes out of guest memory, so an oversized write is refused
    /// without the host ever holding a copy.
    pub fn precheck_write(&self, this: &Resource<GpuBuffer>, offset: u64, len: u64) -> wasmtime::Result<Result<(), compute::Error>> {
        if self.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        let id = buffer_id(&self.table, this)?;
        Ok(self.device.check_write(id, offset, len).map_err(to_wit_error))
    }

    /// Runs one host call against the device: checks the deadline, catches panics,
    /// and records the time under `name`.
    fn guarded<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Device, &mut ResourceTable) -> wasmtime::Result<Result<R, GpuError>>,
    ) -> wasmtime::Result<Result<R, compute::Error>> {
        if self.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        let start = Instant::now();
        let device = &mut self.device;
        let table = &mut self.table;
        let outcome = crate::catch_panic(|| f(device, table));
        let elapsed = start.elapsed();
        self.profile.record(name, elapsed);
        self.profile.observe_device_bytes(self.device.held_bytes());
        match outcome {
            Ok(Ok(Err(GpuError::Cancelled(_)))) => Err(wasmtime::Error::new(DeadlineExceeded)),
            Ok(Ok(r)) => Ok(r.map_err(to_wit_error)),
            Ok(Err(trap)) => Err(trap),
            Err(panic) => Ok(Err(compute::Error::KernelFailure(format!(
                "{name}: the {} backend failed internally ({panic}); this is a host bug, please report it",
                backend_name(&self.device)
            )))),
        }
    }
}

/// The backend's name, without letting a panicking `info` escape.
fn backend_name(device: &Device) -> &'static str {
    crate::catch_panic(|| device.info().backend.name()).unwrap_or("unknown")
}

/// Looks up the device id behind a guest handle; a stale or foreign handle is a trap.
fn buffer_id(table: &ResourceTable, handle: &Resource<GpuBuffer>) -> wasmtime::Result<BufferId> {
    Ok(table.get(handle)?.id)
}

/// Converts the backend error into the WIT `error` variant, keeping the message.
pub fn to_wit_error(e: GpuError) -> compute::Error {
    match e {
        GpuError::OutOfMemory(m) => compute::Error::OutOfMemory(m),
        GpuError::InvalidArgument(m) => compute::Error::InvalidArgument(m),
        GpuError::LimitExceeded(m) => compute::Error::LimitExceeded(m),
        GpuError::KernelFailure(m) => compute::Error::KernelFailure(m),
        GpuError::DeviceLost(m) => compute::Error::DeviceLost(m),
        // `guarded` turns a cancelled call into a trap before it reaches here.
        GpuError::Cancelled(m) => compute::Error::KernelFailure(m),
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl compute::Host for HostState {
    fn info(&mut self) -> wasmtime::Result<compute::DeviceInfo> {
        let info = self.guarded("info", |device, _| Ok(Ok(device.info())))?;
        let info = match info {
            Ok(info) => info,
            // `info` cannot fail in the WIT; a panicking backend becomes a trap here.
            Err(e) => return Err(wasmtime::Error::msg(format!("device info failed: {e:?}"))),
        };
        Ok(compute::DeviceInfo {
            name: info.name,
            backend: match info.backend {
                wasi_gpu_backend::BackendKind::Cpu => compute::BackendKind::Cpu,
                wasi_gpu_backend::BackendKind::Wgpu => compute::BackendKind::Wgpu,
                wasi_gpu_backend::BackendKind::Cuda => compute::BackendKind::Cuda,
            },
            memory_bytes: info.memory_bytes,
            hardware: info.hardware,
            driver: info.driver,
            max_buffer_bytes: info.max_buffer_bytes,
        })
    }

    fn synchronize(&mut self) -> wasmtime::Result<Result<(), compute::Error>> {
        self.guarded("synchronize", |device, _| Ok(device.synchronize()))
    }
}

impl compute::HostBuffer for HostState {
    fn create(&mut self, size: u64) -> wasmtime::Result<Result<Resource<GpuBuffer>, compute::Error>> {
        self.guarded("buffer.create", |device, table| {
            let id = match device.create_buffer(size) {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            match table.push(GpuBuffer { id }) {
                Ok(handle) => Ok(Ok(handle)),
                Err(e) => {
                    device.drop_buffer(id);
                    Ok(Err(GpuError::LimitExceeded(format!("the host's handle table is full ({e}); drop buffers"))))
                }
            }
        })
    }

    fn size(&mut self, this: Resource<GpuBuffer>) -> wasmtime::Result<u64> {
        let id = buffer_id(&self.table, &this)?;
        // The table and the device agree on live buffers, so this only fails on a host bug.
        self.device.buffer_size(id).map_err(|e| wasmtime::Error::msg(e.to_string()))
    }

    fn write(&mut self, this: Resource<GpuBuffer>, offset: u64, data: Vec<u8>) -> wasmtime::Result<Result<(), compute::Error>> {
        self.guarded("buffer.write", |device, table| {
            let id = buffer_id(table, &this)?;
            Ok(device.write(id, offset, &data))
        })
    }

    fn read(&mut self, this: Resource<GpuBuffer>, offset: u64, len: u64) -> wasmtime::Result<Result<Vec<u8>, compute::Error>> {
        self.guarded("buffer.read", |device, table| {
            let id = buffer_id(table, &this)?;
            Ok(device.read(id, offset, len))
        })
    }

    fn copy_from(
        &mut self,
        this: Resource<GpuBuffer>,
        src: Resource<GpuBuffer>,
        src_offset: u64,
        dst_offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), compute::Error>> {
        self.guarded("buffer.copy-from", |device, table| {
            let dst = buffer_id(table, &this)?;
            let src = buffer_id(table, &src)?;
            Ok(device.copy(src, src_offset, dst, dst_offset, len))
        })
    }

    fn drop(&mut self, this: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        let buffer = self.table.delete(this)?;
        let device = &mut self.device;
        let _ = crate::catch_panic(|| device.drop_buffer(buffer.id));
        Ok(())
    }
}

/// `From<ml_kernels::X> for wasi_gpu_backend::X`, destructuring both sides without `..`:
/// a field added to either the WIT record or the backend's stops the build here.
macro_rules! params_from_wit {
    ($($ty:ident { $($field:ident),+ })+) => {$(
        impl From<ml_kernels::$ty> for wasi_gpu_backend::$ty {
            fn from(p: ml_kernels::$ty) -> Self {
                let ml_kernels::$ty { $($field),+ } = p;
                wasi_gpu_backend::$ty { $($field),+ }
            }
        }
    )+};
}

params_from_wit! {
    BinFeaturesParams { rows, features, max_bins }
    BootstrapParams { seed, rows, tree_begin, tree_count, draws }
    HistogramParams { rows, features, max_bins, tree_count, slot_begin, slot_count }
    SplitParams { features, max_bins, slot_begin, slot_count, min_samples_leaf, mask_words }
    RowSplitParams { rows, features, max_bins, tree_count, slot_begin, slot_count, min_samples_leaf, mask_words }
    ApplyParams { rows, features, tree_count, slot_count }
    PredictParams { rows, features, tree_count, node_count, max_depth }
}

type KernelResult = wasmtime::Result<Result<(), compute::Error>>;

impl HostState {
    /// One kernel call: looks up the buffer handles (a stale one traps) inside [`Self::guarded`]
    /// and runs `f` on the device with their ids, under the kernel's WIT name.
    fn kernel<P: wasi_gpu_backend::KernelParams<N>, const N: usize>(
        &mut self,
        _params: &P,
        handles: [&Resource<GpuBuffer>; N],
        f: impl FnOnce(&mut Device, [BufferId; N]) -> Result<(), GpuError>,
    ) -> KernelResult {
        self.guarded(P::NAME, |device, table| {
            let mut ids = [0; N];
            for (id, handle) in ids.iter_mut().zip(handles) {
                *id = buffer_id(table, handle)?;
            }
            Ok(f(device, ids))
        })
    }
}

type Buf = Resource<GpuBuffer>;

impl ml_kernels::Host for HostState {
    fn bin_features(&mut self, p: ml_kernels::BinFeaturesParams, x: Buf, edges: Buf, bins: Buf) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&x, &edges, &bins], |d, [x, e, b]| d.bin_features(&p, x, e, b))
    }

    fn bootstrap(&mut self, p: ml_kernels::BootstrapParams, weights: Buf, node_of: Buf) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&weights, &node_of], |d, [w, n]| d.bootstrap(&p, w, n))
    }

    fn build_histograms(
        &mut self,
        p: ml_kernels::HistogramParams,
        bins: Buf,
        targets: Buf,
        weights: Buf,
        node_of: Buf,
        hist: Buf,
    ) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&bins, &targets, &weights, &node_of, &hist], |d, [b, t, w, n, h]| d.build_histograms(&p, b, t, w, n, h))
    }

    fn find_splits(&mut self, p: ml_kernels::SplitParams, hist: Buf, feature_mask: Buf, splits: Buf) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&hist, &feature_mask, &splits], |d, [h, m, s]| d.find_splits(&p, h, m, s))
    }

    fn find_splits_rows(
        &mut self,
        p: ml_kernels::RowSplitParams,
        bins: Buf,
        targets: Buf,
        weights: Buf,
        node_of: Buf,
        feature_mask: Buf,
        splits: Buf,
    ) -> KernelResult {
        let p = p.into();
        let handles = [&bins, &targets, &weights, &node_of, &feature_mask, &splits];
        self.kernel(&p, handles, |d, [b, t, w, n, m, s]| d.find_splits_rows(&p, b, t, w, n, m, s))
    }

    fn apply_splits(&mut self, p: ml_kernels::ApplyParams, bins: Buf, splits: Buf, next_slot: Buf, node_of: Buf) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&bins, &splits, &next_slot, &node_of], |d, [b, s, x, n]| d.apply_splits(&p, b, s, x, n))
    }

    fn predict_forest(&mut self, p: ml_kernels::PredictParams, x: Buf, nodes: Buf, roots: Buf, sums: Buf) -> KernelResult {
        let p = p.into();
        self.kernel(&p, [&x, &nodes, &roots, &sums], |d, [x, n, r, s]| d.predict_forest(&p, x, n, r, s))
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compute::{Host as _, HostBuffer as _};
    use ml_kernels::Host as _;
    use wasi_gpu_backend::{CpuBackend, Limits};

    fn state_with(backend: Box<dyn wasi_gpu_backend::Backend>, limits: Limits) -> HostState {
        HostState::new(WasiCtx::builder().build(), Device::new(backend, limits), GuestLimiter::new(1 << 30), CancelToken::new())
    }

    fn state() -> HostState {
        state_with(Box::new(CpuBackend::new()), Limits::default())
    }

    #[test]
    fn buffers_round_trip_and_are_freed_on_drop() {
        let mut s = state();
        let a = s.create(16).unwrap().unwrap();
        let b = s.create(16).unwrap().unwrap();
        assert_eq!(s.size(Resource::new_borrow(a.rep())).unwrap(), 16);
        s.write(Resource::new_borrow(a.rep()), 4, vec![1, 2, 3, 4]).unwrap().unwrap();
        s.copy_from(Resource::new_borrow(b.rep()), Resource::new_borrow(a.rep()), 4, 0, 4).unwrap().unwrap();
        assert_eq!(s.read(Resource::new_borrow(b.rep()), 0, 6).unwrap().unwrap(), [1, 2, 3, 4, 0, 0]);
        assert_eq!(s.device().used_bytes(), 32);
        assert_eq!(s.profile.peak_device_bytes(), 32);
        assert_eq!(s.profile.get("buffer.create").unwrap().calls, 2);
        compute::HostBuffer::drop(&mut s, a).unwrap();
        assert_eq!(s.device().live_buffers(), 1);
        s.release_all();
        assert_eq!(s.device().used_bytes(), 0);
    }

    #[test]
    fn device_errors_become_wit_errors() {
        let mut s = state_with(Box::new(CpuBackend::new()), Limits { max_device_bytes: 100, max_buffers: 2, max_transfer_bytes: 8 });
        assert!(matches!(s.create(101).unwrap(), Err(compute::Error::LimitExceeded(m)) if m.contains("--max-device-memory")));
        let a = s.create(10).unwrap().unwrap();
        let _b = s.create(10).unwrap().unwrap();
        assert!(matches!(s.create(1).unwrap(), Err(compute::Error::LimitExceeded(m)) if m.contains("--max-buffers")));
        let r = s.read(Resource::new_borrow(a.rep()), 8, 4).unwrap();
        assert!(matches!(r, Err(compute::Error::InvalidArgument(_))), "{r:?}");
        let r = s.write(Resource::new_borrow(a.rep()), 0, vec![0; 9]).unwrap();
        assert!(matches!(r, Err(compute::Error::LimitExceeded(m)) if m.contains("--max-transfer")));
        let p = ml_kernels::BootstrapParams { seed: 1, rows: 0, tree_begin: 0, tree_count: 1, draws: 1 };
        let r = s.bootstrap(p, Resource::new_borrow(a.rep()), Resource::new_borrow(a.rep())).unwrap();
        assert!(matches!(r, Err(compute::Error::InvalidArgument(_))), "{r:?}");
        assert!(s.synchronize().unwrap().is_ok());
        assert_eq!(s.info().unwrap().backend, compute::BackendKind::Cpu);
        assert_eq!(s.info().unwrap().memory_bytes, 100);
    }

    #[test]
    fn stale_or_foreign_handles_trap_instead_of_panicking() {
        let mut s = state();
        let a = s.create(8).unwrap().unwrap();
        let rep = a.rep();
        compute::HostBuffer::drop(&mut s, a).unwrap();
        assert!(s.size(Resource::new_borrow(rep)).is_err());
        assert!(s.read(Resource::new_borrow(rep), 0, 1).is_err());
        assert!(s.write(Resource::new_borrow(999), 0, vec![1]).is_err());
        assert!(compute::HostBuffer::drop(&mut s, Resource::new_own(rep)).is_err());
        let p = ml_kernels::PredictParams { rows: 1, features: 1, tree_count: 1, node_count: 1, max_depth: 1 };
        let r = s.predict_forest(p, Resource::new_borrow(7), Resource::new_borrow(8), Resource::new_borrow(9), Resource::new_borrow(10));
        assert!(r.is_err());
    }

    #[test]
    fn deadline_turns_host_calls_into_traps() {
        let mut s = state();
        s.cancel.cancel();
        let e = s.create(8).unwrap_err();
        assert!(e.downcast_ref::<DeadlineExceeded>().is_some());
    }

    /// A backend whose kernels panic, standing in for a bug in a GPU backend.
    struct PanickingBackend(CpuBackend);

    impl wasi_gpu_backend::Backend for PanickingBackend {
        fn info(&self) -> wasi_gpu_backend::DeviceInfo {
            self.0.info()
        }
        fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
            self.0.alloc(id, size)
        }
        fn free(&mut self, id: BufferId) {
            self.0.free(id)
        }
        fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
            self.0.write(id, offset, data)
        }
        fn read(&mut self, _: BufferId, _: u64, _: u64) -> Result<Vec<u8>, GpuError> {
            panic!("read exploded")
        }
        fn copy(&mut self, src: BufferId, so: u64, dst: BufferId, d: u64, len: u64) -> Result<(), GpuError> {
            self.0.copy(src, so, dst, d, len)
        }
        fn synchronize(&mut self) -> Result<(), GpuError> {
            self.0.synchronize()
        }
        fn bin_features(&mut self, _: &wasi_gpu_backend::BinFeaturesParams, _: BufferId, _: BufferId, _: BufferId) -> Result<(), GpuError> {
            unreachable!()
        }
        fn bootstrap(&mut self, _: &wasi_gpu_backend::BootstrapParams, _: BufferId, _: BufferId) -> Result<(), GpuError> {
            panic!("bootstrap exploded")
        }
        fn build_histograms(
            &mut self,
            _: &wasi_gpu_backend::HistogramParams,
            _: BufferId,
            _: BufferId,
            _: BufferId,
            _: BufferId,
            _: BufferId,
        ) -> Result<(), GpuError> {
            unreachable!()
        }
        fn find_splits(&mut self, _: &wasi_gpu_backend::SplitParams, _: BufferId, _: BufferId, _: BufferId) -> Result<(), GpuError> {
            unreachable!()
        }
        fn apply_splits(
            &mut self,
            _: &wasi_gpu_backend::ApplyParams,
            _: BufferId,
            _: BufferId,
            _: BufferId,
            _: BufferId,
        ) -> Result<(), GpuError> {
            unreachable!()
        }
        fn predict_forest(
            &mut self,
            _: &wasi_gpu_backend::PredictParams,
            _: &wasi_gpu_backend::PredictSpan,
            _: BufferId,
            _: BufferId,
            _: BufferId,
            _: BufferId,
        ) -> Result<(), GpuError> {
            unreachable!()
        }
    }

    #[test]
    fn a_panicking_backend_becomes_kernel_failure() {
        let mut s = state_with(Box::new(PanickingBackend(CpuBackend::new())), Limits::default());
        let w = s.create(8).unwrap().unwrap();
        let n = s.create(8).unwrap().unwrap();
        let p = ml_kernels::BootstrapParams { seed: 1, rows: 2, tree_begin: 0, tree_count: 1, draws: 2 };
        let r = s.bootstrap(p, Resource::new_borrow(w.rep()), Resource::new_borrow(n.rep())).unwrap();
        assert!(matches!(&r, Err(compute::Error::KernelFailure(m)) if m.contains("bootstrap exploded")), "{r:?}");
        let r = s.read(Resource::new_borrow(w.rep()), 0, 4).unwrap();
        assert!(matches!(&r, Err(compute::Error::KernelFailure(m)) if m.contains("read exploded")), "{r:?}");
        assert_eq!(s.profile.get("bootstrap").unwrap().calls, 1);
    }
}
