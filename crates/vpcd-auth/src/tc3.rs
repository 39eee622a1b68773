//! TC3-HMAC-SHA256, API 3.0's signature (reference `tencent-api3.md`, "TC3-HMAC-SHA256").
//!
//! The server parses the `Authorization` header with [`Authorization::parse`], looks up the key of
//! [`Authorization::secret_id`], checks the timestamp window itself, and calls [`verify`] with the
//! request as received ([`Request`]). Clients build the header with [`Signer`].
//!
//! Choices where the public description and the SDKs leave room:
//! - The canonical headers follow the order of the `SignedHeaders` list (every SDK sends
//!   `content-type;host`, already sorted); names in the list must be lower-case and unique, and must
//!   include `content-type` and `host`, which the documentation makes mandatory.
//! - Header values are trimmed. The documentation also lower-cases them; tencentcloud-sdk-python
//!   does not. [`verify`] accepts either reading (it tries the lower-cased one only when it differs),
//!   so both kinds of client verify; the signer does what the SDK does.
//! - The timestamp signed is the decimal form of the caller's parsed `X-TC-Timestamp`, so a header
//!   with a leading `+` or zeros fails, as does a Credential date other than the timestamp's UTC date.
//! - A signed header that the request carries twice is refused rather than joined.
//!
//! # Layout
//! - [`Authorization`], [`AuthorizationError`]: the parsed header and why parsing failed.
//! - [`Request`], [`canonical_request`], [`string_to_sign`], [`signature`], [`utc_date`]: the steps.
//! - [`verify`], [`Tc3Error`]: the server side, in constant time.
//! - [`Signer`]: the client side.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::v2::hmac_sha256;

/// The algorithm name that opens the header and the string to sign.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The last element of the credential scope.
const TERMINATOR: &str = "tc3_request";
/// The headers every signer signs and every verifier requires.
const REQUIRED_HEADERS: [&str; 2] = ["content-type", "host"];
/// Bounds the work a caller can ask for; the SDKs sign two.
const MAX_SIGNED_HEADERS: usize = 16;
/// 9999-12-31T23:59:59Z: the last second whose date has the documented `YYYY-MM-DD` shape.
const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// A part of the `Authorization` header, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Credential,
    SignedHeaders,
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Credential => "Credential",
            Self::SignedHeaders => "SignedHeaders",
            Self::Signature => "Signature",
        })
    }
}

/// Why an `Authorization` header is not a well-formed TC3 header. Every variant answers
/// `AuthFailure.InvalidAuthorization` ("the Authorization header does not conform to the
/// Tencent Cloud standard"). Messages name the part, never the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("Authorization: must start with \"TC3-HMAC-SHA256 \"")]
    Algorithm,
    #[error(
        "Authorization: expected comma-separated Credential=..., SignedHeaders=..., Signature=..."
    )]
    Shape,
    #[error("Authorization: {0} is missing")]
    Missing(Part),
    #[error("Authorization: {0} appears more than once")]
    Repeated(Part),
    #[error("Authorization: Credential must be <SecretId>/<YYYY-MM-DD>/<service>/tc3_request")]
    CredentialShape,
    #[error("Authorization: the Credential SecretId must be non-empty printable ASCII")]
    SecretId,
    #[error("Authorization: the Credential date must be YYYY-MM-DD")]
    Date,
    #[error("Authorization: the Credential service must be lower-case letters, digits and '-'")]
    Service,
    #[error("Authorization: the Credential must end with /tc3_request")]
    Terminator,
    #[error("Authorization: SignedHeaders must be ';'-separated, lower-case, unique header names (at most 16)")]
    SignedHeaders,
    #[error("Authorization: SignedHeaders must include {0}")]
    RequiredHeader(&'static str),
    #[error("Authorization: Signature must be 64 hexadecimal digits")]
    Signature,
}

