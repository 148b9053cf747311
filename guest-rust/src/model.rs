//! The model file, format version 2 (docs/algorithm.md §10): writing (atomically, via
//! `<path>.tmp` and a rename) and strict reading. The bytes are a pure function of the
//! trained forest, so both guests and every backend produce identical files.

use sha2::{Digest, Sha256};
use xxhash_rust::xxh64::xxh64;

use crate::error::Error;

/// First 8 bytes of every model file.
pub const MAGIC: [u8; 8] = *b"WGPURF\0\x01";
/// The only format version this guest reads and writes.
pub const VERSION: u32 = 2;
/// Task field: regression (1 = classification is reserved).
const TASK_REGRESSION: u32 = 0;
/// Checksum field: SHA-256 of every preceding byte, 32 bytes at the end (read, not written).
const CHECKSUM_SHA256: u32 = 1;
/// Checksum field: XXH64 (seed 0) of every preceding byte, 8 bytes (little-endian) at the
/// end. What this guest writes: it verifies at memory speed (§10).
const CHECKSUM_XXH64: u32 = 2;
/// Values per node for regression.
const OUTPUTS: u32 = 1;
/// "No feature" (a leaf) and "unlimited depth".
pub const NONE: u32 = u32::MAX;
/// Largest fixed-point target (§5).
pub const TARGET_MAX: u32 = u32::MAX;
/// Largest node value: `TARGET_MAX` in 32.32 fixed point (§8).
pub const VALUE_MAX: u64 = (TARGET_MAX as u64) << 32;
/// Bytes before the label table: magic, 3 words, 2 words, seed, 7 words, y_min, scale.
const HEADER_BYTES: usize = 8 + 4 * 5 + 8 + 4 * 7 + 8 + 8;
/// Bytes per node (regression: one value).
const NODE_BYTES: usize = 24 + 8 * OUTPUTS as usize;
/// Bytes of the trailing checksum, by kind.
fn checksum_bytes(kind: u32) -> Option<usize> {
    match kind {
        CHECKSUM_SHA256 => Some(32),
        CHECKSUM_XXH64 => Some(8),
        _ => None,
    }
}

/// One node. Leaves have `feature == NONE`, threshold 0 and children 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    pub feature: u32,
    /// Rows with `x[feature] <= threshold` go to `left`.
    pub threshold: f32,
    pub left: u32,
    pub right: u32,
    /// Weighted count of the node's bootstrap rows.
    pub count: u32,
    /// Mean target of the node's bootstrap rows, 32.32 fixed point (§8).
    pub value: u64,
}

impl Node {
    /// A leaf with weighted count `count` and the given fixed-point value.
    pub fn leaf(count: u32, value: u64) -> Self {
        Node { feature: NONE, threshold: 0.0, left: 0, right: 0, count, value }
    }

    /// True when the node has no children.
    pub fn is_leaf(&self) -> bool {
        self.feature == NONE
    }
}

/// A trained forest and the parameters that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub features: u32,
    pub seed: u64,
    /// `None` = unlimited.
    pub max_depth: Option<u32>,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    /// Resolved number of candidate features per node.
    pub max_features: u32,
    pub max_bins: u32,
    pub train_rows: u32,
    /// Offset and scale of the fixed-point targets (§5).
    pub y_min: f64,
    pub scale: f64,
    /// Nodes of each tree; node 0 is the root.
    pub trees: Vec<Vec<Node>>,
}

/// The 32.32 fixed-point mean `(S * 2^33 + n) / (2n)` of a node with weighted count `n`
/// and sum `s` (§8); below 2^64 whenever `s <= n * TARGET_MAX`.
pub fn node_value(n: u32, s: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let n = u128::from(n);
    (((u128::from(s) << 33) + n) / (2 * n)) as u64
}

