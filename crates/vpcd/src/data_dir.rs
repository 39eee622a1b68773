//! File modes of the secrets vpcd keeps on disk (issue 11, finding 1).
//!
//! The data directory holds the SQLite database with every API SecretKey and PSK (also in its
//! `-wal`), the nonce database, the self-signed TLS key and the first-start credentials file. Any
//! of them readable by another local user gives away every tenant's keys, so at every start:
//! the process umask becomes 0077 (files vpcd creates from then on are the owner's only), the
//! directory is made 0700 and every file under it 0600, fixing what an older vpcd, a restore from
//! backup or an operator left wider. A directory that was group/other readable is reported, since
//! its contents may already have been read.
//!
//! The secrets inside the database are sealed under a master key (`vpcd_store::MasterKey`): by
//! default the file `master.key` in the data directory, created on the first start, or the file
//! `--master-key-file` (`VPCD_MASTER_KEY_FILE`) names, for operators who keep it elsewhere (every
//! vpcd sharing a PostgreSQL database needs the same key).
//!
//! # Layout
//! - [`secure`]: the start-time pass over the data directory and a SQLite database elsewhere.
//! - [`restrict_umask`]: the process umask.
//! - [`make_private`]: one file to 0600 (also used by `tls::write_private` for existing files).
//! - [`open_store`]: the database opened with the master key, the default key file created on
//!   first use; [`master_key_path`]: which file that is.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use vpcd_store::{MasterKey, Store, StoreError};

/// Mode of the data directory and its subdirectories.
const DIR_MODE: u32 = 0o700;
/// Mode of every file holding a secret.
const FILE_MODE: u32 = 0o600;
/// Permission bits for anyone but the owner.
const NOT_OWNER: u32 = 0o077;

/// Set the process umask so files and directories vpcd creates are its own only. SQLite creates
/// the `-wal`/`-shm` files with the database file's mode, which this makes 0600 on a first start.
pub(crate) fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(NOT_OWNER));
}

/// Create `dir` (0700) if missing, then make it 0700 and every file under it 0600, as well as the
/// SQLite database at `sqlite_db` (with its `-wal`, `-shm` and nonce files) when it lives
/// elsewhere. Returns the paths whose mode was changed, for the caller's log line.
pub(crate) fn secure(dir: &Path, sqlite_db: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    restrict_umask();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    check_writable(dir)?;
    let mode = mode_of(dir)?;
    if mode & 0o044 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format_args!("{mode:o}"),
            "the data directory was readable by group or others: its secrets (API keys, PSKs) may have been read; \
             made it 0700, consider rotating keys"
        );
    }
    let mut changed = Vec::new();
    secure_tree(dir, &mut changed)?;
    if let Some(db) = sqlite_db.filter(|db| !db.starts_with(dir)) {
        for path in sqlite_files(db) {
            if path.exists() && make_private(&path)? {
                changed.push(path);
            }
        }
    }
    if !changed.is_empty() {
        tracing::info!(paths = ?changed, "restricted file modes to the owner");
    }
    Ok(changed)
}

/// Refuse to start on a data directory that cannot take writes (a
/// read-only mount, say): vpcd would come up only to refuse every write.
/// The error keeps the `io::Error` as its cause, which `main` turns into
/// the exit status that tells a supervisor not to restart.
fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".vpcd-write-check");
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|f| f.sync_all());
    // Remove what was created even when the sync failed.
    let _ = fs::remove_file(&probe);
    written.with_context(|| {
        format!(
            "the data directory {} is not writable: vpcd keeps its database there; \
             make it writable or choose another --data-dir",
            dir.display()
        )
    })
}

/// `dir` to 0700 and, recursively, every directory under it to 0700 and every file to 0600.
/// Symbolic links are left alone: they may point outside the data directory.
fn secure_tree(dir: &Path, changed: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if set_mode(dir, DIR_MODE)? {
        changed.push(dir.to_owned());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            secure_tree(&path, changed)?;
        } else if kind.is_file() && make_private(&path)? {
            changed.push(path);
        }
    }
    Ok(())
}

/// The files SQLite keeps for the database at `db`: the database, its journal files, and the
/// nonce database vpcd keeps beside it with its own journal files.
fn sqlite_files(db: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in ["", "-nonces"] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(base);
            name.push(suffix);
            out.push(PathBuf::from(name));
        }
    }
    out
}

/// The master key file's name in the data directory, when no other file is given.
pub(crate) const MASTER_KEY_FILE: &str = "master.key";

/// The master key file used: `given`, or `master.key` in the data directory.
pub(crate) fn master_key_path(data_dir: &Path, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| data_dir.join(MASTER_KEY_FILE), Path::to_owned)
}

