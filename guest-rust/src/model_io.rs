//! The model file's bytes (docs/algorithm.md §10), written and read as streams: the nodes go
//! between the file and the forest's own vectors in whole trees (a tree's nodes are laid out
//! in memory exactly as in the file), through the checksum on the way, so neither saving nor
//! loading ever holds the whole file in memory beside the forest.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use sha2::{Digest, Sha256};
use xxhash_rust::xxh64::Xxh64;

use crate::error::Error;
use crate::model::{
    CHECKSUM_SHA256, CHECKSUM_XXH64, HEADER_BYTES, MAGIC, Model, NODE_BYTES, NONE, Node, OUTPUTS, TASK_REGRESSION, VERSION,
};

/// Buffer between the model and the file: a tree's nodes larger than this bypass it.
const IO_BUFFER: usize = 1 << 20;

/// Writes `<path>.tmp` through a buffer with `write`, then renames it over `path`; a failure
/// removes the temporary file and leaves `path` as it was. Returns what `write` returned.
pub(crate) fn write_atomically<T>(path: &str, write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>) -> Result<T, Error> {
    let tmp = format!("{path}.tmp");
    let written = File::create(&tmp).and_then(|f| {
        let mut w = BufWriter::with_capacity(IO_BUFFER, f);
        let out = write(&mut w)?;
        w.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(out)
    });
    let out = match written {
        Ok(out) => out,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::file(path, format!("cannot write {tmp}: {e}")));
        }
    };
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot rename {tmp} to it: {e}")));
    }
    Ok(out)
}

/// Reads the file at `path` to its end in 1 MiB pieces, handing each to `piece`; returns the
/// bytes read (the data fingerprint of partial forests and the receipts' SHA-256 use it).
pub(crate) fn read_pieces(path: &str, mut piece: impl FnMut(&[u8])) -> Result<u64, Error> {
    let mut file = File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let mut chunk = vec![0u8; IO_BUFFER];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::file(path, format!("cannot read: {e}"))),
        };
        piece(&chunk[..n]);
        bytes += n as u64;
    }
}

/// Bytes of the trailing checksum, by kind.
fn checksum_bytes(kind: u32) -> Option<usize> {
    match kind {
        CHECKSUM_SHA256 => Some(32),
        CHECKSUM_XXH64 => Some(8),
        _ => None,
    }
}

/// The checksum as reported in `model_checksum`: `xxh64:` and the 16 hex digits of the u64
/// (kind 2), or `sha256:` and 64 hex digits (kind 1, files of earlier releases).
fn checksum_name(kind: u32, trailer: &[u8]) -> String {
    if kind == CHECKSUM_SHA256 {
        let hex: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
        return format!("sha256:{hex}");
    }
    let sum = u64::from_le_bytes(trailer.try_into().expect("an 8-byte XXH64 trailer"));
    format!("xxh64:{sum:016x}")
}

impl Model {
    /// Bytes of the file `save` writes.
    pub fn file_len(&self) -> usize {
        let nodes: usize = self.trees.iter().map(Vec::len).sum();
        HEADER_BYTES + 4 + self.trees.len() * 4 + nodes * NODE_BYTES + 8
    }