impl Model {
    /// The file's bytes, checksum included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nodes: usize = self.trees.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(HEADER_BYTES + self.trees.len() * 4 + nodes * NODE_BYTES + 8);
        out.extend_from_slice(&MAGIC);
        for w in [VERSION, TASK_REGRESSION, CHECKSUM_XXH64, self.features, self.trees.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.seed.to_le_bytes());
        for w in [
            self.max_depth.unwrap_or(NONE),
            self.min_samples_split,
            self.min_samples_leaf,
            self.max_features,
            self.max_bins,
            self.train_rows,
            OUTPUTS,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.y_min.to_le_bytes());
        out.extend_from_slice(&self.scale.to_le_bytes());
        // Label table: empty for regression.
        out.extend_from_slice(&0u32.to_le_bytes());
        for tree in &self.trees {
            out.extend_from_slice(&(tree.len() as u32).to_le_bytes());
            for n in tree {
                // Flags (bit 0: missing values go left) are 0 until missing values exist.
                let mut node = [0u8; NODE_BYTES];
                for (at, w) in [n.feature, n.threshold.to_bits(), n.left, n.right, 0, n.count].into_iter().enumerate() {
                    node[at * 4..at * 4 + 4].copy_from_slice(&w.to_le_bytes());
                }
                node[24..].copy_from_slice(&n.value.to_le_bytes());
                out.extend_from_slice(&node);
            }
        }
        let sum = xxh64(&out, 0);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and validates a model file; the message says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err("not a model file (wrong magic; expected a model.bin written by a wasi:gpu guest)".into());
        }
        if bytes.len() < HEADER_BYTES + 8 {
            return Err(format!("truncated: {} bytes is shorter than a model header", bytes.len()));
        }
        let mut r = Reader { bytes, at: 8 };
        let version = r.u32()?;
        if version == 1 {
            return Err("model format version 1 was written by an older release; retrain the model with this one \
                        (training is deterministic: same data, parameters and seed give the same forest)"
                .into());
        }
        if version != VERSION {
            return Err(format!("model format version {version} is not supported (this guest reads version {VERSION})"));
        }
        let task = r.u32()?;
        if task != TASK_REGRESSION {
            return Err(format!("model task {task} is not supported (this guest reads regression models, task 0)"));
        }
        let checksum = r.u32()?;
        let Some(trailer) = checksum_bytes(checksum) else {
            return Err(format!("checksum kind {checksum} is not supported (this guest reads SHA-256, kind 1, and XXH64, kind 2)"));
        };
        if bytes.len() < HEADER_BYTES + trailer {
            return Err(format!("truncated: {} bytes is shorter than a model header", bytes.len()));
        }
        // The checksum first: a damaged file is reported as such, not by what its damage
        // looks like to the parser.
        let (body, sum) = bytes.split_at(bytes.len() - trailer);
        let intact = match checksum {
            CHECKSUM_SHA256 => Sha256::digest(body).as_slice() == sum,
            _ => xxh64(body, 0).to_le_bytes() == sum,
        };
        if !intact {
            return Err("checksum mismatch: the file is corrupt, truncated or was modified".into());
        }
        let mut r = Reader { bytes: body, at: r.at };
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
            return Err(format!("a regression model has 1 value per node, not {outputs}"));
        }
        let y_min = f64::from_bits(r.u64()?);
        let scale = f64::from_bits(r.u64()?);
        let labels = r.u32()?;
        if labels != 0 {
            return Err(format!("a regression model has an empty label table, not {labels} bytes"));
        }
        let mut forest = Vec::with_capacity((trees as usize).min(bytes.len() / 24));
        for t in 0..trees {
            let count = r.u32()? as usize;
            if count == 0 {
                return Err(format!("tree {t} has no nodes"));
            }
            if count > (body.len() - r.at) / NODE_BYTES {
                return Err(format!("truncated: tree {t} claims {count} nodes but the file ends first"));
            }
            let raw = &body[r.at..r.at + count * NODE_BYTES];
            r.at += count * NODE_BYTES;
            let word = |n: &[u8], at: usize| u32::from_le_bytes([n[at], n[at + 1], n[at + 2], n[at + 3]]);
            let mut nodes = Vec::with_capacity(count);
            for (i, n) in raw.chunks_exact(NODE_BYTES).enumerate() {
                let flags = word(n, 16);
                if flags != 0 {
                    return Err(format!("tree {t} node {i}: flags {flags:#x} set reserved bits"));
                }
                let value = u64::from(word(n, 24)) | u64::from(word(n, 28)) << 32;
                let threshold = f32::from_bits(word(n, 4));
                nodes.push(Node { feature: word(n, 0), threshold, left: word(n, 8), right: word(n, 12), count: word(n, 20), value });
            }
            forest.push(nodes);
        }
        if r.at != body.len() {
            return Err(format!("{} unexpected bytes after the last tree", body.len() - r.at));
        }
        let model = Model {
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
            trees: forest,
        };
        model.validate()?;
        Ok(model)
    }

    /// Checks every invariant the writer guarantees, so a reader can trust the forest.
    pub fn validate(&self) -> Result<(), String> {
        if self.features == 0 {
            return Err("the model has 0 features".into());
        }
        if self.trees.is_empty() {
            return Err("the model has no trees".into());
        }
        if !(2..=256).contains(&self.max_bins) {
            return Err(format!("max_bins {} is outside 2..=256", self.max_bins));
        }
        if !(1..=self.features).contains(&self.max_features) {
            return Err(format!("max_features {} is outside 1..={}", self.max_features, self.features));
        }
        if self.train_rows == 0 {
            return Err("the model was trained on 0 rows".into());
        }
        if !self.y_min.is_finite() || !self.scale.is_finite() || self.scale <= 0.0 {
            return Err(format!("y_min {} / scale {} are not a valid target mapping", self.y_min, self.scale));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            let count = tree.len() as u64;
            for (i, n) in tree.iter().enumerate() {
                let bad = |what: String| Err(format!("tree {t} node {i}: {what}"));
                if n.value > VALUE_MAX {
                    return bad(format!("value {:#x} exceeds {VALUE_MAX:#x}", n.value));
                }
                if n.is_leaf() {
                    if n.threshold.to_bits() != 0 || n.left != 0 || n.right != 0 {
                        return bad("a leaf must have threshold 0 and children 0".into());
                    }
                    continue;
                }
                if n.feature >= self.features {
                    return bad(format!("feature {} is not below the model's {} features", n.feature, self.features));
                }
                if n.threshold.is_nan() {
                    return bad("threshold is NaN".into());
                }
                for child in [n.left, n.right] {
                    if u64::from(child) >= count || child as usize <= i {
                        return bad(format!("child {child} is out of range or not after its parent ({count} nodes)"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Longest root-to-leaf path, in edges, over all trees.
    pub fn depth(&self) -> u32 {
        let mut deepest = 0;
        for tree in &self.trees {
            // Children always come after their parent, so one forward pass suffices.
            let mut depth = vec![0u32; tree.len()];
            for (i, n) in tree.iter().enumerate() {
                if !n.is_leaf() {
                    depth[n.left as usize] = depth[i] + 1;
                    depth[n.right as usize] = depth[i] + 1;
                }
                deepest = deepest.max(depth[i]);
            }
        }
        deepest
    }

    /// Writes the model to `<path>.tmp` and renames it over `path`; returns (bytes, the
    /// file's checksum as [`checksum_of`] names it).
    pub fn save(&self, path: &str) -> Result<(usize, String), Error> {
        let bytes = self.to_bytes();
        let tmp = format!("{path}.tmp");
        if let Err(e) = std::fs::write(&tmp, &bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::file(path, format!("cannot write {tmp}: {e}")));
        }
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::file(path, format!("cannot rename {tmp} to it: {e}")));
        }
        Ok((bytes.len(), checksum_of(&bytes)))
    }

    /// Reads and validates a model file; returns the model and its checksum ([`checksum_of`]).
    pub fn load(path: &str) -> Result<(Model, String), Error> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::file(path, "cannot open: no such file (train a model first, or check --model)"),
            _ => Error::file(path, format!("cannot read: {e}")),
        })?;
        let model = Model::from_bytes(&bytes).map_err(|e| Error::file(path, e))?;
        Ok((model, checksum_of(&bytes)))
    }
}