/// Open the database at `url` with the master key in `key_file` (default: `master.key` in the
/// data directory). A given file must exist; the default one is created (0600) on first use, so
/// the first start seals its secrets under a fresh key, and removed again if the database turns
/// out to be sealed under another key. A database sealed under another key is refused with an
/// error naming the key file (never the key).
pub(crate) async fn open_store(
    data_dir: &Path,
    url: &str,
    key_file: Option<&Path>,
) -> anyhow::Result<Arc<dyn Store>> {
    let path = master_key_path(data_dir, key_file);
    let created = key_file.is_none() && !path.exists();
    let key = if created {
        let key = MasterKey::generate();
        key.write_new(&path)?;
        key
    } else {
        if key_file.is_some() {
            warn_if_shared(&path);
        }
        MasterKey::read(&path)?
    };
    match vpcd_store::connect(url, key).await {
        Ok(store) => {
            if created {
                tracing::info!(
                    file = %path.display(),
                    "created the master key that seals API keys and PSKs in the database; \
                     keep a copy: without it the database's secrets are lost"
                );
            }
            Ok(store)
        }
        Err(e @ StoreError::WrongMasterKey) => {
            if created {
                // Nothing was sealed under it: the database already had a key.
                let _ = fs::remove_file(&path);
            }
            let mut hint = format!(
                "{e}. The key was read from {}; give the right one with --master-key-file \
                 (VPCD_MASTER_KEY_FILE), e.g. a copy of the key file of a vpcd that serves this \
                 database",
                path.display()
            );
            let pending = rotated_key_path(&path);
            if pending.exists() {
                hint.push_str(&format!(
                    ". {} exists: a key rotation may have stopped before replacing the key \
                     file; if so, that file holds the database's key",
                    pending.display()
                ));
            }
            Err(anyhow::anyhow!(hint))
        }
        Err(e) => Err(anyhow::Error::new(e).context("opening the database")),
    }
}

/// Where `vpcd admin master-key rotate` keeps the new key until the database is sealed under it.
pub(crate) fn rotated_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    name.into()
}

/// A key file outside the data directory is the operator's to place; it is reported, not
/// changed, when others than its owner may read it.
fn warn_if_shared(path: &Path) {
    if let Ok(mode) = mode_of(path) {
        if mode & NOT_OWNER != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{mode:o}"),
                "the master key file is readable by group or others: anyone who reads it and \
                 the database has every API key and PSK"
            );
        }
    }
}

/// Make the file at `path` 0600 unless it already is; `true` when its mode changed.
pub(crate) fn make_private(path: &Path) -> anyhow::Result<bool> {
    set_mode(path, FILE_MODE)
}

fn set_mode(path: &Path, want: u32) -> anyhow::Result<bool> {
    if mode_of(path)? == want {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(want))
        .with_context(|| format!("setting the mode of {} to {want:o}", path.display()))?;
    Ok(true)
}

fn mode_of(path: &Path) -> anyhow::Result<u32> {
    Ok(fs::metadata(path)
        .with_context(|| format!("reading the mode of {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn existing_wide_modes_are_narrowed_and_new_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(data.join("tls")).unwrap();
        for f in [
            "vpcd.db",
            "vpcd.db-wal",
            "vpcd.db-nonces",
            "credentials",
            "tls/key.pem",
        ] {
            fs::write(data.join(f), "x").unwrap();
            chmod(&data.join(f), 0o644);
        }
        chmod(&data.join("tls"), 0o755);
        chmod(&data, 0o755);
        // A database outside the data directory, given with --database.
        let elsewhere = tmp.path().join("other.db");
        fs::write(&elsewhere, "x").unwrap();
        chmod(&elsewhere, 0o664);
        let shm = tmp.path().join("other.db-shm");
        fs::write(&shm, "x").unwrap();
        chmod(&shm, 0o644);

        let changed = secure(&data, Some(&elsewhere)).unwrap();
        assert_eq!(changed.len(), 9, "{changed:?}");
        assert_eq!(mode_of(&data).unwrap(), 0o700);
        assert_eq!(mode_of(&data.join("tls")).unwrap(), 0o700);
        for f in [
            "vpcd.db",
            "vpcd.db-wal",
            "vpcd.db-nonces",
            "credentials",
            "tls/key.pem",
        ] {
            assert_eq!(mode_of(&data.join(f)).unwrap(), 0o600, "{f}");
        }
        assert_eq!(mode_of(&elsewhere).unwrap(), 0o600);
        assert_eq!(mode_of(&shm).unwrap(), 0o600);
        // A second pass changes nothing.
        assert!(secure(&data, Some(&elsewhere)).unwrap().is_empty());
        // The umask now keeps new files private.
        fs::write(data.join("new"), "x").unwrap();
        assert_eq!(mode_of(&data.join("new")).unwrap(), 0o600);
    }

    #[test]
    fn a_missing_data_directory_is_created_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a/b");
        secure(&data, None).unwrap();
        assert_eq!(mode_of(&data).unwrap(), 0o700);
    }
}