/// Why a well-formed TC3 request does not verify (or cannot be signed). The documented answer is
/// given per variant; messages never repeat the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tc3Error {
    /// The timestamp's UTC date is outside years 1970..=9999. The caller's window check, which
    /// answers `AuthFailure.SignatureExpire`, normally refuses such a request first; answer that too.
    #[error("X-TC-Timestamp: {0} is out of range")]
    Timestamp(i64),
    /// The Credential date is not the UTC date of the timestamp: `AuthFailure.SignatureFailure`.
    #[error("Authorization: the Credential date {scope} is not the UTC date of X-TC-Timestamp, {expected}")]
    ScopeDate { scope: String, expected: String },
    /// The Credential service is not the one this endpoint serves: `AuthFailure.SignatureFailure`.
    #[error("Authorization: the Credential service {scope:?} is not {expected:?}")]
    ScopeService { scope: String, expected: String },
    /// A header named in SignedHeaders is absent: `AuthFailure.InvalidAuthorization`.
    #[error("Authorization: the signed header {0} is missing from the request")]
    MissingHeader(String),
    /// A header named in SignedHeaders is present more than once: `AuthFailure.InvalidAuthorization`.
    #[error("Authorization: the signed header {0} appears more than once in the request")]
    RepeatedHeader(String),
    /// The signature is not the request's: `AuthFailure.SignatureFailure`.
    #[error("Authorization: the signature does not match the request")]
    Mismatch,
}

/// A parsed `Authorization: TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
///
/// Only [`Authorization::parse`] builds one, so every value has the checked shape. `Debug` leaves
/// the signature out.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    secret_id: String,
    date: String,
    service: String,
    signed_headers: Vec<String>,
    signature: [u8; 32],
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("secret_id", &self.secret_id)
            .field("date", &self.date)
            .field("service", &self.service)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

impl FromStr for Authorization {
    type Err = AuthorizationError;

    fn from_str(header: &str) -> Result<Self, Self::Err> {
        Self::parse(header)
    }
}

impl Authorization {
    /// Parse the header value. The three parts may come in any order, separated by commas with
    /// optional spaces or tabs around them (the SDKs write `", "`); each must appear exactly once.
    pub fn parse(header: &str) -> Result<Self, AuthorizationError> {
        let rest = header
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(AuthorizationError::Algorithm)?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for piece in rest.split(',') {
            let (name, value) = piece
                .trim_matches([' ', '\t'])
                .split_once('=')
                .ok_or(AuthorizationError::Shape)?;
            let (part, slot) = match name {
                "Credential" => (Part::Credential, &mut credential),
                "SignedHeaders" => (Part::SignedHeaders, &mut signed_headers),
                "Signature" => (Part::Signature, &mut signature),
                _ => return Err(AuthorizationError::Shape),
            };
            if slot.replace(value).is_some() {
                return Err(AuthorizationError::Repeated(part));
            }
        }
        let credential = credential.ok_or(AuthorizationError::Missing(Part::Credential))?;
        let signed_headers =
            signed_headers.ok_or(AuthorizationError::Missing(Part::SignedHeaders))?;
        let signature = signature.ok_or(AuthorizationError::Missing(Part::Signature))?;

        let (secret_id, date, service) = parse_credential(credential)?;
        Ok(Self {
            secret_id: secret_id.to_owned(),
            date: date.to_owned(),
            service: service.to_owned(),
            signed_headers: parse_signed_headers(signed_headers)?,
            signature: decode_hex_32(signature).ok_or(AuthorizationError::Signature)?,
        })
    }

    /// The SecretId whose key signed the request.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The credential scope's date, `YYYY-MM-DD` in shape (not checked against any clock here).
    pub fn date(&self) -> &str {
        &self.date
    }

    /// The credential scope's service, e.g. `vpc`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The signed header names, lower-case, in the order the client listed them.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }

    /// SHA-256 of the signature bytes: identifies one signed request (a replay cache's key, since
    /// TC3 has no nonce) without revealing the signature. Equal for every spelling of the header
    /// (hex case, part order, spacing), which a key over the raw header would not be.
    pub fn signature_digest(&self) -> [u8; 32] {
        Sha256::digest(self.signature).into()
    }
}

