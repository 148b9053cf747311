//! Reading `model.bin` (docs/algorithm.md §10) so that a parity mismatch can name the first
//! differing header field, tree and node instead of only "the hashes differ".

use std::fmt;

/// `NONE` in the model file: a leaf's feature.
pub const NONE: u32 = 0xffff_ffff;

const MAGIC: [u8; 8] = *b"WGPURF\x00\x01";
const VERSION: u32 = 2;
/// Fixed header plus the label-table length (0 for regression).
const HEADER_BYTES: usize = 8 + 4 * 5 + 8 + 4 * 7 + 8 + 8 + 4;
/// feature, threshold, left, right, flags, count, then one u64 value (regression).
const NODE_BYTES: usize = 32;
const SHA256_BYTES: usize = 32;
const XXH64_BYTES: usize = 8;

/// One node as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    /// Split feature, or [`NONE`] for a leaf.
    pub feature: u32,
    /// Split threshold (`x <= threshold` goes left); 0 for leaves.
    pub threshold: f32,
    /// Left child index within the tree.
    pub left: u32,
    /// Right child index within the tree.
    pub right: u32,
    /// Flags (bit 0: missing values go left).
    pub flags: u32,
    /// Weighted count of the node's bootstrap rows.
    pub count: u32,
    /// Node value, 32.32 fixed point (docs/algorithm.md §8).
    pub value: u64,
}

impl Node {
    /// Equality on the stored bits (so `-0.0 != 0.0` and NaN payloads count).
    fn same_bits(&self, other: &Node) -> bool {
        self.feature == other.feature
            && self.threshold.to_bits() == other.threshold.to_bits()
            && self.left == other.left
            && self.right == other.right
            && self.flags == other.flags
            && self.count == other.count
            && self.value == other.value
    }
}

/// A parsed model file.
#[derive(Clone, Debug)]
pub struct Model {
    /// Header fields in file order, with their names, for field-by-field comparison.
    pub header: Vec<(&'static str, HeaderValue)>,
    /// `y_min` (needed to turn node values back into target units).
    pub y_min: f64,
    /// `scale` (fixed-point scale of the targets).
    pub scale: f64,
    /// Nodes of every tree, root first.
    pub trees: Vec<Vec<Node>>,
}

/// A header field's value, kept with its type so it prints naturally.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeaderValue {
    /// A `u32` field.
    U32(u32),
    /// A `u64` field.
    U64(u64),
    /// An `f64` field (compared by bits).
    F64(f64),
}

impl HeaderValue {
    fn same_bits(&self, other: &HeaderValue) -> bool {
        match (self, other) {
            (HeaderValue::F64(a), HeaderValue::F64(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValue::U32(NONE) => write!(f, "0xffffffff"),
            HeaderValue::U32(v) => write!(f, "{v}"),
            HeaderValue::U64(v) => write!(f, "{v}"),
            HeaderValue::F64(v) => write!(f, "{v:?}"),
        }
    }
}

/// Why a model file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        let end = self
            .pos
            .checked_add(N)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| ModelError(format!("truncated at byte {} while reading {what}", self.pos)))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(out)
    }
    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        self.take::<4>(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        self.take::<8>(what).map(u64::from_le_bytes)
    }
    fn f64(&mut self, what: &str) -> Result<f64, ModelError> {
        self.take::<8>(what).map(f64::from_le_bytes)
    }
}

