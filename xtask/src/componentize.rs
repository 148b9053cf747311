//! Turning a wasm32-wasi (preview 1) core module into a WASI command component
//! with `wit-component` and the preview1 adapter that matches wasmtime 48.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER};
use wit_component::ComponentEncoder;

/// The interfaces every guest must import, checked after encoding.
pub const REQUIRED_IMPORTS: &[&str] = &["wasi:gpu/compute@0.1.0"];

/// Encodes `core` (which carries the component-type custom section from
/// `wasi_gpu_component_type.o`) as a validated command component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    let component = ComponentEncoder::default()
        .validate(true)
        .module(core)
        .context("reading the core module (was wasi_gpu_component_type.o linked in?)")?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
        .context("loading the wasi_snapshot_preview1 command adapter")?
        .encode()
        .context("encoding the component")?;
    let imports = component_imports(&component)?;
    for required in REQUIRED_IMPORTS {
        if !imports.iter().any(|i| i == required) {
            bail!("component does not import {required}; it imports {imports:?}");
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

/// File-to-file wrapper used by `cargo xtask componentize` and `build-all`.
pub fn componentize_file(input: &Path, output: &Path) -> Result<()> {
    let core = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let component = componentize(&core).with_context(|| format!("componentizing {}", input.display()))?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(output, &component).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}
