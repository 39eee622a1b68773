//! The API 3.0 protocol around every action: the two request styles, their
//! signatures, the Timestamp window, replay protection, the RequestId and
//! the `{"Response": ...}` envelope.
//!
//! Two styles share the endpoint (reference `tencent-api3.md`):
//! - **TC3** (an `Authorization: TC3-HMAC-SHA256 ...` header): the common
//!   parameters are `X-TC-*` headers; the action's parameters are a JSON
//!   body (POST `application/json`, the SDKs' default), a form body (POST
//!   `application/x-www-form-urlencoded`) or the query string (GET). The
//!   signature is checked against the request exactly as received: the Host
//!   header as sent (tccli signs `http://127.0.0.1:PORT`), the raw query,
//!   the body bytes.
//! - **Form** (no `Authorization` header): GET query or POST form body with
//!   `Action`, `Version`, `Region`, `Timestamp`, `Nonce`, `SecretId`,
//!   `SignatureMethod` (`HmacSHA1`/`HmacSHA256`) and `Signature` among the
//!   action's fields, which are flattened (`Filters.0.Values.1`).
//!
//! # Replay protection
//! Every request must carry a Timestamp within the window
//! (`--timestamp-window`, default 300 s) of the server clock
//! (`AuthFailure.SignatureExpire`). Within it:
//! - a form request's `Nonce` is accepted once per SecretId (the store's
//!   nonce table, shared with v2);
//! - TC3 has no nonce, so for an action that **changes** something the
//!   signature itself is the nonce: the store remembers
//!   `tc3:<hex SHA-256 of the signature>` under the SecretId, and the same
//!   signed request seen again is refused. A signature covers the method,
//!   query, body, Content-Type, Host and second-granular timestamp, but not
//!   the `X-TC-Action`/`X-TC-Region` headers, so the key deliberately leaves
//!   the action out: a captured change cannot be replayed as another action
//!   either. Reads are answered every time: repeating an identical read in
//!   the same second is legitimate, and answers only the caller's own data
//!   to whoever holds the signed request.
//!
//! Temporary credentials (`X-TC-Token`, `Token`) are refused
//! (`AuthFailure.TokenFailure`): vpcd issues none.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use vpcd_auth::{form, tc3, SignatureMethod};
use vpcd_store::{ApiKey, Scope};

use super::params::{invalid, Params};
use super::{dispatch, Action, Ctx, SERVICE, VERSION};
use crate::answer::Answer;
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};
use crate::log_safe::{untrusted_text, Admit, RefusalGate};
use crate::request_id::{RequestId, RequestInfo};

/// One request as it arrived.
pub(crate) struct RawRequest<'a> {
    pub(crate) method: &'a str,
    /// The raw query string, without `?`.
    pub(crate) query: &'a str,
    /// Header names (any case) and values, as received.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    pub(crate) body: &'a [u8],
    /// Its id (the answer's `RequestId`), and where the action it names is
    /// noted for the request counters.
    pub(crate) info: &'a RequestInfo,
}

/// The common parameters of the form style; everything else is the
/// action's.
const FORM_COMMON: &[&str] = &[
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "SignatureMethod",
    "Signature",
    "RequestClient",
    "Language",
    "Token",
];

const LANGUAGES: &[&str] = &["zh-CN", "en-US"];

/// Refusals of requests whose signature did not verify are logged at most
/// this often a second (anyone can send them; see `log_safe`).
const UNSIGNED_REFUSALS_PER_SECOND: u32 = 20;

static UNSIGNED_REFUSALS: RefusalGate = RefusalGate::new(UNSIGNED_REFUSALS_PER_SECOND);

/// Handle a request end to end and return the envelope. Never fails: every
/// error becomes `Response.Error` with its code.
pub(crate) async fn handle(api: &ApiState, req: RawRequest<'_>) -> Answer {
    let request_id = req.info.id.as_str();
    let mut signed = false;
    match handle_inner(api, &req, request_id, &mut signed).await {
        Ok(mut fields) => {
            fields.insert("RequestId".to_owned(), Value::from(request_id));
            Answer::success(&json!({ "Response": fields }))
        }
        Err(e) => {
            // The message may quote the client: escaped and cut.
            let text = message(&e);
            let message = untrusted_text(&text);
            let code = e.code.v3_code();
            if e.code == ErrorCode::StorageUnavailable {
                // One log line per episode, not per request.
                api.storage.refused(e.why.log_detail());
                tracing::debug!(
                    request_id,
                    code,
                    "3.0 request refused: storage not writable"
                );
            } else if signed {
                tracing::info!(request_id, code, reason = %message, "3.0 request refused");
            } else if let Admit::Log { held_back } = UNSIGNED_REFUSALS.admit(Instant::now()) {
                tracing::info!(request_id, code, reason = %message, held_back, "refused an unsigned 3.0 request");
            }
            let envelope = json!({
                "Response": {
                    "Error": { "Code": code, "Message": text },
                    "RequestId": request_id,
                }
            });
            Answer::new(&envelope, code)
        }
    }
}

