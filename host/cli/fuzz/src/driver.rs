//! Decodes arbitrary bytes into a sequence of `wasi:gpu` calls and runs them through the
//! real host implementation ([`HostState`]'s `compute` / `ml-kernels` trait impls), checking
//! every answer against a model of what the host must do.
//!
//! Shared by the cargo-fuzz target (`fuzz_targets/device_calls.rs`) and the seeded property
//! test `host/cli/tests/property.rs` (which includes this file with `#[path]`), so both
//! explore the same call space: buffer create (huge sizes included), write / read / copy at
//! random and overflowing offsets, drop, use of dropped or forged handles, every kernel
//! with random parameters on random (aliased, dropped, undersized) buffers with random
//! contents.
//!
//! Properties checked after every call ([`Harness::step`] returns the first violation):
//! - no trap unless a handle was stale or forged, and then always a trap;
//! - every refusal is a typed WIT error with a message, never `kernel-failure` or
//!   `device-lost` (those mean a backend failed or panicked);
//! - calls that are valid by the model succeed, invalid ones are refused;
//! - reads return exactly the bytes the model predicts wherever it knows them;
//! - device memory and buffer accounting match the model;
//! - no call takes longer than [`call_time_limit`] (a slow call is a finding: kernel work
//!   must scale with the buffers passed, or be split into launches the time limit stops).
//!
//! After a sequence, [`Harness::finish`] drops every buffer, checks that accounting is
//! back to zero, and runs known-answer kernels to show the device still serves.

use std::collections::HashMap;

use wasi_gpu_backend::{
    ApplyParams, Backend, BinFeaturesParams, BootstrapParams, Device, HistogramParams, Limits, PredictParams, RowSplitParams, SplitParams,
};
use wasmtime::component::Resource;
use wasmtime_gpu_host::host::bindings::wasi::gpu::{compute, ml_kernels};
use wasmtime_gpu_host::limits::GuestLimiter;
use wasmtime_gpu_host::{GpuBuffer, HostState};
use wasmtime_wasi::WasiCtx;

/// The limits every harness runs under: small, so exhausting them is cheap and frequent.
pub const LIMITS: Limits = Limits { max_device_bytes: 32 << 20, max_buffers: 48, max_transfer_bytes: 1 << 20 };

/// The per-call time limit: `FUZZ_CALL_SECONDS` (default 2). With [`LIMITS`]' 32 MiB no
/// honest call comes near it on any backend.
pub fn call_time_limit() -> std::time::Duration {
    let secs = std::env::var("FUZZ_CALL_SECONDS").ok().and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0);
    std::time::Duration::from_secs_f64(secs.unwrap_or(2.0))
}

/// Largest buffer whose contents the model mirrors byte for byte.
const SHADOW_MAX: u64 = 1 << 16;

