//! Thin safe wrappers over the generated `wasi:gpu` bindings: typed `u32`/`f32` transfers in
//! bounded pieces, errors as strings, and kernel calls that take plain parameter records.
//! Everything else in the guest talks to the device only through this module.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "ml-compute",
    });
}

use std::sync::atomic::{AtomicU64, Ordering};

use bindings::wasi::gpu::compute;
use bindings::wasi::gpu::ml_kernels as k;

pub use k::{ApplyParams, BinFeaturesParams, BootstrapParams, PredictParams, RowSplitParams};

/// Largest piece moved by one `buffer.write` or `buffer.read` call: 16 MiB, the same in both
/// guests (docs/guests.md, "Chunked transfers"); also the reading block of `.npy` input.
pub const TRANSFER_CHUNK_BYTES: usize = 16 << 20;
/// The smallest piece tried after the host refused larger ones as over its transfer limit.
const TRANSFER_MIN_BYTES: u64 = 4096;
/// The current piece size in bytes (a multiple of 4); 0 until the first transfer.
static PIECE: AtomicU64 = AtomicU64::new(0);

/// Bytes per transfer: min(TRANSFER_CHUNK_BYTES, `info().max-buffer-bytes`) in whole words,
/// and less once the host refused a piece with `limit-exceeded` (its --max-transfer, which
/// device-info does not report).
fn piece() -> u64 {
    match PIECE.load(Ordering::Relaxed) {
        0 => {
            let p = ((TRANSFER_CHUNK_BYTES as u64).min(compute::info().max_buffer_bytes) & !3).max(4);
            PIECE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// Runs `op(done, n)` for consecutive pieces of `bytes` bytes. A piece refused with
/// `limit-exceeded` (the host checks a transfer's length before it moves a byte) is retried
/// at half the size, which is kept for every later transfer; below TRANSFER_MIN_BYTES the
/// host's error is returned.
fn in_pieces(bytes: u64, mut op: impl FnMut(u64, u64) -> Result<(), PieceError>) -> GpuResult<()> {
    let mut done = 0;
    while done < bytes {
        let n = piece().min(bytes - done);
        match op(done, n) {
            Ok(()) => done += n,
            Err(PieceError::Device(compute::Error::LimitExceeded(_))) if (n / 2) & !3 >= TRANSFER_MIN_BYTES => {
                PIECE.store((n / 2) & !3, Ordering::Relaxed);
            }
            Err(PieceError::Device(e)) => return Err(describe(e)),
            Err(PieceError::Guest(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Why one piece of a transfer failed.
enum PieceError {
    /// The device refused it.
    Device(compute::Error),
    /// The guest found its result wrong.
    Guest(String),
}

impl From<compute::Error> for PieceError {
    fn from(e: compute::Error) -> Self {
        PieceError::Device(e)
    }
}

/// What the guest reports about its device.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub name: String,
    /// "cpu", "wgpu" or "cuda".
    pub backend: &'static str,
    pub driver: String,
    pub memory_bytes: u64,
    pub max_buffer_bytes: u64,
}

/// Asks the host which device this guest runs on.
pub fn info() -> DeviceInfo {
    let i = compute::info();
    DeviceInfo {
        name: i.name,
        backend: match i.backend {
            compute::BackendKind::Cpu => "cpu",
            compute::BackendKind::Wgpu => "wgpu",
            compute::BackendKind::Cuda => "cuda",
        },
        driver: i.driver,
        memory_bytes: i.memory_bytes,
        max_buffer_bytes: i.max_buffer_bytes,
    }
}

/// Renders a device error as "device <kind>: <message>".
fn describe(e: compute::Error) -> String {
    match e {
        compute::Error::OutOfMemory(m) => format!("device out of memory: {m}"),
        compute::Error::InvalidArgument(m) => format!("device rejected an argument: {m}"),
        compute::Error::LimitExceeded(m) => format!("device limit exceeded: {m}"),
        compute::Error::KernelFailure(m) => format!("device kernel failed: {m}"),
        compute::Error::DeviceLost(m) => format!("device lost: {m}"),
    }
}

/// Result of a device call, with the error already rendered for the user.
pub type GpuResult<T> = Result<T, String>;

/// A device buffer of 4-byte words (`u32` or `f32`). Dropping it frees the device memory.
pub struct DeviceBuffer {
    inner: compute::Buffer,
    words: u64,
}

impl DeviceBuffer {
    /// Allocates `words` zero-filled 4-byte words (at least one, so every kernel argument
    /// is a real, distinct buffer).
    pub fn zeroed(words: u64) -> GpuResult<Self> {
        let words = words.max(1);
        let bytes = words.checked_mul(4).ok_or("buffer size overflows 64 bits")?;
        let inner = compute::Buffer::create(bytes).map_err(describe)?;
        Ok(DeviceBuffer { inner, words })
    }

    /// Allocates a buffer holding exactly `data`.
    pub fn from_u32(data: &[u32]) -> GpuResult<Self> {
        let b = Self::zeroed(data.len() as u64)?;
        b.write_u32(0, data)?;
        Ok(b)
    }

    /// Capacity in words.
    pub fn words(&self) -> u64 {
        self.words
    }

    /// Writes `data` starting at word `offset`, in pieces of at most [`piece`] bytes.
    pub fn write_u32(&self, offset: u64, data: &[u32]) -> GpuResult<()> {
        self.write_bytes(offset, bytemuck::cast_slice(data))
    }

    /// Writes `f32` values (as their bit patterns) starting at word `offset`.
    pub fn write_f32(&self, offset: u64, data: &[f32]) -> GpuResult<()> {
        self.write_bytes(offset, bytemuck::cast_slice(data))
    }

    /// Writes whole words' bytes (little-endian: WebAssembly's own order, so the words are
    /// passed as they lie in memory) starting at word `offset`.
    fn write_bytes(&self, offset: u64, bytes: &[u8]) -> GpuResult<()> {
        in_pieces(bytes.len() as u64, |done, n| Ok(self.inner.write(offset * 4 + done, &bytes[done as usize..(done + n) as usize])?))
    }

    /// Reads `count` words starting at word `offset`, in pieces of at most [`piece`] bytes.
    pub fn read_u32(&self, offset: u64, count: u64) -> GpuResult<Vec<u32>> {
        let mut out = Vec::with_capacity(count as usize);
        in_pieces(count * 4, |done, n| {
            let bytes = self.inner.read(offset * 4 + done, n)?;
            if bytes.len() as u64 != n {
                return Err(PieceError::Guest(format!("device returned {} bytes for a read of {n}", bytes.len())));
            }
            out.extend(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            Ok(())
        })?;
        Ok(out)
    }
}

/// Kernel `bin-features` (§4).
pub fn bin_features(p: BinFeaturesParams, x: &DeviceBuffer, edges: &DeviceBuffer, bins: &DeviceBuffer) -> GpuResult<()> {
    k::bin_features(p, &x.inner, &edges.inner, &bins.inner).map_err(describe)
}

/// Kernel `bootstrap` (§3).
pub fn bootstrap(p: BootstrapParams, weights: &DeviceBuffer, node_of: &DeviceBuffer) -> GpuResult<()> {
    k::bootstrap(p, &weights.inner, &node_of.inner).map_err(describe)
}

/// Kernel `find-splits-rows`: the records of build-histograms + find-splits (§6-§7)
/// without a histogram in device memory.
pub fn find_splits_rows(
    p: RowSplitParams,
    bins: &DeviceBuffer,
    targets: &DeviceBuffer,
    weights: &DeviceBuffer,
    node_of: &DeviceBuffer,
    mask: &DeviceBuffer,
    splits: &DeviceBuffer,
) -> GpuResult<()> {
    k::find_splits_rows(p, &bins.inner, &targets.inner, &weights.inner, &node_of.inner, &mask.inner, &splits.inner).map_err(describe)
}

/// Kernel `apply-splits` (§8).
pub fn apply_splits(
    p: ApplyParams,
    bins: &DeviceBuffer,
    splits: &DeviceBuffer,
    next_slot: &DeviceBuffer,
    node_of: &DeviceBuffer,
) -> GpuResult<()> {
    k::apply_splits(p, &bins.inner, &splits.inner, &next_slot.inner, &node_of.inner).map_err(describe)
}

/// Kernel `predict-forest` (§9).
pub fn predict_forest(
    p: PredictParams,
    x: &DeviceBuffer,
    nodes: &DeviceBuffer,
    roots: &DeviceBuffer,
    sums: &DeviceBuffer,
) -> GpuResult<()> {
    k::predict_forest(p, &x.inner, &nodes.inner, &roots.inner, &sums.inner).map_err(describe)
}

/// A [`crate::data::FeatureSink`] that streams the feature matrix into a device buffer.
#[derive(Default)]
pub struct DeviceSink {
    /// The buffer, created by `begin` with `rows * features` words.
    pub buffer: Option<DeviceBuffer>,
    features: usize,
}

impl crate::data::FeatureSink for DeviceSink {
    fn begin(&mut self, rows: usize, features: usize) -> Result<(), String> {
        let words = (rows as u64).checked_mul(features as u64).ok_or("the feature matrix is too large")?;
        self.buffer = Some(DeviceBuffer::zeroed(words)?);
        self.features = features;
        Ok(())
    }

    fn write_rows(&mut self, first_row: usize, values: &[f32]) -> Result<(), String> {
        let buffer = self.buffer.as_ref().ok_or("rows arrived before the matrix shape")?;
        buffer.write_f32(first_row as u64 * self.features as u64, values)
    }
}
