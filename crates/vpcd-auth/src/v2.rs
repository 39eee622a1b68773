//! The v2 API's "signature v1", and API 3.0's v1-style form signature, which is the same algorithm.
//!
//! The algorithm is specified in the project reference, section 3 "Signature (v2, \"signature v1\")":
//! [`tencent-vpc-api.md` §3](file:///work/shared/reference/tencent-vpc-api.md#3-signature-v2-signature-v1).
//! Where the reference leaves room, this module follows the official client, `qcloudapi-sdk-python`
//! 2.0.15 (`QcloudApi/common/sign.py`), because that is what real callers run:
//!
//! - `_` becomes `.` in keys *before* sorting. qcloudcli sorts first, and the two orders differ
//!   whenever a key with `_` shares a prefix with another key (`a_b` vs `aB`: `.` sorts before
//!   letters, `_` between upper and lower case), so such qcloudcli requests will not verify;
//! - keys sort by byte order, which for UTF-8 equals Python's code-point order;
//! - on POST, parameters whose value starts with `@` are not signed. Such values are therefore **not
//!   authenticated**: the server must not trust them (or should reject them).
//!
//! API 3.0 clients that choose `HmacSHA1`/`HmacSHA256` instead of TC3 (tencentcloud-sdk-python's
//! `AbstractClient._format_sign_string`) build the very same string with path `/` and without the
//! `@` exception; [`api3_form_string_to_sign`] is that call, so both protocols share one
//! implementation and one set of tests.
//!
//! The joined `k=v&k=v` string is ambiguous when values contain `&` and `=`; the server must run
//! [`crate::form::check_signable`] over the decoded pairs before verifying (see there).

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const SIGNATURE: &str = "Signature";

/// Base64 of a 32-byte SHA-256 MAC is 44 characters; anything longer cannot match.
const MAX_SIGNATURE_LEN: usize = 44;

/// Parameters that [`Signer::signed_params`] sets itself.
const SIGNER_OWNED: [&str; 7] = [
    "Action",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "SignatureMethod",
    SIGNATURE,
];

/// The HMAC digest selected by the `SignatureMethod` common parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSha1,
    HmacSha256,
}

impl SignatureMethod {
    /// "HmacSHA256" selects SHA-256; anything else or absent means HmacSHA1 (reference §2).
    ///
    /// The match is case-sensitive because the SDK compares with `==`: a client sending
    /// `hmacsha256` signs with SHA-1, so the server must verify with SHA-1 too.
    pub fn from_param(value: Option<&str>) -> Self {
        match value {
            Some("HmacSHA256") => Self::HmacSha256,
            _ => Self::HmacSha1,
        }
    }

    /// The value to send as the `SignatureMethod` parameter.
    pub fn as_param(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HmacSHA1",
            Self::HmacSha256 => "HmacSHA256",
        }
    }
}

