//! Partial forests and merging (docs/algorithm.md §11): `train --trees-from A --trees-to B`
//! writes trees `A..B` of a forest as a partial forest; `merge` joins partial forests that
//! cover `0..T` exactly into the model `train` would have written in one piece, byte for byte.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use xxhash_rust::xxh64::{Xxh64, xxh64};

use crate::error::Error;
use crate::model::Model;
use crate::model_io::{read_pieces, write_atomically};

/// First 8 bytes of a partial forest.
pub const PARTIAL_MAGIC: [u8; 8] = *b"WGPUPF\0\x01";
/// The partial format version written and read.
const PARTIAL_VERSION: u32 = 1;
/// Header bytes before the header's own XXH64.
const HEADER_BYTES: usize = 40;

/// Trees `from..to` of a forest of `total` trees, trained on a file with the given fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub from: u32,
    pub to: u32,
    pub total: u32,
    /// XXH64 (seed 0) of the training file's bytes, and their count.
    pub data_xxh64: u64,
    pub data_bytes: u64,
    /// The trees `from..to` and the forest's header fields.
    pub model: Model,
}

/// XXH64 (seed 0) and size of a file: the data fingerprint of a partial forest.
pub fn data_fingerprint(path: &str) -> Result<(u64, u64), Error> {
    let mut sum = Xxh64::new(0);
    let bytes = read_pieces(path, |piece| sum.update(piece))?;
    Ok((sum.digest(), bytes))
}

