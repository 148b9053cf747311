//! The model file's own checksum (docs/algorithm.md §10), checked independently of the
//! guests: what `model_checksum` must report for a file.

use sha2::{Digest, Sha256};
use xxhash_rust::xxh64::xxh64;

/// `xxh64:<16 hex>` for a file with checksum kind 2, `sha256:<64 hex>` for kind 1, after
/// checking that the trailer is the right checksum of every byte before it; an error
/// otherwise.
pub fn model_checksum(file: &[u8]) -> Result<String, String> {
    let kind = file.get(16..20).map(|k| u32::from_le_bytes([k[0], k[1], k[2], k[3]])).ok_or("too short")?;
    match kind {
        1 if file.len() >= 32 => {
            let (body, sum) = file.split_at(file.len() - 32);
            let want = Sha256::digest(body);
            if want.as_slice() != sum {
                return Err("the SHA-256 trailer does not match the file".into());
            }
            Ok(format!("sha256:{}", want.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        }
        2 if file.len() >= 8 => {
            let (body, sum) = file.split_at(file.len() - 8);
            let want = xxh64(body, 0);
            if want.to_le_bytes() != sum {
                return Err("the XXH64 trailer does not match the file".into());
            }
            Ok(format!("xxh64:{want:016x}"))
        }
        k => Err(format!("checksum kind {k}")),
    }
}
