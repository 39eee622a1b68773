//! Request signing for the Tencent Cloud APIs vpcd serves: the v2 API's "signature v1", API 3.0's
//! TC3-HMAC-SHA256, and API 3.0's v1-style form signature (`HmacSHA1`/`HmacSHA256`).
//!
//! The server verifies every request with these functions; the `vpcd call` CLI and the benchmark
//! sign theirs with the signers. Everything here is a pure function of its inputs: no clock, no I/O,
//! no logging. Timestamp windows, nonce replay checks and looking up a SecretId's key belong to the
//! caller. No error message repeats a signature or a parameter value (a value may be a pre-shared
//! key); they name the parameter or the part of the header instead.
//!
//! Specifications: the project references `tencent-vpc-api.md` §3 (v2) and `tencent-api3.md` (3.0),
//! checked against the official SDKs' own signing code (the known-answer tests in `tests/`).
//!
//! # Layout
//! - `v2` (re-exported here): [`SignatureMethod`], [`string_to_sign`], [`sign`], [`verify`], the
//!   client [`Signer`], and [`api3_form_string_to_sign`], the 3.0 form signature, which is the same
//!   algorithm with path `/`.
//! - [`form`]: strict decoding of `application/x-www-form-urlencoded` input ([`form::decode`]),
//!   the check that the decoded pairs sign unambiguously ([`form::check_signable`]), and
//!   [`encode_form`] (re-exported here) for clients. Both form adapters (v2 and 3.0) run `decode`
//!   and `check_signable` before verifying.
//! - [`tc3`]: TC3-HMAC-SHA256: parsing the `Authorization` header, the canonical request, the string
//!   to sign, verification, and the client [`tc3::Signer`].

pub mod form;
pub mod tc3;
mod v2;

pub use form::encode_form;
pub use v2::{
    api3_form_string_to_sign, sign, string_to_sign, verify, SignatureMethod, Signer, API3_PATH,
};
