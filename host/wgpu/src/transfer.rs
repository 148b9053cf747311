//! `write`, `read` and `copy-from`. Their staging memory is transient and bounded whatever
//! the transfer's size: data moves in pieces of at most [`PIECE`] bytes, and the GPU is
//! waited for once [`STAGED_LIMIT`] bytes of staging are in flight (wgpu frees a staging
//! buffer only after the submission that used it has finished).

use wasi_gpu_backend::{BufferId, GpuError};

use crate::backend::WgpuBackend;
use crate::round4;

/// Largest piece of a transfer staged at once.
const PIECE: u64 = 8 << 20;
/// Most bytes of staging submitted and not yet waited for.
const STAGED_LIMIT: u64 = 32 << 20;

impl WgpuBackend {
    /// Accounts for `bytes` of staging about to be submitted, first waiting for the GPU if
    /// the staging in flight would otherwise exceed [`STAGED_LIMIT`].
    fn stage(&self, bytes: u64) -> Result<(), GpuError> {
        if self.staged.get() + bytes > STAGED_LIMIT {
            self.wait()?;
        }
        self.staged.set(self.staged.get() + bytes);
        Ok(())
    }

    /// Writes `data` at byte `offset` of buffer `id`. Whole words go straight from `data`
    /// (wgpu's own staging, a piece at a time); the bytes of partly written words at
    /// either end are merged on the GPU so that the word's other bytes stay.
    pub(crate) fn write_bytes(&self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.buf(id)?;
        let end = offset + data.len() as u64;
        let (a, b) = (round4(offset), end / 4 * 4);
        let mut pos = a;
        while pos < b {
            if pos > a {
                self.budget.cancel.check("write")?;
            }
            let n = (b - pos).min(PIECE);
            self.stage(n)?;
            self.queue.write_buffer(dst, pos, &data[(pos - offset) as usize..(pos + n - offset) as usize]);
            // Submit at once: wgpu keeps a write's staging until a submission carries it.
            self.queue.submit([]);
            pos += n;
        }
        // Partial words: (destination offset, bytes), at most 3 bytes each.
        let edges: Vec<(u64, &[u8])> = if a > b {
            // Within one word.
            vec![(offset, data)]
        } else {
            let head = (offset < a).then(|| (offset, &data[..(a - offset) as usize]));
            let tail = (end > b).then(|| (b, &data[(b - offset) as usize..]));
            head.into_iter().chain(tail).collect()
        };
        if !edges.is_empty() {
            // Edge i's bytes sit in word i of a small staging buffer.
            let mut words = [0u8; 8];
            for (i, (_, bytes)) in edges.iter().enumerate() {
                words[i * 4..i * 4 + bytes.len()].copy_from_slice(bytes);
            }
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            let staging = self.create("write staging", 8, usage)?;
            self.queue.write_buffer(&staging, 0, &words);
            let mut encoder = self.encoder();
            for (i, &(at, bytes)) in edges.iter().enumerate() {
                self.copy_bytes(&mut encoder, &staging, i as u64 * 4, dst, at, bytes.len() as u64);
            }
            self.stage(8)?;
            self.submit(encoder)?;
            staging.destroy();
        }
        self.check()
    }

    /// Reads `len` bytes at byte `offset` of buffer `id`, a piece at a time through one
    /// mapped staging buffer.
    pub(crate) fn read_bytes(&self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        self.read_buffer(self.buf(id)?, offset, len)
    }

    /// Reads `count` u32 words from word `first` of one of the backend's own buffers.
    pub(crate) fn read_words(&self, src: &wgpu::Buffer, first: u64, count: u64) -> Result<Vec<u32>, GpuError> {
        let bytes = self.read_buffer(src, first * 4, count * 4)?;
        Ok(bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect())
    }

    /// [`Self::read_bytes`] of any buffer.
    fn read_buffer(&self, src: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        out.try_reserve_exact(len as usize)
            .map_err(|_| GpuError::OutOfMemory(format!("the host could not hold a read of {len} bytes; read less at once")))?;
        let (start, end) = (offset / 4 * 4, round4(offset + len));
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = self.create("read-back staging", (end - start).min(PIECE), usage)?;
        let mut pos = start;
        while pos < end {
            if pos > start {
                self.budget.cancel.check("read")?;
            }
            let n = (end - pos).min(PIECE);
            let mut encoder = self.encoder();
            encoder.copy_buffer_to_buffer(src, pos, &staging, 0, n);
            self.submit(encoder)?;
            let (tx, rx) = std::sync::mpsc::channel();
            staging.map_async(wgpu::MapMode::Read, 0..n, move |r| {
                let _ = tx.send(r);
            });
            self.wait()?;
            match rx.try_recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(GpuError::KernelFailure(format!("mapping the read-back buffer failed: {e}"))),
                Err(_) => return Err(GpuError::DeviceLost("the read-back buffer was never mapped".into())),
            }
            let view =
                staging.get_mapped_range(0..n).map_err(|e| GpuError::KernelFailure(format!("reading the mapped buffer failed: {e}")))?;
            let (lo, hi) = (offset.max(pos), (offset + len).min(pos + n));
            out.extend_from_slice(&view[(lo - pos) as usize..(hi - pos) as usize]);
            drop(view);
            staging.unmap();
            pos += n;
        }
        staging.destroy();
        Ok(out)
    }

    /// Copies `len` bytes from `src[src_offset..]` to `dst[dst_offset..]` (Device checked
    /// that ranges within one buffer do not overlap).
    pub(crate) fn copy_range(&self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        if len == 0 {
            return Ok(());
        }
        let (s, d) = (self.buf(src)?, self.buf(dst)?);
        let mut encoder = self.encoder();
        let aligned = src_offset.is_multiple_of(4) && dst_offset.is_multiple_of(4) && len.is_multiple_of(4);
        // wgpu refuses a buffer-to-buffer copy within one buffer, even between disjoint ranges.
        if aligned && src != dst {
            encoder.copy_buffer_to_buffer(s, src_offset, d, dst_offset, len);
            return self.submit(encoder);
        }
        // Unaligned or within one buffer: piece by piece, copy the word-aligned source span
        // aside, then merge its bytes into the destination on the GPU (the copies and passes
        // of one encoder run in order, so the pieces share one staging buffer).
        let span = round4(src_offset + len) - src_offset / 4 * 4;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let staging = self.create("copy staging", span.min(PIECE + 8), usage)?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(PIECE);
            let from = src_offset + done;
            let (start, end) = (from / 4 * 4, round4(from + n));
            encoder.copy_buffer_to_buffer(s, start, &staging, 0, end - start);
            self.copy_bytes(&mut encoder, &staging, from - start, d, dst_offset + done, n);
            done += n;
        }
        self.stage(staging.size())?;
        self.submit(encoder)?;
        staging.destroy();
        Ok(())
    }

    /// Byte-exact copy of `len` bytes from `src[src_off..]` to `dst[dst_off..]` on the GPU,
    /// leaving the other bytes of the edge words of `dst` untouched.
    fn copy_bytes(&self, encoder: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, src_off: u64, dst: &wgpu::Buffer, dst_off: u64, len: u64) {
        let first = dst_off / 4;
        let last = (dst_off + len - 1) / 4;
        let params = [0, 0, first as u32, dst_off as u32, len as u32, src_off as u32];
        self.dispatch(encoder, &self.kernels.copy_bytes, &params, &[src, dst], last - first + 1);
    }
}