/// METHOD(upper-case) + host + path + "?" + sorted pairs. Excludes the key "Signature";
/// replaces '_' with '.' in each key (values unchanged); sorts by key bytes; joins raw `k=v` with '&'.
///
/// `params` are decoded values. If `skip_at_values` is true, parameters whose value starts with '@'
/// are left out (the official SDK does this on POST). `host` is the `Host` header as received,
/// `:port` included, since that is what the client signed.
///
/// Two parameters with the same key after the `_` -> `.` rewrite (`a_b` and `a.b`, or a repeated
/// parameter) are both kept, ordered by original key and then value, so the result never depends on
/// the order of `params`. The SDK cannot produce such a request (it signs a dict), so a server
/// should reject it before it gets here; this only guarantees a deterministic answer.
pub fn string_to_sign(
    http_method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    skip_at_values: bool,
) -> String {
    let mut pairs: Vec<(Cow<'_, str>, &str, &str)> = params
        .iter()
        .filter(|(key, value)| *key != SIGNATURE && !(skip_at_values && value.starts_with('@')))
        .map(|&(key, value)| (canonical_key(key), key, value))
        .collect();
    // A total order on the whole tuple: equal tuples are indistinguishable, so unstable is fine.
    pairs.sort_unstable();

    let pairs_len: usize = pairs.iter().map(|(k, _, v)| k.len() + v.len() + 2).sum();
    let mut out =
        String::with_capacity(http_method.len() + host.len() + path.len() + 1 + pairs_len);
    out.extend(http_method.chars().map(|c| c.to_ascii_uppercase()));
    out.push_str(host);
    out.push_str(path);
    out.push('?');
    for (i, (key, _, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The path API 3.0 signs in its v1-style form signature: the service is served at `/`.
pub const API3_PATH: &str = "/";

/// The string to sign of API 3.0's v1-style form signature (`SignatureMethod` `HmacSHA1` or
/// `HmacSHA256`): [`string_to_sign`] with path [`API3_PATH`] and every parameter signed, since the
/// 3.0 SDK, unlike the v2 one, has no `@` exception. Sign and verify it with [`sign`] and [`verify`].
///
/// `host` is the `Host` header as received (the SDK signs its endpoint, `127.0.0.1:PORT` on loopback).
pub fn api3_form_string_to_sign(http_method: &str, host: &str, params: &[(&str, &str)]) -> String {
    string_to_sign(http_method, host, API3_PATH, params, false)
}

fn canonical_key(key: &str) -> Cow<'_, str> {
    if key.contains('_') {
        Cow::Owned(key.replace('_', "."))
    } else {
        Cow::Borrowed(key)
    }
}

// HMAC hashes over-long keys and pads short ones, so key setup cannot fail.
const ANY_KEY_LEN: &str = "HMAC accepts keys of any length";

fn mac(secret_key: &[u8], method: SignatureMethod, string_to_sign: &str) -> Vec<u8> {
    match method {
        SignatureMethod::HmacSha1 => {
            let mut m = <Hmac<Sha1> as Mac>::new_from_slice(secret_key).expect(ANY_KEY_LEN);
            m.update(string_to_sign.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        SignatureMethod::HmacSha256 => hmac_sha256(secret_key, string_to_sign.as_bytes()).to_vec(),
    }
}

/// HMAC-SHA256, shared with TC3, whose key derivation chains four of them.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect(ANY_KEY_LEN);
    m.update(message);
    m.finalize().into_bytes().into()
}

/// Base64(HMAC(secret_key, string_to_sign)), standard alphabet with padding, as the SDK sends it.
pub fn sign(secret_key: &[u8], method: SignatureMethod, string_to_sign: &str) -> String {
    BASE64.encode(mac(secret_key, method, string_to_sign))
}

/// Whether `provided` (the decoded `Signature` parameter) is the signature of `string_to_sign`.
///
/// The MAC bytes are compared in constant time. A value of the wrong length or that is not
/// canonical padded base64 is simply `false`; this never panics.
pub fn verify(
    secret_key: &[u8],
    method: SignatureMethod,
    string_to_sign: &str,
    provided: &str,
) -> bool {
    // Length is public, so refusing early leaks nothing and bounds the work an unauthenticated
    // caller can cause.
    if provided.len() > MAX_SIGNATURE_LEN {
        return false;
    }
    let Ok(provided) = BASE64.decode(provided) else {
        return false;
    };
    let expected = mac(secret_key, method, string_to_sign);
    expected.as_slice().ct_eq(provided.as_slice()).into()
}

/// A client-side signer used by `vpcd call` and the benchmark.
///
/// `Debug` redacts the secret key so a signer can sit inside structs that get logged.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a [u8],
    pub method: SignatureMethod,
}

impl fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("method", &self.method)
            .finish()
    }
}

impl Signer<'_> {
    /// Action params plus the common parameters (Action, Region, Timestamp, Nonce, SecretId,
    /// SignatureMethod) and, last, the Signature: the full list ready for [`crate::encode_form`].
    ///
    /// Entries of `params` named like one of those are dropped, because the explicit arguments are
    /// what gets signed and a duplicate would make the request ambiguous. `action` is sent as given
    /// (the SDK upper-cases its first letter; callers that want that do it themselves). Values
    /// starting with `@` are left out of the signature on POST, exactly as the SDK does, so a server
    /// that follows the SDK accepts the request.
    #[expect(
        clippy::too_many_arguments,
        reason = "the CLI and the benchmark share this fixed signature"
    )]
    pub fn signed_params(
        &self,
        http_method: &str,
        host: &str,
        path: &str,
        action: &str,
        region: &str,
        timestamp: i64,
        nonce: u64,
        params: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(params.len() + SIGNER_OWNED.len());
        out.extend(
            [
                ("Action", action.to_owned()),
                ("Region", region.to_owned()),
                ("Timestamp", timestamp.to_string()),
                ("Nonce", nonce.to_string()),
                ("SecretId", self.secret_id.to_owned()),
                ("SignatureMethod", self.method.as_param().to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        out.extend(
            params
                .iter()
                .filter(|(k, _)| !SIGNER_OWNED.contains(&k.as_str()))
                .cloned(),
        );

        let borrowed: Vec<(&str, &str)> =
            out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let skip_at_values = http_method.eq_ignore_ascii_case("POST");
        let to_sign = string_to_sign(http_method, host, path, &borrowed, skip_at_values);
        let signature = sign(self.secret_key, self.method, &to_sign);
        out.push((SIGNATURE.to_owned(), signature));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"Gu5t9xGARNpq86cd98joQYCN3Cozk1qA";

    #[test]
    fn signature_method_param() {
        assert_eq!(
            SignatureMethod::from_param(Some("HmacSHA256")),
            SignatureMethod::HmacSha256
        );
        for other in [
            None,
            Some("HmacSHA1"),
            Some(""),
            Some("hmacsha256"),
            Some("HmacSHA512"),
        ] {
            assert_eq!(
                SignatureMethod::from_param(other),
                SignatureMethod::HmacSha1,
                "{other:?}"
            );
        }
        for m in [SignatureMethod::HmacSha1, SignatureMethod::HmacSha256] {
            assert_eq!(SignatureMethod::from_param(Some(m.as_param())), m);
        }
    }

    #[test]
    fn string_to_sign_rules() {
        let params = [
            ("b_c", "1"),
            ("Signature", "ignored"),
            ("a", "@x"),
            ("B", "2"),
            ("X.2", "x2"),
            ("X.12", "x12"),
        ];
        assert_eq!(
            string_to_sign("get", "h:8443", "/v2/index.php", &params, false),
            "GETh:8443/v2/index.php?B=2&X.12=x12&X.2=x2&a=@x&b.c=1"
        );
        assert_eq!(
            string_to_sign("POST", "h", "/p", &params, true),
            "POSTh/p?B=2&X.12=x12&X.2=x2&b.c=1"
        );
        assert_eq!(string_to_sign("GET", "h", "/p", &[], false), "GETh/p?");
    }

    #[test]
    fn colliding_canonical_keys_are_order_independent() {
        let a = [("a_b", "1"), ("a.b", "2"), ("a.b", "0")];
        let b = [("a.b", "0"), ("a_b", "1"), ("a.b", "2")];
        let expected = "GETh/p?a.b=0&a.b=2&a.b=1";
        assert_eq!(string_to_sign("GET", "h", "/p", &a, false), expected);
        assert_eq!(string_to_sign("GET", "h", "/p", &b, false), expected);
    }

    #[test]
    fn verify_rejects_malformed_without_panicking() {
        let sts = "GETh/p?a=1";
        let good = sign(KEY, SignatureMethod::HmacSha1, sts);
        assert!(verify(KEY, SignatureMethod::HmacSha1, sts, &good));
        let bad: Vec<String> = vec![
            String::new(),
            "=".into(),
            "not base64!".into(),
            "é".into(),
            "\0".into(),
            good[..good.len() - 4].into(),
            good.trim_end_matches('=').into(),
            format!("{good}="),
            format!(" {good}"),
            // A client that forgot to percent-encode '+' in a query string.
            good.replace('+', " "),
            sign(KEY, SignatureMethod::HmacSha256, sts),
            "A".repeat(10_000),
        ];
        for bad in bad.iter().filter(|b| **b != good) {
            assert!(!verify(KEY, SignatureMethod::HmacSha1, sts, bad), "{bad:?}");
        }
        assert!(!verify(KEY, SignatureMethod::HmacSha256, sts, &good));
        assert!(!verify(b"other key", SignatureMethod::HmacSha1, sts, &good));
    }

    #[test]
    fn empty_and_long_keys_work() {
        for key in [&b""[..], &[0xAB; 200][..]] {
            let s = sign(key, SignatureMethod::HmacSha256, "x");
            assert!(verify(key, SignatureMethod::HmacSha256, "x", &s));
        }
    }

    #[test]
    fn signer_debug_redacts_key() {
        let signer = Signer {
            secret_id: "AKIDexample",
            secret_key: b"super-secret-key",
            method: SignatureMethod::HmacSha1,
        };
        let shown = format!("{signer:?}");
        assert!(shown.contains("AKIDexample"));
        assert!(!shown.contains("super-secret-key"));
    }

    #[test]
    fn signer_owns_common_params() {
        let signer = Signer {
            secret_id: "AKIDexample",
            secret_key: KEY,
            method: SignatureMethod::HmacSha256,
        };
        let params = vec![
            ("Region".to_owned(), "evil".to_owned()),
            ("Signature".to_owned(), "stale".to_owned()),
            ("vpcId".to_owned(), "vpc-1".to_owned()),
        ];
        let out = signer.signed_params("GET", "h", "/p", "A", "gz", 1, 2, &params);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Action",
                "Region",
                "Timestamp",
                "Nonce",
                "SecretId",
                "SignatureMethod",
                "vpcId",
                "Signature"
            ]
        );
        assert_eq!(out[1].1, "gz");
        assert_eq!(out[5].1, "HmacSHA256");
    }
}