    /// The file's bytes, checksum included.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.file_len());
        self.write_to(&mut out).expect("writing into a Vec cannot fail");
        out
    }

    /// Writes the file to `w`; returns its XXH64 checksum (the trailer).
    pub(crate) fn write_to(&self, w: &mut impl Write) -> io::Result<u64> {
        let mut head = Vec::with_capacity(HEADER_BYTES + 4);
        head.extend_from_slice(&MAGIC);
        for word in [VERSION, TASK_REGRESSION, CHECKSUM_XXH64, self.features, self.trees.len() as u32] {
            head.extend_from_slice(&word.to_le_bytes());
        }
        head.extend_from_slice(&self.seed.to_le_bytes());
        let words = [
            self.max_depth.unwrap_or(NONE),
            self.min_samples_split,
            self.min_samples_leaf,
            self.max_features,
            self.max_bins,
            self.train_rows,
            OUTPUTS,
        ];
        for word in words {
            head.extend_from_slice(&word.to_le_bytes());
        }
        head.extend_from_slice(&self.y_min.to_le_bytes());
        head.extend_from_slice(&self.scale.to_le_bytes());
        // Label table: empty for regression.
        head.extend_from_slice(&0u32.to_le_bytes());
        let mut hashed = Hashing { inner: &mut *w, sum: Xxh64::new(0) };
        hashed.write_all(&head)?;
        for tree in &self.trees {
            hashed.write_all(&(tree.len() as u32).to_le_bytes())?;
            hashed.write_all(bytemuck::cast_slice(tree))?;
        }
        let sum = hashed.sum.digest();
        w.write_all(&sum.to_le_bytes())?;
        Ok(sum)
    }

    /// Writes the model to `<path>.tmp` and renames it over `path`; returns (bytes, the
    /// file's checksum as `model_checksum` names it).
    pub fn save(&self, path: &str) -> Result<(usize, String), Error> {
        let sum = write_atomically(path, |w| self.write_to(w))?;
        Ok((self.file_len(), checksum_name(CHECKSUM_XXH64, &sum.to_le_bytes())))
    }

    /// Reads and validates a model file; returns the model and its checksum. (`predict` reads
    /// model files with `GpuPredictor::load`, tree by tree; `read_from` is the same reader.)
    #[cfg(test)]
    pub fn load(path: &str) -> Result<(Model, String), Error> {
        let cannot_read = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => Error::file(path, "cannot open: no such file (train a model first, or check --model)"),
            _ => Error::file(path, format!("cannot read: {e}")),
        };
        let file = File::open(path).map_err(cannot_read)?;
        let len = file.metadata().map_err(cannot_read)?.len();
        Model::read_from(&mut io::BufReader::with_capacity(IO_BUFFER, file), len).map_err(|e| Error::file(path, e))
    }

    /// Parses and validates a model file; the message says what is wrong.
    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
        Model::read_from(&mut &bytes[..], bytes.len() as u64).map(|(model, _)| model)
    }

    /// Reads a model file of `len` bytes from `src`; returns the model and its checksum. The
    /// checksum is judged first: a damaged file is reported as such, never by what its damage
    /// looks like to the parser, so a parse error waits until the whole body was hashed.
    pub(crate) fn read_from(src: &mut impl Read, len: u64) -> Result<(Model, String), String> {
        let mut forest = Vec::new();
        let (mut model, checksum) = read_with(src, len, &mut |_: &Model, _: u32, nodes: Vec<Node>| forest.push(nodes))?;
        model.trees = forest;
        model.validate()?;
        Ok((model, checksum))
    }
}

/// Reads a model file of `len` bytes from `src`, handing each tree to `tree` as it is read (the
/// header's fields, the tree's index, its nodes) instead of keeping it; returns the header's
/// fields (no trees) and the checksum. Nothing is validated beyond the file's structure: the
/// caller runs [`Model::validate`] or its parts, after this returns. A parse error waits until
/// the checksum was judged, as [`Model::read_from`] says.
pub(crate) fn read_with(src: &mut impl Read, len: u64, tree: &mut dyn FnMut(&Model, u32, Vec<Node>)) -> Result<(Model, String), String> {
    let cannot_read = |e: io::Error| format!("cannot read: {e}");
    let mut start = [0u8; 20];
    let n = len.min(start.len() as u64) as usize;
    src.read_exact(&mut start[..n]).map_err(cannot_read)?;
    if n >= 8 && start[..8] == crate::shard::PARTIAL_MAGIC {
        return Err("a partial forest, not a model: merge it with the other shards first (merge --model OUT PART...)".into());
    }
    if n < 8 || start[..8] != MAGIC {
        return Err("not a model file (wrong magic; expected a model.bin written by a wasi:gpu guest)".into());
    }
    if len < (HEADER_BYTES + 8) as u64 {
        return Err(format!("truncated: {len} bytes is shorter than a model header"));
    }
    let word = |at: usize| u32::from_le_bytes(start[at..at + 4].try_into().expect("4 bytes"));
    let (version, task, kind) = (word(8), word(12), word(16));
    if version == 1 {
        return Err("model format version 1 was written by an older release; retrain the model with this one \
                    (training is deterministic: same data, parameters and seed give the same forest)"
            .into());
    }
    if version != VERSION {
        return Err(format!("model format version {version} is not supported (this guest reads version {VERSION})"));
    }
    if task != TASK_REGRESSION {
        return Err(format!("model task {task} is not supported (this guest reads regression models, task 0)"));
    }
    let Some(trailer_len) = checksum_bytes(kind) else {
        return Err(format!("checksum kind {kind} is not supported (this guest reads SHA-256, kind 1, and XXH64, kind 2)"));
    };
    if len < (HEADER_BYTES + trailer_len) as u64 {
        return Err(format!("truncated: {len} bytes is shorter than a model header"));
    }
    let sum = if kind == CHECKSUM_SHA256 { Sum::Sha256(Sha256::new()) } else { Sum::Xxh64(Xxh64::new(0)) };
    let mut body = Body { src, left: len - trailer_len as u64 - start.len() as u64, sum };
    body.sum.update(&start);
    let parsed = parse_body(&mut body, tree);
    if let Err(Fail::Io(e)) = parsed {
        return Err(cannot_read(e));
    }
    body.drain().map_err(cannot_read)?;
    let mut trailer = [0u8; 32];
    let trailer = &mut trailer[..trailer_len];
    body.src.read_exact(trailer).map_err(cannot_read)?;
    if !body.sum.matches(trailer) {
        return Err("checksum mismatch: the file is corrupt, truncated or was modified".into());
    }
    let model = match parsed {
        Ok(model) => model,
        Err(Fail::Io(_)) => unreachable!("returned above"),
        Err(Fail::Format(e)) => return Err(e),
    };
    Ok((model, checksum_name(kind, trailer)))
}

