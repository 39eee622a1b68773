//! Secrets at rest: every API SecretKey and pre-shared key is stored sealed
//! with ChaCha20-Poly1305 (RFC 8439, `ring`'s) under a [`MasterKey`] kept
//! outside the database.
//!
//! A copy of the database (a `vpcd.db` or its `-wal` read by another local
//! user, a backup, a PostgreSQL dump or replica) then gives away no secret
//! without the key file.
//!
//! # What a sealed value looks like
//! `v1:` followed by base64url (no padding) of the 12-byte nonce, the
//! ciphertext and the 16-byte tag. Every value gets a fresh random nonce:
//! with 96-bit nonces two of n values share one with probability about
//! n²/2⁹⁷, negligible for the millions of values a key seals between
//! rotations. The associated data names the column and the row the value
//! belongs to
//! (`vpcd/api_keys.secret_key/<SecretId>`, `vpcd/vpn_conns.psk/<unified
//! id>`), so a sealed value moved to another row or column does not open.
//!
//! # The key check
//! The database keeps the sealing of a fixed text under its master key
//! (table `master_key_check`). A store opened with another key refuses to
//! start ([`StoreError::WrongMasterKey`]) before it reads or writes any
//! secret: every vpcd sharing one database needs the same key.
//!
//! # The key file
//! 64 hexadecimal digits (32 bytes), optionally followed by a newline: what
//! `openssl rand -hex 32` prints. Created mode 0600. The key never appears
//! in an error, a log line or `Debug` output.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use vpcd_types::Secret;
use zeroize::Zeroizing;

use crate::{Result, StoreError};

const KEY_LEN: usize = 32;
/// Marks a sealed value (and its format's version).
const PREFIX: &str = "v1:";
/// Sealed as the key check.
const CHECK_TEXT: &str = "vpcd master key check";

/// The key every secret in the database is sealed under. `Debug` prints a
/// placeholder and the bytes are wiped on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Why a master key file could not be used. Names the file, never its
/// content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the master key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the master key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key file {} does not hold a master key \
         (expected 64 hexadecimal digits, as `openssl rand -hex 32` prints)",
        path.display()
    )]
    Malformed { path: PathBuf },
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        MasterKey(bytes)
    }

    /// The key in the file at `path`.
    pub fn read(path: &Path) -> Result<MasterKey, KeyFileError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?);
        Self::from_hex(text.trim_ascii()).ok_or_else(|| KeyFileError::Malformed {
            path: path.to_owned(),
        })
    }

    /// Write this key to a new file at `path` (mode 0600, flushed to disk);
    /// an existing file is an error, never overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let failed = |source| KeyFileError::Write {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        let mut text = Zeroizing::new(String::with_capacity(KEY_LEN * 2 + 1));
        for b in self.0.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)
    }

    fn from_hex(text: &[u8]) -> Option<MasterKey> {
        if text.len() != KEY_LEN * 2 {
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        for (out, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *out = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(MasterKey(bytes))
    }

    fn cipher(&self) -> Result<LessSafeKey> {
        UnboundKey::new(&CHACHA20_POLY1305, self.0.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| StoreError::Backend("cannot use the master key".into()))
    }

    /// `clear`, sealed as the value of `column` in row `row`.
    pub(crate) fn seal(&self, column: Column, row: &str, clear: &str) -> Result<String> {
        self.seal_bytes(&column.associated_data(row), clear.as_bytes())
    }

    /// The clear value of `column` in row `row`, stored as `stored`.
    pub(crate) fn open(&self, column: Column, row: &str, stored: &str) -> Result<Secret> {
        let clear = self
            .open_bytes(&column.associated_data(row), stored)
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "the {} of {row} does not decrypt: the value was altered, moved from \
                     another row, or sealed under another master key",
                    column.label()
                ))
            })?;
        let text = String::from_utf8(clear.to_vec()).map_err(|_| {
            StoreError::Backend(format!("the {} of {row} is not text", column.label()))
        })?;
        Ok(Secret::new(text))
    }

    /// What the database keeps to recognise this key.
    pub(crate) fn check_value(&self) -> Result<String> {
        self.seal_bytes(CHECK_AD, CHECK_TEXT.as_bytes())
    }

    /// Whether `stored` is [`MasterKey::check_value`] of this key.
    pub(crate) fn opens_check(&self, stored: &str) -> bool {
        self.open_bytes(CHECK_AD, stored)
            .is_some_and(|clear| clear.as_slice() == CHECK_TEXT.as_bytes())
    }

    fn seal_bytes(&self, ad: &[u8], clear: &[u8]) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = Zeroizing::new(clear.to_vec());
        self.cipher()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad),
                &mut *sealed,
            )
            .map_err(|_| StoreError::Backend("cannot seal a secret".into()))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    fn open_bytes(&self, ad: &[u8], stored: &str) -> Option<Zeroizing<Vec<u8>>> {
        let mut raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(stored.strip_prefix(PREFIX)?).ok()?);
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let clear = self
            .cipher()
            .ok()?
            .open_in_place(nonce, Aad::from(ad), sealed)
            .ok()?;
        Some(Zeroizing::new(clear.to_vec()))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const CHECK_AD: &[u8] = b"vpcd/master_key_check";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether `stored` is a sealed value (rather than a clear one an older
/// vpcd wrote).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The columns that hold sealed secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// `api_keys.secret_key`; the row is the SecretId.
    SecretKey,
    /// The pre-shared key in `vpn_conns.settings`; the row is the
    /// connection's unified id.
    Psk,
}