impl Model {
    /// Parses and validates a model file (magic, version, checksum, sizes, child indices).
    pub fn parse(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() < HEADER_BYTES + XXH64_BYTES {
            return Err(ModelError(format!(
                "{} bytes is shorter than the smallest model ({} bytes)",
                bytes.len(),
                HEADER_BYTES + XXH64_BYTES
            )));
        }
        // The checksum (docs/algorithm.md §10): kind 2, XXH64, is what the guests write;
        // kind 1, SHA-256, is read for files of earlier releases.
        let body_len = match crate::model_file::model_checksum(bytes) {
            Ok(sum) if sum.starts_with("xxh64:") => bytes.len() - XXH64_BYTES,
            Ok(_) => bytes.len() - SHA256_BYTES,
            Err(e) => return Err(ModelError(format!("checksum: {e}"))),
        };
        let mut r = Reader { bytes: &bytes[..body_len], pos: 0 };
        if r.take::<8>("magic")? != MAGIC {
            return Err(ModelError("wrong magic (not a WGPURF model)".into()));
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(ModelError(format!("format version {version}, expected {VERSION}")));
        }
        let task = r.u32("task")?;
        let checksum = r.u32("checksum kind")?;
        if task != 0 || !(checksum == 1 || checksum == 2) {
            return Err(ModelError(format!("task {task} / checksum kind {checksum}, expected regression (0) / SHA-256 (1) or XXH64 (2)")));
        }
        let features = r.u32("features")?;
        let trees = r.u32("trees")?;
        let seed = r.u64("seed")?;
        let max_depth = r.u32("max_depth")?;
        let min_samples_split = r.u32("min_samples_split")?;
        let min_samples_leaf = r.u32("min_samples_leaf")?;
        let max_features = r.u32("max_features")?;
        let max_bins = r.u32("max_bins")?;
        let train_rows = r.u32("train rows")?;
        let outputs = r.u32("outputs")?;
        let y_min = r.f64("y_min")?;
        let scale = r.f64("scale")?;
        let labels = r.u32("label table length")?;
        if (outputs, labels) != (1, 0) {
            return Err(ModelError(format!("{outputs} outputs and a {labels}-byte label table; regression has 1 and 0")));
        }
        let header = vec![
            ("version", HeaderValue::U32(version)),
            ("task", HeaderValue::U32(task)),
            ("checksum", HeaderValue::U32(checksum)),
            ("features", HeaderValue::U32(features)),
            ("trees", HeaderValue::U32(trees)),
            ("seed", HeaderValue::U64(seed)),
            ("max_depth", HeaderValue::U32(max_depth)),
            ("min_samples_split", HeaderValue::U32(min_samples_split)),
            ("min_samples_leaf", HeaderValue::U32(min_samples_leaf)),
            ("max_features", HeaderValue::U32(max_features)),
            ("max_bins", HeaderValue::U32(max_bins)),
            ("train_rows", HeaderValue::U32(train_rows)),
            ("outputs", HeaderValue::U32(outputs)),
            ("y_min", HeaderValue::F64(y_min)),
            ("scale", HeaderValue::F64(scale)),
        ];
        // Each tree needs at least its count and one node; bound the allocation by the file.
        let max_trees = (body_len - r.pos) / (4 + NODE_BYTES);
        if trees as usize > max_trees {
            return Err(ModelError(format!("header says {trees} trees but the file has room for at most {max_trees}")));
        }
        let mut out = Vec::with_capacity(trees as usize);
        for t in 0..trees {
            let count = r.u32(&format!("tree {t} node count"))? as usize;
            let room = (body_len - r.pos) / NODE_BYTES;
            if count == 0 || count > room {
                return Err(ModelError(format!("tree {t}: node count {count} (room for {room})")));
            }
            let mut nodes = Vec::with_capacity(count);
            for k in 0..count {
                let what = format!("tree {t} node {k}");
                let node = Node {
                    feature: r.u32(&what)?,
                    threshold: f32::from_bits(r.u32(&what)?),
                    left: r.u32(&what)?,
                    right: r.u32(&what)?,
                    flags: r.u32(&what)?,
                    count: r.u32(&what)?,
                    value: r.u64(&what)?,
                };
                if node.flags != 0 {
                    return Err(ModelError(format!("{what}: flags {:#x} set reserved bits", node.flags)));
                }
                if node.feature != NONE {
                    if node.feature >= features {
                        return Err(ModelError(format!("{what}: feature {} >= {features}", node.feature)));
                    }
                    let k = k as u32;
                    if node.left <= k || node.right <= k || node.left as usize >= count || node.right as usize >= count {
                        return Err(ModelError(format!(
                            "{what}: children {} and {} out of range (must be after {k}, below {count})",
                            node.left, node.right
                        )));
                    }
                }
                nodes.push(node);
            }
            out.push(nodes);
        }
        if r.pos != body_len {
            return Err(ModelError(format!("{} trailing bytes after the last tree", body_len - r.pos)));
        }
        Ok(Model { header, y_min, scale, trees: out })
    }

    /// Total node count over all trees.
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(Vec::len).sum()
    }

    /// Total leaf count over all trees.
    pub fn leaf_count(&self) -> usize {
        self.trees.iter().flatten().filter(|n| n.feature == NONE).count()
    }

    /// Deepest leaf over all trees (root = depth 0).
    pub fn max_leaf_depth(&self) -> usize {
        let mut deepest = 0;
        for nodes in &self.trees {
            let mut depth = vec![0usize; nodes.len()];
            for (k, n) in nodes.iter().enumerate() {
                if n.feature == NONE {
                    deepest = deepest.max(depth[k]);
                } else {
                    // parse() guarantees children come after their parent and are in range.
                    depth[n.left as usize] = depth[k] + 1;
                    depth[n.right as usize] = depth[k] + 1;
                }
            }
        }
        deepest
    }

    /// A node's value in target units (`y_min + (value / 2^32) / scale`).
    pub fn value_in_target_units(&self, value: u64) -> f64 {
        self.y_min + (value as f64 / 4_294_967_296.0) / self.scale
    }

    fn describe(&self, node: &Node) -> String {
        if node.feature == NONE {
            format!("leaf count {} value {:#x} (= {:.6})", node.count, node.value, self.value_in_target_units(node.value))
        } else {
            format!(
                "split feature {} threshold {:?} (bits 0x{:08x}) children {}/{} count {} value {:#x}",
                node.feature,
                node.threshold,
                node.threshold.to_bits(),
                node.left,
                node.right,
                node.count,
                node.value
            )
        }
    }
}

