//! Training receipts (docs/guests.md, "Receipts"): `train --receipt FILE` records what a
//! model was made from (the training file's SHA-256, every parameter, guest, host, component
//! and device) and the model's hashes; `verify --receipt FILE` trains again from the receipt,
//! on whatever backend this run has, and says whether the same model comes out. Training is a
//! pure function of (data, parameters, seed) on every backend and in both guests, so a match
//! proves the model is the one the receipt claims.
//!
//! The file is a flat JSON object, one key per line, in the fixed order of [`Receipt::to_json`];
//! both guests write and read the same bytes.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::gpu::DeviceInfo;
use crate::model::Model;
use crate::model_io::{read_pieces, write_atomically};
use crate::trainer::{MaxFeatures, TrainParams};

/// The receipt format this guest writes and reads.
pub const RECEIPT_VERSION: u64 = 1;

/// Everything a receipt records.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub guest: String,
    pub guest_version: String,
    /// SHA-256 of the guest component, as the host reported it (`WASI_GPU_COMPONENT_SHA256`).
    pub component_sha256: Option<String>,
    /// The host's name and version (`WASI_GPU_HOST`).
    pub host: Option<String>,
    pub backend: String,
    pub device: String,
    pub train: String,
    pub train_bytes: u64,
    pub train_sha256: String,
    pub train_rows: u64,
    pub features: u64,
    pub trees: u32,
    pub max_depth: Option<u32>,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    /// Resolved: features considered per node.
    pub max_features: u32,
    pub bins: u32,
    pub seed: u64,
    pub model: String,
    pub model_bytes: u64,
    pub model_checksum: String,
    pub model_sha256: String,
}

/// The model file's size, its checksum as `model_checksum` names it, and the SHA-256 of all
/// its bytes: computed from the forest (the bytes `save` writes), nothing is read back.
pub fn model_digests(model: &Model) -> (u64, String, String) {
    let mut sha = Sha256::new();
    let sum = model.write_to(&mut sha).expect("hashing cannot fail");
    (model.file_len() as u64, format!("xxh64:{sum:016x}"), hex(&sha.finalize()))
}