fn parse_credential(credential: &str) -> Result<(&str, &str, &str), AuthorizationError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let &[secret_id, date, service, terminator] = parts.as_slice() else {
        return Err(AuthorizationError::CredentialShape);
    };
    if secret_id.is_empty() || !secret_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthorizationError::SecretId);
    }
    let date_shaped = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !date_shaped {
        return Err(AuthorizationError::Date);
    }
    let service_shaped = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !service_shaped {
        return Err(AuthorizationError::Service);
    }
    if terminator != TERMINATOR {
        return Err(AuthorizationError::Terminator);
    }
    Ok((secret_id, date, service))
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, AuthorizationError> {
    let mut names: Vec<String> = Vec::new();
    for name in list.split(';') {
        let shaped = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !shaped || names.iter().any(|n| n == name) || names.len() == MAX_SIGNED_HEADERS {
            return Err(AuthorizationError::SignedHeaders);
        }
        names.push(name.to_owned());
    }
    for required in REQUIRED_HEADERS {
        if !names.iter().any(|n| n == required) {
            return Err(AuthorizationError::RequiredHeader(required));
        }
    }
    Ok(names)
}

/// The request as the server received it (or as a client is about to send it).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST` (upper-cased when signed).
    pub http_method: &'a str,
    /// The raw query string as received, without `?` (the SDK signs the query it sends, still
    /// percent-encoded). Signed only on GET: on POST the canonical query string is empty, so a
    /// POST adapter must not read parameters from the query.
    pub query: &'a str,
    /// The request's headers, names in any case, values as received. Must hold every signed
    /// header, `Host` exactly as received (tccli signs `http://127.0.0.1:PORT`) and `Content-Type`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body bytes as received. Hashed on GET too, where the SDK signs an empty body, so a GET
    /// body the client did not sign fails.
    pub payload: &'a [u8],
    /// `X-TC-Timestamp`, Unix seconds.
    pub timestamp: i64,
}

/// How signed header values enter the canonical request (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueCase {
    AsReceived,
    Lower,
}

/// The canonical request, header values as received (trimmed): method, `/`, canonical query,
/// canonical headers in `signed_headers` order, the `;`-joined names, hex SHA-256 of the payload.
pub fn canonical_request<S: AsRef<str>>(
    request: &Request<'_>,
    signed_headers: &[S],
) -> Result<String, Tc3Error> {
    canonical_request_as(request, signed_headers, ValueCase::AsReceived)
}

fn canonical_request_as<S: AsRef<str>>(
    request: &Request<'_>,
    signed_headers: &[S],
    case: ValueCase,
) -> Result<String, Tc3Error> {
    let method = request.http_method.to_ascii_uppercase();
    let query = if method == "GET" { request.query } else { "" };
    let mut out = format!("{method}\n/\n{query}\n");
    for name in signed_headers {
        let name = name.as_ref();
        let value = header_value(request.headers, name)?;
        out.push_str(name);
        out.push(':');
        match case {
            ValueCase::AsReceived => out.push_str(value),
            ValueCase::Lower => out.push_str(&value.to_ascii_lowercase()),
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(&hex(&Sha256::digest(request.payload)));
    Ok(out)
}

/// The single value of header `name` (case-insensitive), trimmed of spaces and tabs.
fn header_value<'a>(headers: &[(&str, &'a str)], name: &str) -> Result<&'a str, Tc3Error> {
    let mut found = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_matches([' ', '\t']));
    match (found.next(), found.next()) {
        (Some(value), None) => Ok(value),
        (None, _) => Err(Tc3Error::MissingHeader(name.to_owned())),
        (Some(_), Some(_)) => Err(Tc3Error::RepeatedHeader(name.to_owned())),
    }
}