/// The checksum a valid model file carries in its last bytes, as reported in
/// `model_checksum`: `xxh64:` and the 16 hex digits of the u64 (kind 2), or `sha256:` and
/// 64 hex digits (kind 1, files of earlier releases).
pub fn checksum_of(file: &[u8]) -> String {
    let kind = file.get(16..20).map_or(0, |k| u32::from_le_bytes([k[0], k[1], k[2], k[3]]));
    match kind {
        CHECKSUM_SHA256 if file.len() >= 32 => {
            let hex: String = file[file.len() - 32..].iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
        _ if file.len() >= 8 => {
            let sum = u64::from_le_bytes(file[file.len() - 8..].try_into().expect("8 bytes"));
            format!("xxh64:{sum:016x}")
        }
        _ => String::new(),
    }
}

/// Little-endian cursor that reports truncation as an error.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.bytes.len()).ok_or("truncated: the file ends early")?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Model {
        Model {
            features: 3,
            seed: 42,
            max_depth: Some(16),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 3,
            max_bins: 256,
            train_rows: 10,
            y_min: 25.0,
            scale: f64::from(TARGET_MAX) / 321.0,
            trees: vec![
                vec![
                    Node { feature: 1, threshold: 0.5, left: 1, right: 2, count: 10, value: 500 << 32 },
                    Node::leaf(4, 100 << 32),
                    Node { feature: 2, threshold: -1.25, left: 3, right: 4, count: 6, value: (900 << 32) | 7 },
                    Node::leaf(3, 800 << 32),
                    Node::leaf(3, VALUE_MAX),
                ],
                vec![Node::leaf(10, 7)],
            ],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), HEADER_BYTES + 4 + 4 + 5 * 32 + 4 + 32 + 8);
        assert_eq!(&bytes[..8], &[0x57, 0x47, 0x50, 0x55, 0x52, 0x46, 0x00, 0x01]);
        assert_eq!(HEADER_BYTES, 80);
        assert_eq!(&bytes[8..20], &[2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        let body = bytes.len() - 8;
        assert_eq!(&bytes[body..], &xxh64(&bytes[..body], 0).to_le_bytes());
        assert_eq!(checksum_of(&bytes), format!("xxh64:{:016x}", xxh64(&bytes[..body], 0)));
        assert_eq!(&bytes[60..64], &[1, 0, 0, 0]);
        assert_eq!(&bytes[80..84], &[0; 4]);
        // First node: feature 1, threshold 0.5, children 1 and 2, flags 0, count 10, value.
        let node = &bytes[88..120];
        assert_eq!(&node[..4], &1u32.to_le_bytes());
        assert_eq!(&node[4..8], &0.5f32.to_bits().to_le_bytes());
        assert_eq!(&node[16..20], &[0; 4]);
        assert_eq!(&node[20..24], &10u32.to_le_bytes());
        assert_eq!(&node[24..32], &(500u64 << 32).to_le_bytes());
        assert_eq!(Model::from_bytes(&bytes).unwrap(), m);
        assert_eq!(m.depth(), 2);
        let unlimited = Model { max_depth: None, ..m };
        let b = unlimited.to_bytes();
        assert_eq!(&b[36..40], &[0xff; 4]);
        assert_eq!(Model::from_bytes(&b).unwrap().max_depth, None);
    }

    #[test]
    fn rejects_damage() {
        let bytes = sample().to_bytes();
        for len in [0, 7, 8, 50, 100, bytes.len() - 1] {
            let e = Model::from_bytes(&bytes[..len]).unwrap_err();
            assert!(e.contains("truncated") || e.contains("magic") || e.contains("checksum"), "{len}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Model::from_bytes(&longer).is_err());
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        assert!(Model::from_bytes(&flipped).unwrap_err().contains("checksum"));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(Model::from_bytes(&magic).unwrap_err().contains("magic"));
        assert!(Model::from_bytes(b"a,b,y\n1,2,3\n").unwrap_err().contains("magic"));
    }

    #[test]
    fn rejects_bad_structure_even_with_a_valid_checksum() {
        let mut m = sample();
        m.trees[0][0].left = 0;
        assert!(Model::from_bytes(&m.to_bytes()).unwrap_err().contains("child"));
        let mut m = sample();
        m.trees[0][2].right = 9;
        assert!(Model::from_bytes(&m.to_bytes()).unwrap_err().contains("child"));
        let mut m = sample();
        m.trees[0][0].feature = 3;
        assert!(Model::from_bytes(&m.to_bytes()).unwrap_err().contains("feature"));
        let mut m = sample();
        m.trees[1].clear();
        assert!(Model::from_bytes(&m.to_bytes()).unwrap_err().contains("no nodes"));
        let resealed = |at: usize, byte: u8| {
            let mut bytes = sample().to_bytes();
            bytes[at] = byte;
            let body = bytes.len() - 8;
            let sum = xxh64(&bytes[..body], 0);
            bytes[body..].copy_from_slice(&sum.to_le_bytes());
            Model::from_bytes(&bytes).unwrap_err()
        };
        assert!(resealed(8, 3).contains("version 3"));
        assert!(resealed(8, 1).contains("retrain"));
        assert!(resealed(12, 1).contains("task"));
        assert!(resealed(16, 3).contains("checksum kind"));
        assert!(resealed(60, 2).contains("1 value per node"));
        assert!(resealed(80, 1).contains("label table"));
        assert!(resealed(88 + 16, 2).contains("reserved"));
        let mut m = sample();
        m.trees[1][0].value = VALUE_MAX + 1;
        assert!(Model::from_bytes(&m.to_bytes()).unwrap_err().contains("exceeds"));
    }

    /// Files of earlier releases (checksum kind 1, SHA-256) still load.
    #[test]
    fn reads_sha256_files() {
        let bytes = sample().to_bytes();
        let mut old = bytes[..bytes.len() - 8].to_vec();
        old[16] = 1;
        let sha = Sha256::digest(&old);
        old.extend_from_slice(&sha);
        assert_eq!(Model::from_bytes(&old).unwrap(), sample());
        assert_eq!(checksum_of(&old), format!("sha256:{}", sha.iter().map(|b| format!("{b:02x}")).collect::<String>()));
        let mut flipped = old.clone();
        flipped[100] ^= 1;
        assert!(Model::from_bytes(&flipped).unwrap_err().contains("checksum"));
    }

    #[test]
    fn node_values_round_half_up() {
        assert_eq!(node_value(2, 3), 3 << 31); // 1.5 exactly
        assert_eq!(node_value(3, 4), 0x1_5555_5555); // 1.333.. rounded to 32 fraction bits
        assert_eq!(node_value(3, 5), 0x1_AAAA_AAAB); // 1.666.. rounded half up
        assert_eq!(node_value(0, 0), 0);
        assert_eq!(node_value(u32::MAX, u64::from(u32::MAX) * u64::from(TARGET_MAX)), VALUE_MAX);
    }

    #[test]
    fn save_is_atomic_and_keeps_old_file_on_failure() {
        let dir = std::env::temp_dir().join(format!("guest-rust-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.bin");
        let path = path.to_str().unwrap();
        let (len, sha) = sample().save(path).unwrap();
        assert!(!std::path::Path::new(&format!("{path}.tmp")).exists());
        let (back, sha2) = Model::load(path).unwrap();
        assert_eq!((back, sha2.clone()), (sample(), sha.clone()));
        assert_eq!(std::fs::metadata(path).unwrap().len() as usize, len);
        assert!(sha.starts_with("xxh64:") && sha.len() == 6 + 16, "{sha}");
        let bad = dir.join("missing-dir").join("m.bin");
        assert!(sample().save(bad.to_str().unwrap()).is_err());
    }
}