impl Partial {
    fn header(&self) -> [u8; HEADER_BYTES + 8] {
        let mut h = [0u8; HEADER_BYTES + 8];
        h[..8].copy_from_slice(&PARTIAL_MAGIC);
        for (i, w) in [PARTIAL_VERSION, self.from, self.to, self.total].into_iter().enumerate() {
            h[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        h[24..32].copy_from_slice(&self.data_xxh64.to_le_bytes());
        h[32..40].copy_from_slice(&self.data_bytes.to_le_bytes());
        let sum = xxh64(&h[..HEADER_BYTES], 0);
        h[40..48].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// Writes the partial forest to `<path>.tmp` and renames it over `path`; returns its size
    /// and the embedded model's checksum.
    pub fn save(&self, path: &str) -> Result<(usize, String), Error> {
        let sum = write_atomically(path, |w| {
            w.write_all(&self.header())?;
            self.model.write_to(w)
        })?;
        Ok((HEADER_BYTES + 8 + self.model.file_len(), format!("xxh64:{sum:016x}")))
    }

    /// Reads and checks a partial forest.
    pub fn load(path: &str) -> Result<Partial, Error> {
        let bad = |what: String| Error::file(path, what);
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => bad("cannot open: no such file".into()),
            _ => bad(format!("cannot read: {e}")),
        })?;
        let len = file.metadata().map_err(|e| bad(format!("cannot read: {e}")))?.len();
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut h = [0u8; HEADER_BYTES + 8];
        if len < h.len() as u64 {
            return Err(bad(format!("not a partial forest: {len} bytes is shorter than its header")));
        }
        r.read_exact(&mut h).map_err(|e| bad(format!("cannot read: {e}")))?;
        if h[..8] != PARTIAL_MAGIC {
            return Err(bad("not a partial forest (wrong magic; `train --trees-from A --trees-to B` writes them)".into()));
        }
        let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
        let long = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
        if long(40) != xxh64(&h[..HEADER_BYTES], 0) {
            return Err(bad("checksum mismatch in the partial forest's header: the file is corrupt or was modified".into()));
        }
        if word(8) != PARTIAL_VERSION {
            return Err(bad(format!("partial forest version {} is not supported (this guest reads version 1)", word(8))));
        }
        let (from, to, total) = (word(12), word(16), word(20));
        let (model, _) = Model::read_from(&mut r, len - h.len() as u64).map_err(|e| bad(format!("the forest inside: {e}")))?;
        if from >= to || to > total || model.trees.len() as u64 != u64::from(to - from) {
            return Err(bad(format!("trees {from}..{to} of {total} do not match the {} trees inside", model.trees.len())));
        }
        Ok(Partial { from, to, total, data_xxh64: long(24), data_bytes: long(32), model })
    }
}

/// Joins partial forests into the whole forest (§11), or says which files do not fit.
pub fn merge(mut parts: Vec<(String, Partial)>) -> Result<Model, Error> {
    if parts.is_empty() {
        return Err(Error::file("merge", "no partial forests given"));
    }
    // Every header field but `trees`, the target mapping by its bits.
    let header = |m: &Model| {
        let fields = (m.features, m.seed, m.max_depth, m.min_samples_split, m.min_samples_leaf, m.max_features, m.max_bins);
        (fields, m.train_rows, m.y_min.to_bits(), m.scale.to_bits())
    };
    let (first_path, first) = &parts[0];
    for (path, p) in &parts[1..] {
        let differs = |what: &str| Error::file(path, format!("{what} differs from {first_path}'s: these shards are not of one forest"));
        if (p.data_xxh64, p.data_bytes) != (first.data_xxh64, first.data_bytes) {
            return Err(differs("the training data (its XXH64 and size)"));
        }
        if p.total != first.total {
            return Err(differs(&format!("the forest's tree count ({} against {})", p.total, first.total)));
        }
        if header(&p.model) != header(&first.model) {
            return Err(differs("a parameter or the target mapping"));
        }
    }
    let total = first.total;
    parts.sort_by_key(|(_, p)| p.from);
    let mut next = 0u32;
    for (path, p) in &parts {
        if p.from > next {
            return Err(Error::file(path, format!("starts at tree {} but trees {next}..{} are missing", p.from, p.from)));
        }
        if p.from < next {
            return Err(Error::file(path, format!("trees {}..{} overlap trees given by another shard", p.from, p.to.min(next))));
        }
        next = p.to;
    }
    if next != total {
        return Err(Error::file(&parts[parts.len() - 1].0, format!("ends at tree {next} but the forest has {total} trees")));
    }
    let mut shards = parts.into_iter().map(|(_, p)| p.model);
    let mut model = shards.next().expect("at least one shard");
    for shard in shards {
        model.trees.extend(shard.trees);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;

    fn forest(trees: u32) -> Model {
        Model {
            features: 2,
            seed: 7,
            max_depth: Some(4),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 2,
            max_bins: 256,
            train_rows: 10,
            y_min: -1.5,
            scale: 3.0,
            trees: (0..trees).map(|t| vec![Node::leaf(10, u64::from(t) << 32)]).collect(),
        }
    }

    fn part(from: u32, to: u32, total: u32) -> (String, Partial) {
        let mut model = forest(total);
        model.trees = model.trees[from as usize..to as usize].to_vec();
        (format!("p{from}.bin"), Partial { from, to, total, data_xxh64: 99, data_bytes: 1000, model })
    }

    #[test]
    fn merging_shards_gives_the_whole_forest_in_any_order() {
        let whole = forest(7);
        assert_eq!(merge(vec![part(3, 7, 7), part(0, 1, 7), part(1, 3, 7)]).unwrap(), whole);
        assert_eq!(merge(vec![part(0, 7, 7)]).unwrap(), whole);
    }

    #[test]
    fn merging_refuses_gaps_overlaps_and_other_forests() {
        let err = |parts: Vec<(String, Partial)>| merge(parts).unwrap_err().to_string();
        assert!(err(vec![part(0, 3, 7), part(4, 7, 7)]).contains("p4.bin: starts at tree 4 but trees 3..4 are missing"));
        assert!(err(vec![part(0, 4, 7), part(3, 7, 7)]).contains("p3.bin: trees 3..4 overlap"));
        assert!(err(vec![part(0, 3, 7)]).contains("ends at tree 3 but the forest has 7 trees"));
        assert!(err(vec![part(1, 7, 7)]).contains("trees 0..1 are missing"));
        let (path, mut other) = part(3, 7, 7);
        other.data_xxh64 = 98;
        assert!(err(vec![part(0, 3, 7), (path.clone(), other)]).contains("the training data"));
        let (_, mut other) = part(3, 7, 7);
        other.model.seed = 8;
        assert!(err(vec![part(0, 3, 7), (path.clone(), other)]).contains("a parameter"));
        let (_, mut other) = part(3, 7, 7);
        other.model.y_min = -1.25;
        assert!(err(vec![part(0, 3, 7), (path.clone(), other)]).contains("target mapping"));
        let (_, mut other) = part(3, 8, 8);
        other.model.trees.pop();
        assert!(err(vec![part(0, 3, 7), (path, other)]).contains("tree count"));
        assert!(err(vec![]).contains("no partial forests"));
    }

    #[test]
    fn partial_files_round_trip_and_refuse_damage() {
        let dir = std::env::temp_dir().join(format!("guest-rust-shard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.bin");
        let path = path.to_str().unwrap();
        let (_, p) = part(2, 5, 7);
        let (len, _) = p.save(path).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len() as usize, len);
        assert_eq!(Partial::load(path).unwrap(), p);
        let bytes = std::fs::read(path).unwrap();
        let mut flipped = bytes.clone();
        flipped[13] ^= 1; // tree_from
        std::fs::write(path, &flipped).unwrap();
        assert!(Partial::load(path).unwrap_err().to_string().contains("header"));
        let mut flipped = bytes.clone();
        flipped[48 + 150] ^= 1; // a node of the embedded model
        std::fs::write(path, &flipped).unwrap();
        assert!(Partial::load(path).unwrap_err().to_string().contains("checksum mismatch"));
        std::fs::write(path, &bytes[48..]).unwrap();
        assert!(Partial::load(path).unwrap_err().to_string().contains("not a partial forest"));
        // A partial forest is not a model.
        std::fs::write(path, &bytes).unwrap();
        assert!(Model::load(path).unwrap_err().to_string().contains("merge it"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