/// `YYYY-MM-DD`, the UTC date of a Unix timestamp, as the credential scope carries it.
pub fn utc_date(timestamp: i64) -> Result<String, Tc3Error> {
    if !(0..=MAX_TIMESTAMP).contains(&timestamp) {
        return Err(Tc3Error::Timestamp(timestamp));
    }
    let date = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .map_err(|_| Tc3Error::Timestamp(timestamp))?
        .date();
    Ok(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// `TC3-HMAC-SHA256\n<timestamp>\n<date>/<service>/tc3_request\n<hex SHA-256 of canonical_request>`.
pub fn string_to_sign(
    timestamp: i64,
    date: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/{TERMINATOR}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The key for one date and service: HMAC-SHA256 chained from `"TC3" + secret_key`.
fn signing_key(secret_key: &[u8], date: &str, service: &str) -> [u8; 32] {
    let mut tc3_key = Vec::with_capacity(3 + secret_key.len());
    tc3_key.extend_from_slice(b"TC3");
    tc3_key.extend_from_slice(secret_key);
    let secret_date = hmac_sha256(&tc3_key, date.as_bytes());
    let secret_service = hmac_sha256(&secret_date, service.as_bytes());
    hmac_sha256(&secret_service, TERMINATOR.as_bytes())
}

/// The lower-case hex signature of `string_to_sign` for `date` and `service`.
pub fn signature(secret_key: &[u8], date: &str, service: &str, string_to_sign: &str) -> String {
    hex(&hmac_sha256(
        &signing_key(secret_key, date, service),
        string_to_sign.as_bytes(),
    ))
}

/// Verify a parsed header against the request as received.
///
/// Checks, in order: the timestamp has a date; the Credential date is the timestamp's UTC date;
/// the Credential service is `expected_service` (e.g. `vpc`); every signed header is present once;
/// the signature matches, compared in constant time. The timestamp window is the caller's.
pub fn verify(
    secret_key: &[u8],
    authorization: &Authorization,
    request: &Request<'_>,
    expected_service: &str,
) -> Result<(), Tc3Error> {
    let date = utc_date(request.timestamp)?;
    if authorization.date != date {
        return Err(Tc3Error::ScopeDate {
            scope: authorization.date.clone(),
            expected: date,
        });
    }
    if authorization.service != expected_service {
        return Err(Tc3Error::ScopeService {
            scope: authorization.service.clone(),
            expected: expected_service.to_owned(),
        });
    }
    let key = signing_key(secret_key, &date, expected_service);
    let matches = |canonical: &str| -> bool {
        let to_sign = string_to_sign(request.timestamp, &date, expected_service, canonical);
        let expected = hmac_sha256(&key, to_sign.as_bytes());
        expected.ct_eq(&authorization.signature).into()
    };
    let as_received = canonical_request_as(
        request,
        &authorization.signed_headers,
        ValueCase::AsReceived,
    )?;
    if matches(&as_received) {
        return Ok(());
    }
    // Whether the values have upper-case letters is not secret, so trying again leaks nothing.
    let lower = canonical_request_as(request, &authorization.signed_headers, ValueCase::Lower)?;
    if lower != as_received && matches(&lower) {
        return Ok(());
    }
    Err(Tc3Error::Mismatch)
}

/// A client-side TC3 signer, for `vpcd call`, the benchmark and tests. Signs `content-type;host`
/// with values as given, exactly as tencentcloud-sdk-python does. `Debug` redacts the key.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a [u8],
    /// The credential scope's service, e.g. `vpc`.
    pub service: &'a str,
}

impl fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("tc3::Signer")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("service", &self.service)
            .finish()
    }
}