/// Reads decisions out of the fuzz input; once it is exhausted every read yields zeros.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Wraps raw bytes (from the fuzzer or a seeded generator).
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }

    /// A buffer size or transfer length: mostly small, sometimes at or past a limit, or huge.
    fn size(&mut self) -> u64 {
        match self.byte() % 16 {
            0..=8 => self.byte() as u64 * 4 + (self.byte() % 4) as u64,
            9..=11 => (self.u32() % (1 << 16)) as u64,
            12 => {
                const EDGES: [u64; 12] = [
                    0,
                    1,
                    LIMITS.max_transfer_bytes,
                    LIMITS.max_transfer_bytes + 1,
                    LIMITS.max_device_bytes,
                    LIMITS.max_device_bytes + 1,
                    u32::MAX as u64,
                    1 << 32,
                    1 << 63,
                    u64::MAX - 3,
                    u64::MAX,
                    4 << 20,
                ];
                EDGES[self.byte() as usize % EDGES.len()]
            }
            _ => self.u64() >> (self.byte() % 64),
        }
    }

    /// An offset: mostly inside small buffers, sometimes far past any end.
    fn offset(&mut self) -> u64 {
        match self.byte() % 8 {
            0..=5 => self.byte() as u64 * (1 + (self.byte() % 16) as u64),
            6 => [u64::MAX, u64::MAX - 1, 1 << 63, u32::MAX as u64][self.byte() as usize % 4],
            _ => self.u64(),
        }
    }

    /// A kernel parameter: mostly small, sometimes at a validation boundary or huge.
    fn param(&mut self) -> u32 {
        match self.byte() % 8 {
            0..=5 => (self.byte() % 24) as u32,
            6 => [0, 1, 2, 64, 65, 255, 256, 257, 1 << 16, 1 << 31, u32::MAX - 1, u32::MAX][self.byte() as usize % 12],
            _ => self.u32(),
        }
    }

    /// `max-bins`: usually valid (2..=32), sometimes out of range.
    fn max_bins(&mut self) -> u32 {
        match self.byte() % 8 {
            0..=6 => 2 + (self.byte() % 31) as u32,
            _ => self.param(),
        }
    }

    /// Bytes to write: a run of random bytes or of one "planted" word (u32::MAX, large ids).
    fn data(&mut self, len: usize) -> Vec<u8> {
        match self.byte() % 4 {
            0 => (0..len).map(|_| self.byte()).collect(),
            1 => {
                let word = [u32::MAX, u32::MAX - 1, 0xdead_beef, 1 << 31, 0x7fc0_0000, 0xff80_0000][self.byte() as usize % 6];
                word.to_le_bytes().iter().copied().cycle().take(len).collect()
            }
            2 => (0..len).map(|i| (i % 7) as u8).collect(),
            _ => vec![self.byte(); len],
        }
    }
}

/// One guest handle as the harness sees it.
#[derive(Clone, Copy, Debug)]
struct Handle {
    rep: u32,
    /// False for a dropped or forged handle: every use must trap.
    live: bool,
}

/// What the model knows of one live buffer.
struct Shadow {
    size: u64,
    /// The exact contents, while known (small buffers not written by a kernel since).
    bytes: Option<Vec<u8>>,
}

/// A host instance plus the model of what it must hold.
pub struct Harness {
    state: HostState,
    backend: &'static str,
    /// Live buffers by resource rep.
    live: HashMap<u32, Shadow>,
    /// Reps of dropped buffers (for use-after-drop).
    dropped: Vec<u32>,
    /// Calls made, and calls the host refused with a typed error or a trap.
    pub calls: u64,
    /// Calls refused with a typed error.
    pub refused: u64,
    /// Calls that trapped (stale or forged handles).
    pub trapped: u64,
    /// Kernel calls that ran to completion.
    pub kernels_ran: u64,
    /// What the current call is, for the per-call time check's message.
    last_call: String,
}

type Trap = wasmtime::Error;
type Answer<T> = Result<Result<T, compute::Error>, Trap>;

fn own(rep: u32) -> Resource<GpuBuffer> {
    Resource::new_own(rep)
}

fn borrow(rep: u32) -> Resource<GpuBuffer> {
    Resource::new_borrow(rep)
}

fn describe(e: &compute::Error) -> (&'static str, &str) {
    match e {
        compute::Error::OutOfMemory(m) => ("out-of-memory", m),
        compute::Error::InvalidArgument(m) => ("invalid-argument", m),
        compute::Error::LimitExceeded(m) => ("limit-exceeded", m),
        compute::Error::KernelFailure(m) => ("kernel-failure", m),
        compute::Error::DeviceLost(m) => ("device-lost", m),
    }
}

impl Harness {
    /// A fresh host instance over `backend` with [`LIMITS`].
    pub fn new(backend: Box<dyn Backend>) -> Self {
        let backend_name = backend.info().backend.name();
        let device = Device::new(backend, LIMITS);
        let state = HostState::new(WasiCtx::builder().build(), device, GuestLimiter::new(1 << 30), wasi_gpu_backend::CancelToken::new());
        Harness {
            state,
            backend: backend_name,
            live: HashMap::new(),
            dropped: Vec::new(),
            calls: 0,
            refused: 0,
            trapped: 0,
            kernels_ran: 0,
            last_call: String::new(),
        }
    }