/// A refusal of a request that is not a valid 3.0 request at all (the HTTP
/// layer's), in the 3.0 envelope.
pub(crate) fn refuse(e: &ApiError, id: &RequestId) -> Answer {
    let code = e.code.v3_code();
    let envelope = json!({
        "Response": {
            "Error": { "Code": code, "Message": message(e) },
            "RequestId": id.as_str(),
        }
    });
    Answer::new(&envelope, code)
}

/// `param: why`, both spelled the 3.0 way.
fn message(e: &ApiError) -> String {
    let why = e.why.render(Field::v3_name);
    match &e.param {
        Some(p) => format!("{}: {why}", p.v3_name()),
        None => why,
    }
}

/// An authenticated request, ready to run.
struct Call {
    action: Action,
    scope: Scope,
    params: Params,
}

/// `signed` becomes true once the signature has verified.
async fn handle_inner(
    api: &ApiState,
    req: &RawRequest<'_>,
    request_id: &str,
    signed: &mut bool,
) -> ApiResult<Map<String, Value>> {
    if req.method != "GET" && req.method != "POST" {
        return Err(ApiError::wire(
            ErrorCode::UnsupportedProtocol,
            "method",
            "only GET and POST are supported",
        ));
    }
    let call = match header(req.headers, "Authorization")? {
        Some(authorization) => tc3_call(api, req, authorization, signed).await?,
        None => form_call(api, req, signed).await?,
    };
    let ctx = Ctx {
        scope: call.scope,
        request_id: request_id.to_owned(),
    };
    let answer = dispatch(api, &ctx, call.action, &call.params).await;
    if answer.is_ok() {
        tracing::debug!(action = call.action.name(), request_id, "ok");
    }
    answer
}

/// The one value of header `name` (any case); a header given twice is
/// refused.
fn header<'a>(headers: &[(&'a str, &'a str)], name: &str) -> ApiResult<Option<&'a str>> {
    let mut found = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim());
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(ApiError::wire(
            ErrorCode::MalformedParameter,
            name,
            "the header is given more than once",
        )),
    }
}

/// The media type of a Content-Type value, without parameters.
fn media_type(content_type: Option<&str>) -> &str {
    content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("")
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// Unix seconds, plain digits.
fn timestamp(param: &str, text: &str) -> ApiResult<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::wire(
            ErrorCode::MalformedParameter,
            param,
            "must be Unix seconds",
        ));
    }
    text.parse()
        .map_err(|_| ApiError::wire(ErrorCode::MalformedParameter, param, "must be Unix seconds"))
}

fn temporary_credentials(param: &str) -> ApiError {
    ApiError::wire(
        ErrorCode::TokenFailure,
        param,
        "vpcd issues no temporary credentials; sign with a SecretId and SecretKey",
    )
}