/// Everything after the first 20 bytes up to the trailer: the header's fields (returned, with no
/// trees), and each tree, handed to `sink` as it is read.
fn parse_body(r: &mut Body<impl Read>, sink: &mut dyn FnMut(&Model, u32, Vec<Node>)) -> Result<Model, Fail> {
    let features = r.u32()?;
    let trees = r.u32()?;
    let seed = r.u64()?;
    let max_depth = r.u32()?;
    let min_samples_split = r.u32()?;
    let min_samples_leaf = r.u32()?;
    let max_features = r.u32()?;
    let max_bins = r.u32()?;
    let train_rows = r.u32()?;
    let outputs = r.u32()?;
    if outputs != OUTPUTS {
        return Err(Fail::Format(format!("a regression model has 1 value per node, not {outputs}")));
    }
    let y_min = f64::from_bits(r.u64()?);
    let scale = f64::from_bits(r.u64()?);
    let labels = r.u32()?;
    if labels != 0 {
        return Err(Fail::Format(format!("a regression model has an empty label table, not {labels} bytes")));
    }
    let header = Model {
        features,
        seed,
        max_depth: (max_depth != NONE).then_some(max_depth),
        min_samples_split,
        min_samples_leaf,
        max_features,
        max_bins,
        train_rows,
        y_min,
        scale,
        trees: Vec::new(),
    };
    for t in 0..trees {
        let count = r.u32()?;
        if count == 0 {
            return Err(Fail::Format(format!("tree {t} has no nodes")));
        }
        if u64::from(count) > r.left / NODE_BYTES as u64 {
            return Err(Fail::Format(format!("truncated: tree {t} claims {count} nodes but the file ends first")));
        }
        let mut nodes: Vec<Node> = bytemuck::zeroed_vec(count as usize);
        r.read(bytemuck::cast_slice_mut(&mut nodes))?;
        // Reserved bits are the file's structure: reported while parsing, as they always were.
        if let Some((i, n)) = nodes.iter().enumerate().find(|(_, n)| n.flags != 0) {
            return Err(Fail::Format(format!("tree {t} node {i}: flags {:#x} set reserved bits", n.flags)));
        }
        sink(&header, t, nodes);
    }
    if r.left != 0 {
        return Err(Fail::Format(format!("{} unexpected bytes after the last tree", r.left)));
    }
    Ok(header)
}

/// Why the body could not be parsed: the source failed, or the bytes are not a model.
enum Fail {
    Io(io::Error),
    Format(String),
}

/// The running checksum of the bytes read or written so far.
enum Sum {
    Sha256(Sha256),
    Xxh64(Xxh64),
}

impl Sum {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Sum::Sha256(h) => h.update(bytes),
            Sum::Xxh64(h) => h.update(bytes),
        }
    }

    fn matches(&self, trailer: &[u8]) -> bool {
        match self {
            Sum::Sha256(h) => h.clone().finalize().as_slice() == trailer,
            Sum::Xxh64(h) => h.digest().to_le_bytes() == trailer,
        }
    }
}

/// A writer that hashes what it passes on.
struct Hashing<W> {
    inner: W,
    sum: Xxh64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The body of the file (`left` bytes remain before the trailer), hashed as it is read.
struct Body<R> {
    src: R,
    left: u64,
    sum: Sum,
}

impl<R: Read> Body<R> {
    /// Fills `out` from the body; running past the body's end is a truncated file.
    fn read(&mut self, out: &mut [u8]) -> Result<(), Fail> {
        if out.len() as u64 > self.left {
            return Err(Fail::Format("truncated: the file ends early".into()));
        }
        self.src.read_exact(out).map_err(Fail::Io)?;
        self.sum.update(out);
        self.left -= out.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, Fail> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, Fail> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Hashes whatever of the body the parser did not consume.
    fn drain(&mut self) -> io::Result<()> {
        let mut chunk = vec![0u8; (self.left.min(IO_BUFFER as u64)) as usize];
        while self.left > 0 {
            let n = self.left.min(chunk.len() as u64) as usize;
            self.src.read_exact(&mut chunk[..n])?;
            self.sum.update(&chunk[..n]);
            self.left -= n as u64;
        }
        Ok(())
    }
}
