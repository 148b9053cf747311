//! Reading and writing the insta snapshot files under `tests/snapshots/`, so that the
//! standalone `parity` binary (which runs where there is no cargo and no insta runtime)
//! checks exactly the files that `tests/tests/parity.rs` checks with `insta::assert_snapshot!`.

use std::path::{Path, PathBuf};

/// The test file whose `assert_snapshot!` calls own the snapshots (insta's `source:` field).
pub const SOURCE: &str = "tests/tests/parity.rs";

/// insta's file name for the named snapshot `name` asserted in the `parity` test module.
pub fn file_name(name: &str) -> String {
    format!("parity__{name}.snap")
}

/// The snapshot file of configuration `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(file_name(name))
}

/// The contents of an insta `.snap` file: everything after the `---`-delimited metadata
/// block, without trailing whitespace (insta compares the same way).
pub fn contents(file_text: &str) -> Result<String, String> {
    let text = file_text.replace("\r\n", "\n");
    let Some(rest) = text.strip_prefix("---\n") else {
        return Err("does not start with insta's `---` metadata line".into());
    };
    let Some(end) = rest.find("\n---\n") else {
        return Err("has no closing `---` after the metadata".into());
    };
    Ok(rest[end + 5..].trim_end().to_string())
}

/// Reads the snapshot of `name`: `Ok(None)` when the file does not exist.
pub fn read(dir: &Path, name: &str) -> Result<Option<String>, String> {
    let file = path(dir, name);
    match std::fs::read_to_string(&file) {
        Ok(text) => contents(&text).map(Some).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// Writes `body` as insta would (`INSTA_UPDATE=always`), so insta accepts the file unchanged.
pub fn write(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = path(dir, name);
    let text = format!("---\nsource: {SOURCE}\nexpression: text\n---\n{}\n", body.trim_end());
    std::fs::write(&file, text)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_metadata_skipped() {
        let dir = std::env::temp_dir().join(format!("parity-snap-{}", std::process::id()));
        let file = write(&dir, "x", "a\nb\n\n").unwrap();
        assert!(file.ends_with("parity__x.snap"));
        assert_eq!(read(&dir, "x").unwrap().as_deref(), Some("a\nb"));
        assert_eq!(read(&dir, "missing").unwrap(), None);
        assert!(contents("no header").is_err());
        assert_eq!(contents("---\nsource: s\n---\nbody\r\n").unwrap(), "body");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