async fn tc3_call(
    api: &ApiState,
    req: &RawRequest<'_>,
    authorization: &str,
    signed: &mut bool,
) -> ApiResult<Call> {
    let auth = tc3::Authorization::parse(authorization).map_err(|e| {
        let msg = e.to_string();
        let why = msg.strip_prefix("Authorization: ").unwrap_or(&msg);
        ApiError::wire(ErrorCode::InvalidAuthorization, "Authorization", why)
    })?;
    if header(req.headers, "X-TC-Token")?.is_some() {
        return Err(temporary_credentials("X-TC-Token"));
    }
    if header(req.headers, "X-TC-Content-SHA256")?.is_some() {
        return Err(ApiError::wire(
            ErrorCode::InvalidAuthorization,
            "X-TC-Content-SHA256",
            "unsigned payloads are not accepted: the signature must cover the body",
        ));
    }
    let required = |name: &str| header(req.headers, name)?.ok_or_else(|| ApiError::missing(name));
    let action = required("X-TC-Action")?;
    note_action(req, action);
    let version = required("X-TC-Version")?;
    let region = required("X-TC-Region")?;
    let ts = timestamp("X-TC-Timestamp", required("X-TC-Timestamp")?)?;
    let language = header(req.headers, "X-TC-Language")?;

    // Where the action's parameters are: the query of a GET, the body of a
    // POST (TC3 signs no query on POST, so none may carry parameters).
    let content_type = header(req.headers, "Content-Type")?;
    let json_body = match req.method {
        "GET" => {
            if !req.body.is_empty() {
                return Err(invalid(
                    "request body",
                    "a GET request carries its parameters in the query string",
                ));
            }
            false
        }
        _ => {
            if !req.query.is_empty() {
                return Err(invalid(
                    "query string",
                    "a POST request carries its parameters in the body, which the signature covers",
                ));
            }
            match media_type(content_type) {
                t if t.eq_ignore_ascii_case(JSON) => true,
                t if t.eq_ignore_ascii_case(FORM) => false,
                _ => {
                    return Err(ApiError::wire(
                        ErrorCode::UnsupportedProtocol,
                        "Content-Type",
                        "TC3-HMAC-SHA256 POST bodies must be application/json or application/x-www-form-urlencoded",
                    ))
                }
            }
        }
    };

    let key = find_key(api, auth.secret_id()).await?;
    let request = tc3::Request {
        http_method: req.method,
        query: req.query,
        headers: req.headers,
        payload: req.body,
        timestamp: ts,
    };
    tc3::verify(key.secret_key.expose().as_bytes(), &auth, &request, SERVICE).map_err(|e| {
        use tc3::Tc3Error as E;
        let code = match e {
            E::Timestamp(_) => ErrorCode::SignatureExpire,
            E::MissingHeader(_) | E::RepeatedHeader(_) => ErrorCode::InvalidAuthorization,
            E::ScopeDate { .. } | E::ScopeService { .. } | E::Mismatch => ErrorCode::AuthFailure,
        };
        let msg = e.to_string();
        let (param, why) = msg.split_once(": ").unwrap_or(("Authorization", &msg));
        ApiError::wire(code, param, why)
    })?;
    *signed = true;
    let now = api.fresh(&key, ts, "X-TC-Timestamp")?;
    let (action, scope) = common(
        api,
        &key,
        Common {
            action: ("X-TC-Action", action),
            version: ("X-TC-Version", version),
            region: ("X-TC-Region", region),
            language: language.map(|l| ("X-TC-Language", l)),
        },
    )?;
    if action.writes() {
        let nonce = format!("tc3:{}", hex(&auth.signature_digest()));
        api.nonce(&key, &nonce, ts, now, true)
            .await
            .map_err(|e| match e.code {
                ErrorCode::RequestReplay => ApiError::wire(
                    ErrorCode::RequestReplay,
                    "Authorization",
                    "this signed request was already accepted; sign the change again to repeat it",
                ),
                _ => e,
            })?;
    }
    let params = if json_body {
        Params::from_json(req.body)?
    } else {
        let source = if req.method == "GET" {
            req.query.as_bytes()
        } else {
            req.body
        };
        Params::from_form(&decode_form(source)?)?
    };
    Ok(Call {
        action,
        scope,
        params,
    })
}

/// Strictly decoded form pairs (see [`vpcd_auth::form`]).
fn decode_form(bytes: &[u8]) -> ApiResult<Vec<(String, String)>> {
    form::decode(bytes).map_err(|e| {
        let msg = e.to_string();
        let (param, why) = msg.split_once(": ").unwrap_or(("request", &msg));
        invalid(param, why)
    })
}

