//! The HTTPS certificate: given by the operator, or self-signed for
//! `localhost` and `127.0.0.1` on first start.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Select the process-wide rustls crypto provider (ring). Only ring is
/// compiled in (axum-server's aws-lc-rs default is off), but rustls still
/// wants it named once; calling this again is harmless.
pub(crate) fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Paths of the certificate and key to serve, generating a self-signed pair
/// under `<data-dir>/tls/` when none is given and none exists yet.
pub(crate) fn ensure_cert(
    data_dir: &Path,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    match (cert, key) {
        (Some(c), Some(k)) => return Ok((c, k)),
        (None, None) => {}
        _ => anyhow::bail!("--tls-cert and --tls-key must be given together"),
    }
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .context("generating the self-signed certificate")?;
    std::fs::write(&cert_path, certified.cert.pem())?;
    write_private(&key_path, certified.key_pair.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// Write a file readable by its owner only. An existing file keeps its
/// inode but not its mode: it is made 0600 before the secret is written.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` above applies only when the file is created.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn write_private_narrows_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    }
}