impl Column {
    fn label(self) -> &'static str {
        match self {
            Column::SecretKey => "api_keys.secret_key",
            Column::Psk => "vpn_conns.psk",
        }
    }

    fn associated_data(self, row: &str) -> Vec<u8> {
        format!("vpcd/{}/{row}", self.label()).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_in_its_own_row_and_column_under_its_own_key() {
        let key = MasterKey::generate();
        let sealed = key.seal(Column::Psk, "vpnx-aaaaaaaa", "hunter2").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_eq!(
            key.open(Column::Psk, "vpnx-aaaaaaaa", &sealed)
                .unwrap()
                .expose(),
            "hunter2"
        );
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            key.seal(Column::Psk, "vpnx-aaaaaaaa", "hunter2").unwrap()
        );
        // Another row, another column, another key, a flipped bit, a clear value.
        assert!(key.open(Column::Psk, "vpnx-bbbbbbbb", &sealed).is_err());
        assert!(key
            .open(Column::SecretKey, "vpnx-aaaaaaaa", &sealed)
            .is_err());
        assert!(MasterKey::generate()
            .open(Column::Psk, "vpnx-aaaaaaaa", &sealed)
            .is_err());
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(key.open(Column::Psk, "vpnx-aaaaaaaa", &bad).is_err());
        assert!(key.open(Column::Psk, "vpnx-aaaaaaaa", "hunter2").is_err());
        let e = key
            .open(Column::Psk, "vpnx-aaaaaaaa", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vpnx-aaaaaaaa") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_check_value_recognises_its_key_only() {
        let key = MasterKey::generate();
        let check = key.check_value().unwrap();
        assert!(key.opens_check(&check));
        assert!(!MasterKey::generate().opens_check(&check));
        // A secret sealed under the key is not a check value.
        assert!(!key.opens_check(&key.seal(Column::Psk, "x", CHECK_TEXT).unwrap()));
    }

    #[test]
    fn key_files_round_trip_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = MasterKey::read(&path).unwrap();
        let sealed = key.seal(Column::SecretKey, "AKID1", "s").unwrap();
        assert_eq!(
            again.open(Column::SecretKey, "AKID1", &sealed).unwrap(),
            Secret::new("s")
        );
        assert!(matches!(
            MasterKey::generate().write_new(&path),
            Err(KeyFileError::Write { .. })
        ));
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
        // Upper case and a missing newline are fine; anything else is not,
        // and the error never repeats the content.
        std::fs::write(&path, "AB".repeat(32)).unwrap();
        MasterKey::read(&path).unwrap();
        for bad in ["ab".repeat(31), "zz".repeat(32), "ab".repeat(33)] {
            std::fs::write(&path, &bad).unwrap();
            let e = MasterKey::read(&path).unwrap_err().to_string();
            assert!(e.contains("master.key") && !e.contains(&bad), "{e}");
        }
        assert!(matches!(
            MasterKey::read(&dir.path().join("missing")),
            Err(KeyFileError::Read { .. })
        ));
    }
}