/// The size and SHA-256 of a file.
pub fn file_sha256(path: &str) -> Result<(u64, String), Error> {
    let mut sha = Sha256::new();
    let bytes = read_pieces(path, |piece| sha.update(piece))?;
    Ok((bytes, hex(&sha.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Receipt {
    /// The receipt of `model`, trained on `train` and saved to `model_path`, on `device`.
    pub fn new(model: &Model, train: &str, model_path: &str, device: &DeviceInfo) -> Result<Receipt, Error> {
        let (train_bytes, train_sha256) = file_sha256(train)?;
        let (model_bytes, model_checksum, model_sha256) = model_digests(model);
        Ok(Receipt {
            guest: "rust".into(),
            guest_version: env!("CARGO_PKG_VERSION").into(),
            component_sha256: std::env::var("WASI_GPU_COMPONENT_SHA256").ok(),
            host: std::env::var("WASI_GPU_HOST").ok(),
            backend: device.backend.to_string(),
            device: device.name.clone(),
            train: train.into(),
            train_bytes,
            train_sha256,
            train_rows: u64::from(model.train_rows),
            features: u64::from(model.features),
            trees: model.trees.len() as u32,
            max_depth: model.max_depth,
            min_samples_split: model.min_samples_split,
            min_samples_leaf: model.min_samples_leaf,
            max_features: model.max_features,
            bins: model.max_bins,
            seed: model.seed,
            model: model_path.into(),
            model_bytes,
            model_checksum,
            model_sha256,
        })
    }

    /// The training parameters that reproduce the receipt's model.
    pub fn params(&self, progress: bool) -> TrainParams {
        TrainParams {
            trees: self.trees,
            max_depth: self.max_depth,
            min_samples_split: self.min_samples_split,
            min_samples_leaf: self.min_samples_leaf,
            max_features: MaxFeatures::Count(self.max_features),
            bins: self.bins,
            seed: self.seed,
            progress,
            shard: None,
        }
    }

    /// The file's text: a JSON object, one key per line.
    pub fn to_json(&self) -> String {
        let s = |v: &str| json_str(v);
        let o = |v: &Option<String>| v.as_deref().map_or("null".into(), json_str);
        let fields: [(&str, String); 23] = [
            ("receipt", RECEIPT_VERSION.to_string()),
            ("guest", s(&self.guest)),
            ("guest_version", s(&self.guest_version)),
            ("component_sha256", o(&self.component_sha256)),
            ("host", o(&self.host)),
            ("backend", s(&self.backend)),
            ("device", s(&self.device)),
            ("train", s(&self.train)),
            ("train_bytes", self.train_bytes.to_string()),
            ("train_sha256", s(&self.train_sha256)),
            ("train_rows", self.train_rows.to_string()),
            ("features", self.features.to_string()),
            ("trees", self.trees.to_string()),
            ("max_depth", self.max_depth.map_or("null".into(), |d| d.to_string())),
            ("min_samples_split", self.min_samples_split.to_string()),
            ("min_samples_leaf", self.min_samples_leaf.to_string()),
            ("max_features", self.max_features.to_string()),
            ("bins", self.bins.to_string()),
            ("seed", self.seed.to_string()),
            ("model", s(&self.model)),
            ("model_bytes", self.model_bytes.to_string()),
            ("model_checksum", s(&self.model_checksum)),
            ("model_sha256", s(&self.model_sha256)),
        ];
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("  \"{k}\": {v}")).collect();
        format!("{{\n{}\n}}\n", body.join(",\n"))
    }

    /// Writes the receipt to `<path>.tmp` and renames it over `path`.
    pub fn save(&self, path: &str) -> Result<(), Error> {
        write_atomically(path, |w| w.write_all(self.to_json().as_bytes()))
    }

    /// Reads a receipt file.
    pub fn load(path: &str) -> Result<Receipt, Error> {
        let text = std::fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::file(path, "cannot open: no such file"),
            _ => Error::file(path, format!("cannot read: {e}")),
        })?;
        let text = String::from_utf8(text).map_err(|_| Error::file(path, "not a receipt: the file is not UTF-8 text"))?;
        Receipt::parse(&text).map_err(|e| Error::file(path, e))
    }

    /// Parses a receipt's text; unknown keys are ignored, a missing or mistyped one is named.
    pub fn parse(text: &str) -> Result<Receipt, String> {
        let fields = parse_flat_object(text).map_err(|e| format!("not a receipt: {e}"))?;
        let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let text = |key: &str| match get(key) {
            Some(Value::Str(s)) => Ok(s.clone()),
            _ => Err(format!("receipt key `{key}` must be a string")),
        };
        let text_or_null = |key: &str| match get(key) {
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(Value::Null) | None => Ok(None),
            _ => Err(format!("receipt key `{key}` must be a string or null")),
        };
        let int = |key: &str| match get(key) {
            Some(Value::Int(n)) => Ok(*n),
            _ => Err(format!("receipt key `{key}` must be a non-negative integer")),
        };
        let int32 = |key: &str| int(key).and_then(|n| u32::try_from(n).map_err(|_| format!("receipt key `{key}` is {n}, above 2^32 - 1")));
        let version = int("receipt")?;
        if version != RECEIPT_VERSION {
            return Err(format!("receipt version {version} is not supported (this guest reads version {RECEIPT_VERSION})"));
        }
        Ok(Receipt {
            guest: text("guest")?,
            guest_version: text("guest_version")?,
            component_sha256: text_or_null("component_sha256")?,
            host: text_or_null("host")?,
            backend: text("backend")?,
            device: text("device")?,
            train: text("train")?,
            train_bytes: int("train_bytes")?,
            train_sha256: text("train_sha256")?,
            train_rows: int("train_rows")?,
            features: int("features")?,
            trees: int32("trees")?,
            max_depth: match get("max_depth") {
                Some(Value::Null) => None,
                _ => Some(int32("max_depth")?),
            },
            min_samples_split: int32("min_samples_split")?,
            min_samples_leaf: int32("min_samples_leaf")?,
            max_features: int32("max_features")?,
            bins: int32("bins")?,
            seed: int("seed")?,
            model: text("model")?,
            model_bytes: int("model_bytes")?,
            model_checksum: text("model_checksum")?,
            model_sha256: text("model_sha256")?,
        })
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A receipt value: what a flat JSON object of ours holds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(u64),
    Null,
}

/// Parses `{ "key": value, ... }` where every value is a string, a non-negative integer or
/// null (what receipts hold); anything else is refused, naming the byte offset.
fn parse_flat_object(text: &str) -> Result<Vec<(String, Value)>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    let at = |i: usize, what: &str| format!("{what} at byte {i}");
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err(at(i, "expected `{`"));
    }
    i += 1;
    let mut fields = Vec::new();
    ws(&mut i);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            ws(&mut i);
            let key = string(b, &mut i)?;
            ws(&mut i);
            if b.get(i) != Some(&b':') {
                return Err(at(i, "expected `:`"));
            }
            i += 1;
            ws(&mut i);
            let value = match b.get(i) {
                Some(b'"') => Value::Str(string(b, &mut i)?),
                Some(b'0'..=b'9') => {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let digits = &text[start..i];
                    if digits.len() > 1 && digits.starts_with('0') {
                        return Err(at(start, "a number with a leading zero"));
                    }
                    Value::Int(digits.parse().map_err(|_| at(start, "an integer above 2^64 - 1"))?)
                }
                _ if b[i..].starts_with(b"null") => {
                    i += 4;
                    Value::Null
                }
                _ => return Err(at(i, "expected a string, a non-negative integer or null")),
            };
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(format!("key `{key}` appears twice"));
            }
            fields.push((key, value));
            ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(at(i, "expected `,` or `}`")),
            }
        }
    }
    ws(&mut i);
    if i != b.len() {
        return Err(at(i, "unexpected text after the object"));
    }
    Ok(fields)
}

