//! Turning a wasm32-wasi (preview 1) core module into a WASI command component with
//! `wit-component` and the `wasi_snapshot_preview1` command adapter that matches wasmtime 48.
//!
//! One implementation for `wasmtime-gpu-host componentize` (what `wasi_gpu_add_guest` in
//! cmake/wasi_gpu_guest.cmake runs) and `cargo xtask componentize`. The core module must carry
//! the world's component type (the custom section of include/wasi_gpu_component_type.o).

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER};
use wit_component::ComponentEncoder;

/// The interfaces every guest must import, checked after encoding: the WIT package version
/// the host implements (wit/gpu.wit), so a guest built from bindings of another version is
/// refused here rather than when it is run.
pub const REQUIRED_IMPORTS: &[&str] = &["wasi:gpu/compute@0.1.0"];

/// The module name the adapter replaces (`wasi_snapshot_preview1`).
pub const ADAPTER_NAME: &str = WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME;

/// The command adapter of wasmtime 48, byte for byte the `wasi_snapshot_preview1.command.wasm`
/// of that wasmtime release (checked in as include/wasi_snapshot_preview1.command.wasm for
/// `wasm-tools component new --adapt`).
pub const COMMAND_ADAPTER: &[u8] = WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER;

/// Encodes `core` as a validated command component that imports [`REQUIRED_IMPORTS`].
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    if !core.starts_with(b"\0asm") {
        bail!("not a WebAssembly module (no `\\0asm` header)");
    }
    if wasmparser::Parser::is_component(core) {
        bail!("already a component: componentize takes the core module the C/C++ linker wrote");
    }
    let component = ComponentEncoder::default()
        .validate(true)
        .module(core)
        .context("reading the core module (was include/wasi_gpu_component_type.o linked in?)")?
        .adapter(ADAPTER_NAME, COMMAND_ADAPTER)
        .context("loading the wasi_snapshot_preview1 command adapter")?
        .encode()
        .context("encoding the component")?;
    let imports = component_imports(&component)?;
    for required in REQUIRED_IMPORTS {
        if !imports.iter().any(|i| i == required) {
            let other = imports.iter().find(|i| i.starts_with("wasi:gpu/"));
            match other {
                Some(other) => bail!(
                    "the component imports {other}, but this host implements {required}: the guest was built with \
                     wasi_gpu.h of another WIT version; rebuild it against this release's include/"
                ),
                None => bail!("the component does not import {required} (it imports {imports:?}): is wasi_gpu.c linked in?"),
            }
        }
    }
    Ok(component)
}

/// Top-level import names of a component, e.g. `wasi:gpu/compute@0.1.0`.
pub fn component_imports(component: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.context("parsing the component")? {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    names.push(import.context("reading an import")?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Reads `input`, componentizes it and writes the component to `output` (through
/// `output.tmp` and a rename, so a failed run leaves no half-written component behind).
/// Returns the component's size.
pub fn componentize_file(input: &Path, output: &Path) -> Result<u64> {
    let core = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let component = componentize(&core).with_context(|| format!("componentizing {}", input.display()))?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, &component).with_context(|| format!("writing {}", Path::new(&tmp).display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("renaming {} to {}", Path::new(&tmp).display(), output.display()))?;
    Ok(component.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_core_module() {
        let err = componentize(b"int main() {}").unwrap_err();
        assert!(err.to_string().contains("not a WebAssembly module"), "{err:#}");
        // The smallest component: the preamble with layer 1.
        let err = componentize(b"\0asm\x0d\x00\x01\x00").unwrap_err();
        assert!(err.to_string().contains("already a component"), "{err:#}");
    }

    /// A command core module without wasi_gpu.c (no wasi:gpu imports) componentizes, but is
    /// refused: it is not a wasi:gpu guest.
    #[test]
    fn refuses_a_module_without_the_wasi_gpu_imports() {
        let core = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
        let err = componentize(&core).unwrap_err();
        assert!(format!("{err:#}").contains("does not import wasi:gpu/compute@0.1.0"), "{err:#}");
    }

    /// The version checked is the one wit/gpu.wit declares.
    #[test]
    fn required_import_matches_wit() {
        let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/gpu.wit")).expect("wit/gpu.wit");
        let package = wit.lines().find_map(|l| l.strip_prefix("package ")).expect("a package line");
        let version = package.trim_end_matches(';').split_once('@').expect("a versioned package").1;
        assert_eq!(REQUIRED_IMPORTS, [format!("wasi:gpu/compute@{version}")]);
    }

    #[test]
    fn adapter_is_a_core_module() {
        assert!(COMMAND_ADAPTER.starts_with(b"\0asm\x01\x00\x00\x00"));
        assert_eq!(ADAPTER_NAME, "wasi_snapshot_preview1");
    }
}
