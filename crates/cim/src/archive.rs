//! Packs provider binaries into provider archives (`.par.gz`) the wasmCloud host can start.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nkeys::KeyPair;
use provider_archive::ProviderArchive;

/// The host's target triple naming: `<arch>-<os>`, e.g. `x86_64-linux`.
pub fn host_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// Packs `binary` as provider `name` into `<dir>/<name>.par.gz`, unless the archive is newer
/// than the binary already. Returns the archive path.
pub async fn pack(binary: &Path, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = dir.join(format!("{name}.par.gz"));
    let newer = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(a), Some(b)) = (newer(&out), newer(binary)) {
        if a >= b {
            return Ok(out);
        }
    }
    let bytes = std::fs::read(binary)
        .with_context(|| format!("cannot read provider binary {}", binary.display()))?;
    let mut par = ProviderArchive::new(
        name,
        "cim",
        None,
        Some(env!("CARGO_PKG_VERSION").to_string()),
    );
    par.add_library(&host_target(), &bytes)
        .map_err(|e| anyhow::anyhow!("cannot add {name} to its archive: {e}"))?;
    // Claims are signed by a throwaway issuer: the local host does not restrict issuers.
    let issuer = KeyPair::new_account();
    let subject = KeyPair::new_service();
    par.write(&out, &issuer, &subject, true)
        .await
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    Ok(out)
}