async fn form_call(api: &ApiState, req: &RawRequest<'_>, signed: &mut bool) -> ApiResult<Call> {
    let mut pairs = decode_form(req.query.as_bytes())?;
    if req.method == "POST" {
        if !req.body.is_empty() {
            let content_type = header(req.headers, "Content-Type")?;
            if !media_type(content_type).eq_ignore_ascii_case(FORM) {
                return Err(ApiError::wire(
                    ErrorCode::UnsupportedProtocol,
                    "Content-Type",
                    "without an Authorization header, POST bodies must be application/x-www-form-urlencoded (HmacSHA1/HmacSHA256); JSON bodies need TC3-HMAC-SHA256",
                ));
            }
            pairs.extend(decode_form(req.body)?);
        }
    } else if !req.body.is_empty() {
        return Err(invalid(
            "request body",
            "a GET request carries its parameters in the query string",
        ));
    }
    // The signature joins decoded pairs; refuse those that join ambiguously.
    form::check_signable(&pairs).map_err(|e| {
        let msg = e.to_string();
        let why = msg.split_once(": ").map_or(msg.as_str(), |(_, w)| w);
        invalid(e.key(), why)
    })?;
    let get = |name: &str| -> ApiResult<Option<&str>> {
        let mut found = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(ApiError::wire(
                ErrorCode::MalformedParameter,
                name,
                "is given more than once",
            )),
            (v, None) => Ok(v.filter(|v| !v.is_empty())),
        }
    };
    let required = |name: &str| get(name)?.ok_or_else(|| ApiError::missing(name));
    if get("Token")?.is_some() {
        return Err(temporary_credentials("Token"));
    }
    let action = required("Action")?;
    note_action(req, action);
    let version = required("Version")?;
    let region = required("Region")?;
    let ts = timestamp("Timestamp", required("Timestamp")?)?;
    let nonce = required("Nonce")?;
    if nonce.len() > 19
        || !nonce.bytes().all(|b| b.is_ascii_digit())
        || nonce.parse::<i64>().map_or(true, |n| n <= 0)
    {
        return Err(ApiError::wire(
            ErrorCode::MalformedParameter,
            "Nonce",
            "must be a positive integer of at most 2^63-1",
        ));
    }
    let secret_id = required("SecretId")?;
    let signature = required("Signature")?;
    let method = match get("SignatureMethod")? {
        None | Some("HmacSHA1") => SignatureMethod::HmacSha1,
        Some("HmacSHA256") => SignatureMethod::HmacSha256,
        Some(_) => {
            return Err(invalid(
                "SignatureMethod",
                "expected HmacSHA1 or HmacSHA256",
            ))
        }
    };
    let language = get("Language")?;
    let host = header(req.headers, "Host")?.ok_or_else(|| {
        ApiError::wire(
            ErrorCode::MalformedParameter,
            "Host",
            "the request has no Host header, which the signature covers",
        )
    })?;

    let key = find_key(api, secret_id).await?;
    let to_verify: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let to_sign = vpcd_auth::api3_form_string_to_sign(req.method, host, &to_verify);
    if !vpcd_auth::verify(
        key.secret_key.expose().as_bytes(),
        method,
        &to_sign,
        signature,
    ) {
        return Err(ApiError::wire(
            ErrorCode::AuthFailure,
            "Signature",
            "the signature does not match the request",
        ));
    }
    *signed = true;
    let now = api.fresh(&key, ts, "Timestamp")?;
    let (action, scope) = common(
        api,
        &key,
        Common {
            action: ("Action", action),
            version: ("Version", version),
            region: ("Region", region),
            language: language.map(|l| ("Language", l)),
        },
    )?;
    // Checked after the signature, so nobody can burn another caller's nonces.
    api.nonce(&key, nonce, ts, now, action.writes()).await?;
    let own: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !FORM_COMMON.contains(&k.as_str()))
        .collect();
    Ok(Call {
        action,
        scope,
        params: Params::from_form(&own)?,
    })
}

async fn find_key(api: &ApiState, secret_id: &str) -> ApiResult<Arc<ApiKey>> {
    let unknown = || {
        ApiError::wire(
            ErrorCode::SecretIdNotFound,
            "SecretId",
            "the SecretId does not exist",
        )
    };
    if secret_id.len() > 128 || !secret_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unknown());
    }
    api.key(secret_id).await?.ok_or_else(unknown)
}

/// Note the action a request names, if it is one of ours, for the request
/// counters: before the signature is checked, so refusals count under the
/// action they were for.
fn note_action(req: &RawRequest<'_>, name: &str) {
    if let Ok(action) = Action::parse(name) {
        req.info.set_action(action.name());
    }
}

/// The common parameters both styles carry, each with the name it came
/// under.
struct Common<'a> {
    action: (&'a str, &'a str),
    version: (&'a str, &'a str),
    region: (&'a str, &'a str),
    language: Option<(&'a str, &'a str)>,
}

fn common(api: &ApiState, key: &ApiKey, c: Common<'_>) -> ApiResult<(Action, Scope)> {
    let action = Action::parse(c.action.1).map_err(|e| ApiError {
        param: Some(crate::error::Param::Wire(c.action.0.to_owned())),
        ..e
    })?;
    if c.version.1 != VERSION {
        return Err(ApiError::wire(
            ErrorCode::NoSuchVersion,
            c.version.0,
            format!("vpcd serves version {VERSION} of the vpc service"),
        ));
    }
    let region = api.settings.regions.canonical(c.region.1).ok_or_else(|| {
        ApiError::wire(
            ErrorCode::UnsupportedRegion,
            c.region.0,
            api.settings.regions.refusal(),
        )
    })?;
    if let Some((param, lang)) = c.language {
        if !LANGUAGES.contains(&lang) {
            return Err(invalid(param, "expected zh-CN or en-US"));
        }
    }
    Ok((
        action,
        Scope {
            account_id: key.account_id,
            region: region.to_owned(),
        },
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(media_type(Some("application/json; charset=utf-8")), JSON);
        assert_eq!(media_type(None), "");
    }
}