    /// The backend's name, for messages.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    fn pick(&mut self, input: &mut Input) -> Handle {
        let b = input.byte();
        let mut reps: Vec<u32> = self.live.keys().copied().collect();
        reps.sort_unstable();
        if b < 200 && !reps.is_empty() {
            Handle { rep: reps[b as usize % reps.len()], live: true }
        } else if b < 235 && !self.dropped.is_empty() {
            let rep = self.dropped[b as usize % self.dropped.len()];
            Handle { rep, live: self.live.contains_key(&rep) }
        } else {
            let rep = input.u32() % 1024;
            Handle { rep, live: self.live.contains_key(&rep) }
        }
    }

    fn picks(&mut self, n: usize, input: &mut Input) -> Vec<Handle> {
        (0..n).map(|_| self.pick(input)).collect()
    }

    /// Checks the shape of an answer: a trap exactly when a handle was not live, and typed
    /// errors with messages that are never backend failures. Returns the inner result when
    /// the call did not trap.
    fn answer<T>(&mut self, what: &str, handles: &[Handle], r: Answer<T>) -> Result<Option<Result<T, String>>, String> {
        self.calls += 1;
        let all_live = handles.iter().all(|h| h.live);
        match r {
            Err(trap) => {
                self.trapped += 1;
                if all_live {
                    return Err(format!("{what}: trapped with live handles: {trap:#}"));
                }
                Ok(None)
            }
            Ok(_) if !all_live => Err(format!("{what}: a stale or forged handle ({handles:?}) did not trap")),
            Ok(Ok(v)) => Ok(Some(Ok(v))),
            Ok(Err(e)) => {
                self.refused += 1;
                let (kind, msg) = describe(&e);
                if matches!(e, compute::Error::KernelFailure(_) | compute::Error::DeviceLost(_)) {
                    return Err(format!("{what}: backend failure on the {} backend: {kind}: {msg}", self.backend));
                }
                if msg.trim().is_empty() {
                    return Err(format!("{what}: {kind} without a message"));
                }
                Ok(Some(Err(format!("{kind}: {msg}"))))
            }
        }
    }

    /// Fails unless `got` (a non-trapping answer) matches `valid`.
    fn expect<T>(what: &str, valid: bool, got: &Result<T, String>) -> Result<(), String> {
        match (valid, got) {
            (true, Err(e)) => Err(format!("{what}: a valid call was refused: {e}")),
            (false, Ok(_)) => Err(format!("{what}: an invalid call was accepted")),
            _ => Ok(()),
        }
    }

    fn used(&self) -> u64 {
        self.live.values().map(|s| s.size).sum()
    }

    fn size_of(&self, h: Handle) -> u64 {
        self.live.get(&h.rep).map_or(0, |s| s.size)
    }

    fn in_range(&self, h: Handle, offset: u64, len: u64) -> bool {
        len <= LIMITS.max_transfer_bytes && offset.checked_add(len).is_some_and(|end| end <= self.size_of(h))
    }

    /// Runs one decoded call; Err describes the first violated property.
    pub fn step(&mut self, input: &mut Input) -> Result<(), String> {
        let mut op = input.byte() % 16;
        if self.live.len() < 3 && op.is_multiple_of(2) {
            op = 0;
        }
        let start = std::time::Instant::now();
        self.call_op(op, input)?;
        let took = start.elapsed();
        if took > call_time_limit() {
            return Err(format!(
                "{} took {took:?} on the {} backend, over the per-call limit of {:?}",
                self.last_call,
                self.backend,
                call_time_limit()
            ));
        }
        let (used, count) = (self.state.device().used_bytes(), self.state.device().live_buffers());
        if used != self.used() || count != self.live.len() {
            return Err(format!(
                "accounting drifted: device says {used} bytes in {count} buffers, model {} bytes in {}",
                self.used(),
                self.live.len()
            ));
        }
        Ok(())
    }

    fn call_op(&mut self, op: u8, input: &mut Input) -> Result<(), String> {
        self.last_call = format!("op {op}");
        match op {
            0 | 1 => self.create(input)?,
            2 => self.write(input)?,
            3 => self.read(input)?,
            4 => self.copy(input)?,
            5 => self.drop_one(input)?,
            6 => self.size(input)?,
            7..=14 => self.kernel(op - 7, input)?,
            _ => {
                let r = compute::Host::synchronize(&mut self.state);
                if let Some(got) = self.answer("synchronize", &[], r)? {
                    Self::expect("synchronize", true, &got)?;
                }
                let info = compute::Host::info(&mut self.state).map_err(|e| format!("info trapped: {e:#}"))?;
                if info.memory_bytes > LIMITS.max_device_bytes {
                    return Err(format!("info reports {} bytes, over the guest limit", info.memory_bytes));
                }
                if self.state.device().held_bytes() > LIMITS.max_device_bytes {
                    return Err(format!(
                        "buffers and backend scratch hold {} bytes, over the guest limit",
                        self.state.device().held_bytes()
                    ));
                }
            }
        }
        Ok(())
    }

    fn create(&mut self, input: &mut Input) -> Result<(), String> {
        let size = input.size();
        self.create_sized(size).map(|_| ())
    }

    /// Creates a buffer of `size` bytes and checks the answer against the limits.
    fn create_sized(&mut self, size: u64) -> Result<Option<Handle>, String> {
        let r = compute::HostBuffer::create(&mut self.state, size);
        let what = format!("create({size})");
        let Some(got) = self.answer(&what, &[], r)? else { unreachable!("create has no handle to trap on") };
        let fits = self.used().saturating_add(size) <= LIMITS.max_device_bytes && self.live.len() < LIMITS.max_buffers as usize;
        match got {
            Ok(res) => {
                if !fits {
                    return Err(format!("{what}: accepted past the limits"));
                }
                let rep = res.rep();
                if self.live.contains_key(&rep) {
                    return Err(format!("{what}: returned the live handle {rep} again"));
                }
                let bytes = (size <= SHADOW_MAX).then(|| vec![0; size as usize]);
                self.live.insert(rep, Shadow { size, bytes });
                self.dropped.retain(|&d| d != rep);
                Ok(Some(Handle { rep, live: true }))
            }
            Err(e) => {
                // Within the limits a modest buffer must be granted; big ones may meet a
                // real device's own ceiling.
                if fits && size <= 1 << 20 {
                    return Err(format!("{what}: refused within the limits: {e}"));
                }
                Ok(None)
            }
        }
    }

    /// Kernel arguments: usually fresh buffers of exactly the sizes the parameters need,
    /// filled with random (often planted) contents, so kernels really run on garbage; else
    /// random picks among live, dropped and forged handles.
    fn kernel_handles(
        &mut self,
        needs: &Result<Vec<u64>, wasi_gpu_backend::GpuError>,
        n: usize,
        input: &mut Input,
    ) -> Result<Vec<Handle>, String> {
        if !input.byte().is_multiple_of(4)
            && let Ok(needs) = needs
            && let Some(total) = needs.iter().try_fold(0u64, |a, &b| a.checked_add(b))
            && total <= 2 << 20
            && needs.iter().all(|&b| b <= LIMITS.max_transfer_bytes)
        {
            // Make room: drop the oldest buffers while the new ones would not fit.
            while !self.live.is_empty()
                && (self.used() + total > LIMITS.max_device_bytes || self.live.len() + n > LIMITS.max_buffers as usize)
            {
                let rep = *self.live.keys().min().expect("not empty");
                self.drop_rep(Handle { rep, live: true })?;
            }
            let mut out = Vec::with_capacity(n);
            for &need in needs {
                let Some(h) = self.create_sized(need)? else { return Ok(out) };
                let data = input.data(need as usize);
                self.write_at(h, 0, data)?;
                out.push(h);
            }
            // An occasional alias or stale handle among otherwise fitting buffers.
            if input.byte().is_multiple_of(8) && n > 1 {
                let i = input.byte() as usize % n;
                out[i] = self.pick(input);
            }
            return Ok(out);
        }
        Ok(self.picks(n, input))
    }

    fn write(&mut self, input: &mut Input) -> Result<(), String> {
        let h = self.pick(input);
        let offset = input.offset();
        let len = (input.size() as usize).min(LIMITS.max_transfer_bytes as usize + 1);
        let data = input.data(len);
        self.write_at(h, offset, data)
    }

    fn write_at(&mut self, h: Handle, offset: u64, data: Vec<u8>) -> Result<(), String> {
        let len = data.len();
        let what = format!("write(handle {}, offset {offset}, {len} bytes)", h.rep);
        let r = compute::HostBuffer::write(&mut self.state, borrow(h.rep), offset, data.clone());
        let Some(got) = self.answer(&what, &[h], r)? else { return Ok(()) };
        Self::expect(&what, self.in_range(h, offset, len as u64), &got)?;
        if got.is_ok()
            && let Some(bytes) = self.live.get_mut(&h.rep).and_then(|s| s.bytes.as_mut())
        {
            bytes[offset as usize..offset as usize + len].copy_from_slice(&data);
        }
        Ok(())
    }

    fn read(&mut self, input: &mut Input) -> Result<(), String> {
        let h = self.pick(input);
        let offset = input.offset();
        let len = input.size();
        let what = format!("read(handle {}, offset {offset}, {len} bytes)", h.rep);
        let r = compute::HostBuffer::read(&mut self.state, borrow(h.rep), offset, len);
        let Some(got) = self.answer(&what, &[h], r)? else { return Ok(()) };
        Self::expect(&what, self.in_range(h, offset, len), &got)?;
        if let Ok(v) = &got {
            if v.len() as u64 != len {
                return Err(format!("{what}: returned {} bytes", v.len()));
            }
            if let Some(bytes) = self.live.get(&h.rep).and_then(|s| s.bytes.as_ref())
                && v[..] != bytes[offset as usize..(offset + len) as usize]
            {
                return Err(format!("{what}: returned bytes the model did not predict"));
            }
        }
        Ok(())
    }

    fn copy(&mut self, input: &mut Input) -> Result<(), String> {
        let (dst, src) = (self.pick(input), self.pick(input));
        let (src_offset, dst_offset) = (input.offset(), input.offset());
        let len = if input.byte().is_multiple_of(2) { input.size() } else { input.byte() as u64 };
        let what = format!("copy(dst {} at {dst_offset}, src {} at {src_offset}, {len} bytes)", dst.rep, src.rep);
        let r = compute::HostBuffer::copy_from(&mut self.state, borrow(dst.rep), borrow(src.rep), src_offset, dst_offset, len);
        let Some(got) = self.answer(&what, &[dst, src], r)? else { return Ok(()) };
        let overlap =
            src.rep == dst.rep && len > 0 && src_offset < dst_offset.saturating_add(len) && dst_offset < src_offset.saturating_add(len);
        let valid = self.in_range(src, src_offset, len) && self.in_range(dst, dst_offset, len) && !overlap;
        Self::expect(&what, valid, &got)?;
        if got.is_ok() {
            let piece = self
                .live
                .get(&src.rep)
                .and_then(|s| s.bytes.as_ref())
                .map(|b| b[src_offset as usize..(src_offset + len) as usize].to_vec());
            if let Some(shadow) = self.live.get_mut(&dst.rep) {
                match (piece, shadow.bytes.as_mut()) {
                    (Some(p), Some(bytes)) => bytes[dst_offset as usize..(dst_offset + len) as usize].copy_from_slice(&p),
                    _ => shadow.bytes = None,
                }
            }
        }
        Ok(())
    }

    fn drop_one(&mut self, input: &mut Input) -> Result<(), String> {
        let h = self.pick(input);
        self.drop_rep(h)
    }

    fn drop_rep(&mut self, h: Handle) -> Result<(), String> {
        let r = compute::HostBuffer::drop(&mut self.state, own(h.rep)).map(Ok);
        let what = format!("drop(handle {})", h.rep);
        if self.answer(&what, &[h], r)?.is_some() {
            self.live.remove(&h.rep);
            self.dropped.push(h.rep);
            if self.dropped.len() > 64 {
                self.dropped.remove(0);
            }
        }
        Ok(())
    }

    fn size(&mut self, input: &mut Input) -> Result<(), String> {
        let h = self.pick(input);
        let r = compute::HostBuffer::size(&mut self.state, borrow(h.rep)).map(Ok);
        let what = format!("size(handle {})", h.rep);
        if let Some(Ok(size)) = self.answer(&what, &[h], r)?
            && size != self.size_of(h)
        {
            return Err(format!("{what}: {size}, model {}", self.size_of(h)));
        }
        Ok(())
    }

    /// Whether a kernel call is valid: parameters pass, every handle is live, distinct and
    /// large enough.
    fn kernel_valid(&self, needs: Result<Vec<u64>, wasi_gpu_backend::GpuError>, hs: &[Handle]) -> bool {
        let Ok(needs) = needs else { return false };
        let distinct = hs.iter().enumerate().all(|(i, a)| hs[..i].iter().all(|b| b.rep != a.rep));
        distinct && hs.iter().zip(&needs).all(|(h, &n)| h.live && self.size_of(*h) >= n)
    }

    fn kernel(&mut self, which: u8, input: &mut Input) -> Result<(), String> {
        let name;
        let handles: Vec<Handle>;
        let needs: Result<Vec<u64>, wasi_gpu_backend::GpuError>;
        // Indices (into `handles`) of the buffers the kernel writes.
        let outputs: &[usize];
        let r: Answer<()>;
        match which {
            0 => {
                let p = BinFeaturesParams { rows: input.param(), features: input.param(), max_bins: input.max_bins() };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 3, input)?;
                name = format!("bin-features {p:?}");
                outputs = &[2];
                let w = ml_kernels::BinFeaturesParams { rows: p.rows, features: p.features, max_bins: p.max_bins };
                let h = &handles;
                r = ml_kernels::Host::bin_features(&mut self.state, w, borrow(h[0].rep), borrow(h[1].rep), borrow(h[2].rep));
            }
            1 => {
                let p = BootstrapParams {
                    seed: input.u64(),
                    rows: input.param(),
                    tree_begin: input.param(),
                    tree_count: input.param(),
                    draws: input.param(),
                };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 2, input)?;
                name = format!("bootstrap {p:?}");
                outputs = &[0, 1];
                let w = ml_kernels::BootstrapParams {
                    seed: p.seed,
                    rows: p.rows,
                    tree_begin: p.tree_begin,
                    tree_count: p.tree_count,
                    draws: p.draws,
                };
                r = ml_kernels::Host::bootstrap(&mut self.state, w, borrow(handles[0].rep), borrow(handles[1].rep));
            }
            2 => {
                let p = HistogramParams {
                    rows: input.param(),
                    features: input.param(),
                    max_bins: input.max_bins(),
                    tree_count: input.param(),
                    slot_begin: input.param(),
                    slot_count: input.param(),
                };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 5, input)?;
                name = format!("build-histograms {p:?}");
                outputs = &[4];
                let w = ml_kernels::HistogramParams {
                    rows: p.rows,
                    features: p.features,
                    max_bins: p.max_bins,
                    tree_count: p.tree_count,
                    slot_begin: p.slot_begin,
                    slot_count: p.slot_count,
                };
                let h: Vec<_> = handles.iter().map(|h| borrow(h.rep)).collect();
                let [a, b, c, d, e] = <[_; 5]>::try_from(h).expect("five handles");
                r = ml_kernels::Host::build_histograms(&mut self.state, w, a, b, c, d, e);
            }
            3 => {
                let features = input.param();
                let p = SplitParams {
                    features,
                    max_bins: input.max_bins(),
                    slot_begin: input.param(),
                    slot_count: input.param(),
                    min_samples_leaf: input.param(),
                    mask_words: if input.byte().is_multiple_of(2) { features.div_ceil(32) } else { input.param() },
                };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 3, input)?;
                name = format!("find-splits {p:?}");
                outputs = &[2];
                let w = ml_kernels::SplitParams {
                    features: p.features,
                    max_bins: p.max_bins,
                    slot_begin: p.slot_begin,
                    slot_count: p.slot_count,
                    min_samples_leaf: p.min_samples_leaf,
                    mask_words: p.mask_words,
                };
                let h = &handles;
                r = ml_kernels::Host::find_splits(&mut self.state, w, borrow(h[0].rep), borrow(h[1].rep), borrow(h[2].rep));
            }
            4 => {
                let features = input.param();
                let p = RowSplitParams {
                    rows: input.param(),
                    features,
                    max_bins: input.max_bins(),
                    tree_count: input.param(),
                    slot_begin: input.param(),
                    slot_count: input.param(),
                    min_samples_leaf: input.param(),
                    mask_words: if input.byte().is_multiple_of(2) { features.div_ceil(32) } else { input.param() },
                };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 6, input)?;
                name = format!("find-splits-rows {p:?}");
                outputs = &[5];
                let w = ml_kernels::RowSplitParams {
                    rows: p.rows,
                    features: p.features,
                    max_bins: p.max_bins,
                    tree_count: p.tree_count,
                    slot_begin: p.slot_begin,
                    slot_count: p.slot_count,
                    min_samples_leaf: p.min_samples_leaf,
                    mask_words: p.mask_words,
                };
                let h: Vec<_> = handles.iter().map(|h| borrow(h.rep)).collect();
                let [a, b, c, d, e, f] = <[_; 6]>::try_from(h).expect("six handles");
                r = ml_kernels::Host::find_splits_rows(&mut self.state, w, a, b, c, d, e, f);
            }
            5 => {
                let p = ApplyParams { rows: input.param(), features: input.param(), tree_count: input.param(), slot_count: input.param() };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 4, input)?;
                name = format!("apply-splits {p:?}");
                outputs = &[3];
                let w = ml_kernels::ApplyParams { rows: p.rows, features: p.features, tree_count: p.tree_count, slot_count: p.slot_count };
                let h = &handles;
                r = ml_kernels::Host::apply_splits(
                    &mut self.state,
                    w,
                    borrow(h[0].rep),
                    borrow(h[1].rep),
                    borrow(h[2].rep),
                    borrow(h[3].rep),
                );
            }
            _ => {
                let (rows, features, tree_count, node_count) = (input.param(), input.param(), input.param(), input.param());
                // Usually at most node-count (valid), sometimes anything (mostly refused).
                let max_depth = if input.byte().is_multiple_of(4) { input.param() } else { (input.byte() as u32).min(node_count) };
                let p = PredictParams { rows, features, tree_count, node_count, max_depth };
                needs = p.check().map(Vec::from);
                handles = self.kernel_handles(&needs, 4, input)?;
                name = format!("predict-forest {p:?}");
                outputs = &[3];
                let w = ml_kernels::PredictParams {
                    rows: p.rows,
                    features: p.features,
                    tree_count: p.tree_count,
                    node_count: p.node_count,
                    max_depth: p.max_depth,
                };
                let h = &handles;
                r = ml_kernels::Host::predict_forest(
                    &mut self.state,
                    w,
                    borrow(h[0].rep),
                    borrow(h[1].rep),
                    borrow(h[2].rep),
                    borrow(h[3].rep),
                );
            }
        }
        let what = format!("{name} on handles {:?}", handles.iter().map(|h| h.rep).collect::<Vec<_>>());
        self.last_call.clone_from(&what);
        let Some(got) = self.answer(&what, &handles, r)? else { return Ok(()) };
        // A valid call may still be refused when the backend's scratch does not fit what the
        // guest's buffers leave of its device-memory limit; the model does not know scratch.
        let scratch_refusal = matches!(&got, Err(e) if e.starts_with("limit-exceeded") && e.contains("--max-device-memory"));
        if !scratch_refusal {
            Self::expect(&what, self.kernel_valid(needs, &handles), &got)?;
        }
        if got.is_ok() {
            self.kernels_ran += 1;
            for &i in outputs {
                if let Some(shadow) = self.live.get_mut(&handles[i].rep) {
                    shadow.bytes = None;
                }
            }
        }
        Ok(())
    }

    /// Runs every call decoded from `data`, stopping at the first violated property.
    pub fn run(&mut self, data: &[u8]) -> Result<(), String> {
        let mut input = Input::new(data);
        let mut steps = 0;
        while !input.is_empty() && steps < 256 {
            self.step(&mut input)?;
            steps += 1;
        }
        Ok(())
    }

    /// Drops every buffer, checks the device holds nothing, then checks that known-answer
    /// kernels still give exactly the right bytes (and accounting returns to zero again).
    pub fn finish(&mut self) -> Result<(), String> {
        for rep in self.live.keys().copied().collect::<Vec<_>>() {
            compute::HostBuffer::drop(&mut self.state, own(rep)).map_err(|e| format!("dropping {rep}: {e:#}"))?;
            self.live.remove(&rep);
            self.dropped.push(rep);
        }
        self.check_empty("after dropping everything")?;
        self.known_answers()?;
        self.check_empty("after the known-answer kernels")
    }

    fn check_empty(&self, when: &str) -> Result<(), String> {
        let d = self.state.device();
        if d.used_bytes() != 0 || d.live_buffers() != 0 {
            return Err(format!("{when}: the device still holds {} bytes in {} buffers", d.used_bytes(), d.live_buffers()));
        }
        Ok(())
    }

    fn buffer(&mut self, bytes: &[u8]) -> Result<Resource<GpuBuffer>, String> {
        let b = compute::HostBuffer::create(&mut self.state, bytes.len() as u64)
            .map_err(|e| format!("{e:#}"))?
            .map_err(|e| format!("known-answer create: {e:?}"))?;
        let rep = b.rep();
        compute::HostBuffer::write(&mut self.state, borrow(rep), 0, bytes.to_vec())
            .map_err(|e| format!("{e:#}"))?
            .map_err(|e| format!("known-answer write: {e:?}"))?;
        Ok(b)
    }

    fn read_back(&mut self, rep: u32, len: u64) -> Result<Vec<u8>, String> {
        compute::HostBuffer::read(&mut self.state, borrow(rep), 0, len)
            .map_err(|e| format!("{e:#}"))?
            .map_err(|e| format!("known-answer read: {e:?}"))
    }

    fn known_answers(&mut self) -> Result<(), String> {
        let f = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let w = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // bin-features: bin = number of edges below x.
        let x = self.buffer(&f(&[0.0, 1.5, 3.0, -1.0, 2.0]))?;
        let edges = self.buffer(&f(&[1.0, 2.0, f32::INFINITY]))?;
        let bins = self.buffer(&[0xee; 8])?;
        let p = ml_kernels::BinFeaturesParams { rows: 5, features: 1, max_bins: 4 };
        ml_kernels::Host::bin_features(&mut self.state, p, borrow(x.rep()), borrow(edges.rep()), borrow(bins.rep()))
            .map_err(|e| format!("{e:#}"))?
            .map_err(|e| format!("known-answer bin-features: {e:?}"))?;
        let got = self.read_back(bins.rep(), 5)?;
        if got != [0, 1, 2, 0, 1] {
            return Err(format!("known-answer bin-features gave {got:?}, expected [0, 1, 2, 0, 1]"));
        }
        // predict-forest: two copies of a stump (x <= 0.5 ? 10 : 2^63 + 20); the 128-bit sum
        // of the right leaf carries into word 2.
        let px = self.buffer(&f(&[0.0, 1.0]))?;
        let nodes = self.buffer(&w(&[0, 0.5f32.to_bits(), 1, 2, u32::MAX, 10, 0, 0, u32::MAX, 20, 0x8000_0000, 0]))?;
        let roots = self.buffer(&w(&[0, 0]))?;
        let sums = self.buffer(&[0xee; 32])?;
        let p = ml_kernels::PredictParams { rows: 2, features: 1, tree_count: 2, node_count: 3, max_depth: 3 };
        ml_kernels::Host::predict_forest(
            &mut self.state,
            p,
            borrow(px.rep()),
            borrow(nodes.rep()),
            borrow(roots.rep()),
            borrow(sums.rep()),
        )
        .map_err(|e| format!("{e:#}"))?
        .map_err(|e| format!("known-answer predict-forest: {e:?}"))?;
        let got = self.read_back(sums.rep(), 32)?;
        if got != w(&[20, 0, 0, 0, 40, 0, 1, 0]) {
            return Err(format!("known-answer predict-forest gave {got:?}, expected sums [20, 2^64 + 40]"));
        }
        for b in [x, edges, bins, px, nodes, roots, sums] {
            compute::HostBuffer::drop(&mut self.state, b).map_err(|e| format!("{e:#}"))?;
        }
        Ok(())
    }
}