/// The first place where two models differ, in words; `None` when they are identical.
/// `a_name` and `b_name` label the two sides (e.g. `rust/cpu`).
pub fn first_difference(a: &Model, a_name: &str, b: &Model, b_name: &str) -> Option<String> {
    for ((field, va), (_, vb)) in a.header.iter().zip(&b.header) {
        if !va.same_bits(vb) {
            return Some(format!("header field {field}: {a_name} {va}, {b_name} {vb}"));
        }
    }
    for (t, (ta, tb)) in a.trees.iter().zip(&b.trees).enumerate() {
        for (k, (na, nb)) in ta.iter().zip(tb).enumerate() {
            if !na.same_bits(nb) {
                return Some(format!("tree {t} node {k}: {a_name} {}; {b_name} {}", a.describe(na), b.describe(nb)));
            }
        }
        if ta.len() != tb.len() {
            return Some(format!(
                "tree {t}: {a_name} has {} nodes, {b_name} has {} (the first {} agree)",
                ta.len(),
                tb.len(),
                ta.len().min(tb.len())
            ));
        }
    }
    if a.trees.len() != b.trees.len() {
        return Some(format!("{a_name} has {} trees, {b_name} has {}", a.trees.len(), b.trees.len()));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid model file with the given trees (3 features, fixed header).
    pub(crate) fn build(trees: &[Vec<Node>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC);
        for v in [VERSION, 0, 2, 3, trees.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&42u64.to_le_bytes());
        for v in [16u32, 2, 1, 3, 256, 10, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&1.5f64.to_le_bytes());
        b.extend_from_slice(&2.0f64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for t in trees {
            b.extend_from_slice(&(t.len() as u32).to_le_bytes());
            for n in t {
                for v in [n.feature, n.threshold.to_bits(), n.left, n.right, n.flags, n.count] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                b.extend_from_slice(&n.value.to_le_bytes());
            }
        }
        let sum = xxhash_rust::xxh64::xxh64(&b, 0);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    pub(crate) fn leaf(value: u64) -> Node {
        Node { feature: NONE, threshold: 0.0, left: 0, right: 0, flags: 0, count: 1, value: value << 32 }
    }

    pub(crate) fn split(feature: u32, threshold: f32) -> Node {
        Node { feature, threshold, left: 1, right: 2, flags: 0, count: 2, value: 5 << 32 }
    }

    #[test]
    fn parses_and_names_the_first_differing_node() {
        let a = Model::parse(&build(&[vec![leaf(4)], vec![split(1, 0.5), leaf(2), leaf(8)]])).unwrap();
        let b = Model::parse(&build(&[vec![leaf(4)], vec![split(1, 0.25), leaf(2), leaf(8)]])).unwrap();
        assert_eq!(a.node_count(), 4);
        assert_eq!(a.leaf_count(), 3);
        assert_eq!(a.max_leaf_depth(), 1);
        assert_eq!(a.value_in_target_units(4 << 32), 3.5);
        assert_eq!(a.value_in_target_units(1 << 31), 1.75);
        assert!(first_difference(&a, "a", &a, "b").is_none());
        let diff = first_difference(&a, "a", &b, "b").unwrap();
        assert!(diff.starts_with("tree 1 node 0: a split feature 1 threshold 0.5"), "{diff}");
        assert!(diff.contains("b split feature 1 threshold 0.25"), "{diff}");
        let c = Model::parse(&build(&[vec![leaf(4)]])).unwrap();
        assert_eq!(first_difference(&a, "a", &c, "c").unwrap(), "header field trees: a 2, c 1");
    }

    #[test]
    fn rejects_corruption() {
        let mut bytes = build(&[vec![split(1, 0.5), leaf(2), leaf(8)]]);
        assert!(Model::parse(&bytes[..bytes.len() - 1]).is_err());
        bytes[60] ^= 1;
        assert!(Model::parse(&bytes).unwrap_err().0.contains("checksum"));
        let bad_child = build(&[vec![Node { left: 0, ..split(1, 0.5) }, leaf(2), leaf(8)]]);
        assert!(Model::parse(&bad_child).unwrap_err().0.contains("out of range"));
        let bad_feature = build(&[vec![split(3, 0.5), leaf(2), leaf(8)]]);
        assert!(Model::parse(&bad_feature).unwrap_err().0.contains("feature 3"));
    }
}
