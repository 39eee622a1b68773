//! Who is signed in: sign-in with an API key or a console password,
//! server-side sessions in the store, the session cookie, and the checks
//! every state-changing form passes (same origin, CSRF token).
//!
//! The browser holds a random 256-bit token; the store holds its SHA-256
//! only, so a copy of the database cannot take a session over, and every
//! vpcd on the database serves the session. A form's CSRF token is another
//! hash of the session token (domain-separated), so it needs no storage,
//! changes with every session, and reveals nothing of the token.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap, HeaderValue};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vpcd_store::{NewConsoleSession, Scope};
use vpcd_types::{AccountId, Secret};

use crate::api::ApiState;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "vpcd_console";

/// A signed-in browser.
pub(crate) struct Signed {
    pub(crate) account_id: AccountId,
    pub(crate) account_name: String,
    /// The session token from the cookie: only ever hashed, never shown.
    token: Secret,
}

impl Signed {
    /// The CSRF token of this session, for the hidden field of its forms.
    pub(crate) fn csrf(&self) -> String {
        csrf_of(self.token.expose())
    }

    pub(crate) fn scope(&self, region: &str) -> Scope {
        Scope {
            account_id: self.account_id,
            region: region.to_owned(),
        }
    }

    pub(crate) fn token_hash(&self) -> String {
        token_hash(self.token.expose())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a session token.
fn token_hash(token: &str) -> String {
    hex(&Sha256::new()
        .chain_update(b"vpcd console session\0")
        .chain_update(token.as_bytes())
        .finalize())
}

fn csrf_of(token: &str) -> String {
    hex(&Sha256::new()
        .chain_update(b"vpcd console csrf\0")
        .chain_update(token.as_bytes())
        .finalize())
}

/// Whether a form's CSRF field is this session's token (constant time).
pub(crate) fn csrf_ok(signed: &Signed, given: Option<&str>) -> bool {
    let want = signed.csrf();
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(want.as_bytes())))
}

/// The session named by the request's cookie, if it is live.
pub(crate) async fn current(api: &ApiState, headers: &HeaderMap) -> Option<Signed> {
    let token = cookie(headers)?;
    // A token is 64 hex digits; anything else cannot be one.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let found = api
        .store
        .find_console_session(&token_hash(&token), api.clock.now())
        .await;
    match found {
        Ok(Some(s)) => Some(Signed {
            account_id: s.account_id,
            account_name: s.account_name,
            token: Secret::new(token),
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "console: reading a session failed");
            None
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Open a session for `account_id` (`secret_id`: the key used, if any);
/// the `Set-Cookie` value that hands it to the browser.
pub(crate) async fn open(
    api: &ApiState,
    account_id: AccountId,
    secret_id: Option<String>,
    over_tls: bool,
) -> Result<HeaderValue, SignInError> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = Secret::new(hex(&raw));
    let now = api.clock.now();
    let ttl = api.settings.console.session_ttl.as_secs() as i64;
    api.store
        .create_console_session(NewConsoleSession {
            token_hash: token_hash(token.expose()),
            account_id,
            secret_id,
            created_at: now,
            expires_at: now.saturating_add(ttl),
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "console: recording a session failed");
            SignInError::Unavailable
        })?;
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={ttl}{}",
        token.expose(),
        if over_tls { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).map_err(|_| SignInError::Unavailable)
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(over_tls: bool) -> HeaderValue {
    let secure = if over_tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Sign-out: the session row is deleted, so the token is dead on every node.
pub(crate) async fn close(api: &ApiState, signed: &Signed) {
    if let Err(e) = api.store.delete_console_session(&signed.token_hash()).await {
        tracing::warn!(error = %e, "console: deleting a session failed");
    }
}

/// Why a sign-in failed; shown as one message that does not say which
/// half was wrong.
pub(crate) enum SignInError {
    Refused,
    /// The store could not be read; the cause is logged.
    Unavailable,
}

/// Sign in with an API key pair: the key must exist and be enabled, and the
/// SecretKey matches in constant time.
pub(crate) async fn with_key(
    api: &ApiState,
    secret_id: &str,
    secret_key: &str,
) -> Result<(AccountId, String), SignInError> {
    if secret_id.is_empty() || secret_id.len() > 128 {
        return Err(SignInError::Refused);
    }
    let key = match api.store.find_key(secret_id).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "console: looking up a key failed");
            return Err(SignInError::Unavailable);
        }
    };
    // Compare even when the key is unknown, so the answer's timing does not
    // say whether the SecretId exists.
    let stored = key
        .as_ref()
        .map_or(Secret::new(""), |k| k.secret_key.clone());
    let given = Secret::new(secret_key);
    let matches = !secret_key.is_empty() && stored == given;
    match key {
        Some(k) if matches && !k.disabled => Ok((k.account_id, k.secret_id)),
        _ => Err(SignInError::Refused),
    }
}

/// A hash of a random password nobody knows, made once: verified against
/// when the account does not exist or has no console password, so such a
/// sign-in takes as long as a wrong password.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            hash_password(&hex(&raw)).unwrap_or_default()
        })
        .clone()
}

/// Sign in with an account's console password.
pub(crate) async fn with_password(
    api: &ApiState,
    account: &str,
    password: &str,
) -> Result<AccountId, SignInError> {
    if account.is_empty() || account.len() > 256 || password.is_empty() || password.len() > 1024 {
        return Err(SignInError::Refused);
    }
    let login = match api.store.console_login(account).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "console: looking up an account failed");
            return Err(SignInError::Unavailable);
        }
    };
    let hash = login
        .as_ref()
        .and_then(|l| l.password_hash.clone())
        .unwrap_or_default();
    let password = Secret::new(password);
    // Argon2 is slow on purpose: off the async workers.
    let verified = tokio::task::spawn_blocking(move || {
        let hash = if hash.is_empty() { dummy_hash() } else { hash };
        verify_password(&hash, password.expose())
    })
    .await
    .unwrap_or(false);
    match login {
        Some(l) if verified && l.password_hash.is_some() && !l.disabled => Ok(l.account_id),
        _ => Err(SignInError::Refused),
    }
}

fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A console password's Argon2id hash (PHC string, random salt) for
/// `vpcd admin account password`.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether a POST comes from the console's own pages: a browser names the
/// page's origin in `Origin` (or says `Sec-Fetch-Site`); either must be
/// this host. A client that sends neither is no browser carrying someone
/// else's cookie, and still needs the session's CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap, over_tls: bool) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let scheme = if over_tls { "https" } else { "http" };
        return match (origin.to_str().ok(), host) {
            (Some(o), Some(h)) => o == format!("{scheme}://{h}"),
            _ => false,
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_domain_separated_and_stable() {
        let t = "ab".repeat(32);
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), csrf_of(&t));
        assert_ne!(token_hash(&t), token_hash(&"cd".repeat(32)));
        assert_eq!(csrf_of(&t), csrf_of(&t));
    }

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsE"));
        assert!(!verify_password("not a hash", "x"));
        let dummy = dummy_hash();
        PasswordHash::new(&dummy).expect("the dummy hash parses");
        assert!(!verify_password(&dummy, ""));
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h, false), "no browser headers");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h, false));
        assert!(!same_origin(&h, true), "scheme differs");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, false));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, false));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, false));
    }
}
