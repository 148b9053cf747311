//! The model file, format version 2 (docs/algorithm.md §10): writing (atomically, via
//! `<path>.tmp` and a rename) and strict reading. The bytes are a pure function of the
//! trained forest, so both guests and every backend produce identical files.

// Node records are copied to and from the file as native bytes (src/model_io.rs).
#[cfg(target_endian = "big")]
compile_error!("the model file is little-endian, and nodes are copied to it as they lie in memory");

/// First 8 bytes of every model file.
pub const MAGIC: [u8; 8] = *b"WGPURF\0\x01";
/// The only format version this guest reads and writes.
pub const VERSION: u32 = 2;
/// Task field: regression (1 = classification is reserved).
pub(crate) const TASK_REGRESSION: u32 = 0;
/// Checksum field: SHA-256 of every preceding byte, 32 bytes at the end (read, not written).
pub(crate) const CHECKSUM_SHA256: u32 = 1;
/// Checksum field: XXH64 (seed 0) of every preceding byte, 8 bytes (little-endian) at the
/// end. What this guest writes: it verifies at memory speed (§10).
pub(crate) const CHECKSUM_XXH64: u32 = 2;
/// Values per node for regression.
pub(crate) const OUTPUTS: u32 = 1;
/// "No feature" (a leaf) and "unlimited depth".
pub const NONE: u32 = u32::MAX;
/// Largest fixed-point target (§5).
pub const TARGET_MAX: u32 = u32::MAX;
/// Largest node value: `TARGET_MAX` in 32.32 fixed point (§8).
pub const VALUE_MAX: u64 = (TARGET_MAX as u64) << 32;
/// Bytes before the label table: magic, 3 words, 2 words, seed, 7 words, y_min, scale.
pub(crate) const HEADER_BYTES: usize = 8 + 4 * 5 + 8 + 4 * 7 + 8 + 8;
/// Bytes per node (regression: one value).
pub(crate) const NODE_BYTES: usize = 24 + 8 * OUTPUTS as usize;
const _: () = assert!(std::mem::size_of::<Node>() == NODE_BYTES);
/// One node, laid out as the file's 32-byte record (§10; WebAssembly is little-endian, like
/// the file), so whole trees move between memory and the file unchanged. Leaves have
/// `feature == NONE`, threshold 0 and children 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Node {
    pub feature: u32,
    /// Rows with `x[feature] <= threshold` go to `left`.
    pub threshold: f32,
    pub left: u32,
    pub right: u32,
    /// Reserved for missing values (bit 0: they go left); 0 until they exist.
    pub flags: u32,
    /// Weighted count of the node's bootstrap rows.
    pub count: u32,
    /// Mean target of the node's bootstrap rows, 32.32 fixed point (§8).
    pub value: u64,
}

impl Node {
    /// A leaf with weighted count `count` and the given fixed-point value.
    pub fn leaf(count: u32, value: u64) -> Self {
        Node { feature: NONE, threshold: 0.0, left: 0, right: 0, flags: 0, count, value }
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
    /// Checks every invariant the writer guarantees, so a reader can trust the forest.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_header(self.trees.len())?;
        for (t, tree) in self.trees.iter().enumerate() {
            self.validate_tree(t, tree)?;
        }
        Ok(())
    }

    /// The header's part of [`Model::validate`], for a forest of `trees` trees.
    pub fn validate_header(&self, trees: usize) -> Result<(), String> {
        if self.features == 0 {
            return Err("the model has 0 features".into());
        }
        if trees == 0 {
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
        Ok(())
    }

    /// Tree `t`'s part of [`Model::validate`] (the header's fields are `self`'s).
    pub fn validate_tree(&self, t: usize, tree: &[Node]) -> Result<(), String> {
        {
            let count = tree.len() as u64;
            for (i, n) in tree.iter().enumerate() {
                let bad = |what: String| Err(format!("tree {t} node {i}: {what}"));
                if n.flags != 0 {
                    return bad(format!("flags {:#x} set reserved bits", n.flags));
                }
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
        let mut scratch = Vec::new();
        self.trees.iter().map(|tree| tree_depth(tree, &mut scratch)).max().unwrap_or(0)
    }
}

/// Longest root-to-leaf path of one tree, in edges; `depth` is scratch space. Children always
/// come after their parent, so one forward pass suffices.
pub fn tree_depth(tree: &[Node], depth: &mut Vec<u32>) -> u32 {
    depth.clear();
    depth.resize(tree.len(), 0);
    let mut deepest = 0;
    for (i, n) in tree.iter().enumerate() {
        if !n.is_leaf() {
            depth[n.left as usize] = depth[i] + 1;
            depth[n.right as usize] = depth[i] + 1;
        }
        deepest = deepest.max(depth[i]);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use xxhash_rust::xxh64::xxh64;

    use super::*;

    /// The checksum `load` reports for a file's bytes.
    fn checksum_of(bytes: &[u8]) -> String {
        Model::read_from(&mut &bytes[..], bytes.len() as u64).unwrap().1
    }

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
                    Node { feature: 1, threshold: 0.5, left: 1, right: 2, flags: 0, count: 10, value: 500 << 32 },
                    Node::leaf(4, 100 << 32),
                    Node { feature: 2, threshold: -1.25, left: 3, right: 4, flags: 0, count: 6, value: (900 << 32) | 7 },
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