impl Signer<'_> {
    /// The `Authorization` header value for `request`, whose headers must include `Content-Type`
    /// and `Host` as they will be sent (the action headers, `X-TC-*`, are not signed, as in the SDK).
    pub fn authorization(&self, request: &Request<'_>) -> Result<String, Tc3Error> {
        let date = utc_date(request.timestamp)?;
        let canonical = canonical_request(request, &REQUIRED_HEADERS)?;
        let to_sign = string_to_sign(request.timestamp, &date, self.service, &canonical);
        let signature = signature(self.secret_key, &date, self.service, &to_sign);
        Ok(format!(
            "{ALGORITHM} Credential={}/{date}/{}/{TERMINATOR}, SignedHeaders={}, Signature={signature}",
            self.secret_id,
            self.service,
            REQUIRED_HEADERS.join(";"),
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// 64 hex digits (either case) to 32 bytes.
fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c";

    fn header(credential: &str, signed: &str, signature: &str) -> String {
        format!("TC3-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}")
    }

    #[test]
    fn parse_accepts_the_sdk_shape_and_reorderings() {
        let good = header("AKIDx/2019-02-25/cvm/tc3_request", "content-type;host", SIG);
        let auth = Authorization::parse(&good).unwrap();
        assert_eq!(auth.secret_id(), "AKIDx");
        assert_eq!(auth.date(), "2019-02-25");
        assert_eq!(auth.service(), "cvm");
        assert_eq!(auth.signed_headers(), ["content-type", "host"]);
        assert_eq!(hex(&auth.signature), SIG);
        let reordered = format!(
            "TC3-HMAC-SHA256 Signature={},SignedHeaders=host;content-type;x-tc-action ,\tCredential=AKIDx/2019-02-25/cvm/tc3_request",
            SIG.to_uppercase()
        );
        let other: Authorization = reordered.parse().unwrap();
        assert_eq!(other.signature, auth.signature);
        assert_eq!(
            other.signed_headers(),
            ["host", "content-type", "x-tc-action"]
        );
        assert!(!format!("{auth:?}").contains(SIG));
        let dbg = format!("{auth:?}");
        assert!(
            dbg.contains("AKIDx") && dbg.contains("cvm") && dbg.contains("<redacted>"),
            "Debug shows the rest of the header: {dbg}"
        );
    }

    /// The replay-cache key is SHA-256 of the signature bytes: the same for
    /// every spelling of one signature, different for another signature.
    #[test]
    fn signature_digest_is_sha256_of_the_signature_bytes() {
        let cred = "AKIDx/2019-02-25/cvm/tc3_request";
        let auth = Authorization::parse(&header(cred, "content-type;host", SIG)).unwrap();
        let upper =
            Authorization::parse(&header(cred, "content-type;host", &SIG.to_uppercase())).unwrap();
        let want: [u8; 32] = Sha256::digest(auth.signature).into();
        assert_eq!(auth.signature_digest(), want);
        assert_eq!(upper.signature_digest(), want);
        let other_sig = format!("{}0", &SIG[..63]);
        let other = Authorization::parse(&header(cred, "content-type;host", &other_sig)).unwrap();
        assert_ne!(other.signature_digest(), want);
    }

    /// Error messages name the part of the header.
    #[test]
    fn parts_are_named_in_messages() {
        for (part, name) in [
            (Part::Credential, "Credential"),
            (Part::SignedHeaders, "SignedHeaders"),
            (Part::Signature, "Signature"),
        ] {
            assert_eq!(part.to_string(), name);
            assert_eq!(
                AuthorizationError::Missing(part).to_string(),
                format!("Authorization: {name} is missing")
            );
        }
    }

    #[test]
    fn parse_names_the_wrong_part() {
        use AuthorizationError as E;
        let cred = "AKIDx/2019-02-25/vpc/tc3_request";
        let ok_signed = "content-type;host";
        let cases: Vec<(String, E)> = vec![
            (String::new(), E::Algorithm),
            (format!("TC3-HMAC-SHA1 Credential={cred}"), E::Algorithm),
            (
                header(cred, ok_signed, SIG).replacen(' ', "", 1),
                E::Algorithm,
            ),
            (
                header(cred, ok_signed, SIG).replacen("TC3", "tc3", 1),
                E::Algorithm,
            ),
            (format!("{}, ", header(cred, ok_signed, SIG)), E::Shape),
            (
                format!("{}, Extra=1", header(cred, ok_signed, SIG)),
                E::Shape,
            ),
            (
                format!("TC3-HMAC-SHA256 Credential={cred}, Signature={SIG}"),
                E::Missing(Part::SignedHeaders),
            ),
            (
                format!("TC3-HMAC-SHA256 SignedHeaders={ok_signed}, Signature={SIG}"),
                E::Missing(Part::Credential),
            ),
            (
                format!("TC3-HMAC-SHA256 Credential={cred}, SignedHeaders={ok_signed}"),
                E::Missing(Part::Signature),
            ),
            (
                format!("{}, Signature={SIG}", header(cred, ok_signed, SIG)),
                E::Repeated(Part::Signature),
            ),
            (
                header("AKIDx/2019-02-25/vpc", ok_signed, SIG),
                E::CredentialShape,
            ),
            (
                header("AKID/x/2019-02-25/vpc/tc3_request", ok_signed, SIG),
                E::CredentialShape,
            ),
            (
                header("/2019-02-25/vpc/tc3_request", ok_signed, SIG),
                E::SecretId,
            ),
            (
                header("AK ID/2019-02-25/vpc/tc3_request", ok_signed, SIG),
                E::SecretId,
            ),
            (
                header("AKIDx/2019-2-25/vpc/tc3_request", ok_signed, SIG),
                E::Date,
            ),
            (
                header("AKIDx/2019/02/25/vpc/tc3_request", ok_signed, SIG),
                E::CredentialShape,
            ),
            (
                header("AKIDx/20190225xx/vpc/tc3_request", ok_signed, SIG),
                E::Date,
            ),
            (
                header("AKIDx/2019-02-25/VPC/tc3_request", ok_signed, SIG),
                E::Service,
            ),
            (
                header("AKIDx/2019-02-25//tc3_request", ok_signed, SIG),
                E::Service,
            ),
            (
                header("AKIDx/2019-02-25/vpc/tc3_requesT", ok_signed, SIG),
                E::Terminator,
            ),
            (header(cred, "content-type;;host", SIG), E::SignedHeaders),
            (header(cred, "Content-Type;host", SIG), E::SignedHeaders),
            (
                header(cred, "content-type;host;host", SIG),
                E::SignedHeaders,
            ),
            (header(cred, "content-type;host;a b", SIG), E::SignedHeaders),
            (header(cred, &["h"; 17].join(";"), SIG), E::SignedHeaders),
            (header(cred, "host", SIG), E::RequiredHeader("content-type")),
            (header(cred, "content-type", SIG), E::RequiredHeader("host")),
            (header(cred, ok_signed, &SIG[1..]), E::Signature),
            (header(cred, ok_signed, &format!("{SIG}0")), E::Signature),
            (
                header(cred, ok_signed, &SIG.replace('d', "g")),
                E::Signature,
            ),
            (header(cred, ok_signed, ""), E::Signature),
            (header(cred, ok_signed, &"é".repeat(32)), E::Signature),
        ];
        for (input, expected) in cases {
            let err = Authorization::parse(&input).unwrap_err();
            assert_eq!(err, expected, "{input:?}");
            assert!(!err.to_string().contains(SIG), "{err}");
        }
    }

    #[test]
    fn utc_date_edges() {
        assert_eq!(utc_date(0).unwrap(), "1970-01-01");
        assert_eq!(utc_date(1_551_113_065).unwrap(), "2019-02-25");
        assert_eq!(utc_date(951_782_399).unwrap(), "2000-02-28");
        assert_eq!(utc_date(951_782_400).unwrap(), "2000-02-29");
        assert_eq!(utc_date(1_700_006_399).unwrap(), "2023-11-14");
        assert_eq!(utc_date(1_700_006_400).unwrap(), "2023-11-15");
        assert_eq!(utc_date(MAX_TIMESTAMP).unwrap(), "9999-12-31");
        for bad in [-1, MAX_TIMESTAMP + 1, i64::MIN, i64::MAX] {
            assert_eq!(utc_date(bad), Err(Tc3Error::Timestamp(bad)));
        }
    }

    #[test]
    fn header_lookup_is_case_insensitive_trimmed_and_unique() {
        let headers = [
            ("Host", " h:1 \t"),
            ("CONTENT-TYPE", "a/b"),
            ("x", "1"),
            ("X", "2"),
        ];
        assert_eq!(header_value(&headers, "host"), Ok("h:1"));
        assert_eq!(header_value(&headers, "content-type"), Ok("a/b"));
        assert_eq!(
            header_value(&headers, "x"),
            Err(Tc3Error::RepeatedHeader("x".into()))
        );
        assert_eq!(
            header_value(&headers, "y"),
            Err(Tc3Error::MissingHeader("y".into()))
        );
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(decode_hex_32(&hex(&bytes)), Some(bytes));
        assert_eq!(decode_hex_32(&hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(decode_hex_32(&"+1".repeat(32)), None);
    }

    #[test]
    fn signer_debug_redacts_key() {
        let signer = Signer {
            secret_id: "AKIDexample",
            secret_key: b"super-secret-key",
            service: "vpc",
        };
        let shown = format!("{signer:?}");
        assert!(shown.contains("AKIDexample") && !shown.contains("super-secret-key"));
    }
}