/// A JSON string starting at `b[*i]` (the opening quote); leaves `*i` after the closing one.
fn string(b: &[u8], i: &mut usize) -> Result<String, String> {
    let at = |i: usize, what: &str| format!("{what} at byte {i}");
    if b.get(*i) != Some(&b'"') {
        return Err(at(*i, "expected a string"));
    }
    *i += 1;
    let mut out = String::new();
    let hex4 = |i: usize| -> Result<u32, String> {
        let h = b.get(i..i + 4).ok_or_else(|| at(i, "a truncated \\u escape"))?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return Err(at(i, "a bad \\u escape"));
        }
        let h = std::str::from_utf8(h).expect("ASCII hex digits");
        u32::from_str_radix(h, 16).map_err(|_| at(i, "a bad \\u escape"))
    };
    loop {
        let start = *i;
        while *i < b.len() && b[*i] != b'"' && b[*i] != b'\\' && b[*i] >= 0x20 {
            *i += 1;
        }
        out.push_str(std::str::from_utf8(&b[start..*i]).map_err(|_| at(start, "invalid UTF-8"))?);
        match b.get(*i) {
            Some(b'"') => {
                *i += 1;
                return Ok(out);
            }
            Some(b'\\') => {
                let c = match b.get(*i + 1) {
                    Some(b'"') => '"',
                    Some(b'\\') => '\\',
                    Some(b'/') => '/',
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(b'u') => {
                        let mut code = hex4(*i + 2)?;
                        *i += 4;
                        if (0xD800..0xDC00).contains(&code) && b.get(*i + 2..*i + 4) == Some(b"\\u") {
                            let low = hex4(*i + 4)?;
                            if (0xDC00..0xE000).contains(&low) {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                *i += 6;
                            }
                        }
                        char::from_u32(code).ok_or_else(|| at(*i, "a \\u escape that is not a character"))?
                    }
                    _ => return Err(at(*i, "a bad escape")),
                };
                out.push(c);
                *i += 2;
            }
            Some(_) => return Err(at(*i, "a control character in a string")),
            None => return Err(at(*i, "an unterminated string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            guest: "rust".into(),
            guest_version: "0.1.0".into(),
            component_sha256: None,
            host: Some("wasmtime-gpu-host 0.1.0".into()),
            backend: "cpu".into(),
            device: "CPU \"reference\"\n".into(),
            train: "data/tr\u{e9}in.csv".into(),
            train_bytes: 10,
            train_sha256: "ab".into(),
            train_rows: 3,
            features: 2,
            trees: 5,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 2,
            bins: 256,
            seed: u64::MAX,
            model: "m.bin".into(),
            model_bytes: 100,
            model_checksum: "xxh64:0123456789abcdef".into(),
            model_sha256: "cd".into(),
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(Receipt::parse(&r.to_json()).unwrap(), r);
        let r = Receipt { max_depth: Some(16), component_sha256: Some("ef".into()), ..sample() };
        assert_eq!(Receipt::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn refuses_what_is_not_a_receipt() {
        let json = sample().to_json();
        assert!(Receipt::parse("").unwrap_err().contains("expected `{`"));
        assert!(Receipt::parse("{\"receipt\": 1.5}").unwrap_err().contains("expected `,`"));
        assert!(Receipt::parse(&json.replace("\"trees\": 5", "\"trees\": \"5\"")).unwrap_err().contains("`trees`"));
        assert!(Receipt::parse(&json.replace("\"trees\": 5", "\"trees\": 4294967296")).unwrap_err().contains("above"));
        assert!(Receipt::parse(&json.replace("\"receipt\": 1", "\"receipt\": 2")).unwrap_err().contains("version 2"));
        assert!(Receipt::parse(&json.replace("\"bins\": 256,", "")).unwrap_err().contains("`bins`"));
        assert!(Receipt::parse(&json.replace("\"bins\": 256", "\"bins\": 256, \"bins\": 2")).unwrap_err().contains("twice"));
        assert!(Receipt::parse(&format!("{json}x")).unwrap_err().contains("after the object"));
        assert!(Receipt::parse(&json.replace("\"bins\": 256", "\"bins\": 0256")).unwrap_err().contains("leading zero"));
    }

    #[test]
    fn reads_escapes() {
        let fields = parse_flat_object(r#"{"a": "\u00e9\ud83d\ude00\"\\\/\n", "b": null}"#).unwrap();
        assert_eq!(fields, vec![("a".into(), Value::Str("\u{e9}\u{1F600}\"\\/\n".into())), ("b".into(), Value::Null)]);
    }
}
