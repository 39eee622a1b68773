//! The v2 protocol around every action: common parameters, signature,
//! Timestamp window, Nonce replay, dispatch, and the JSON envelope.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use vpcd_auth::form::SignableError;
use vpcd_auth::SignatureMethod;
use vpcd_store::Scope;

use super::params::{parse_int, Params};
use super::{dispatch, Action, Reply};
use crate::answer::Answer;
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::log_safe::{untrusted, untrusted_text, Admit, RefusalGate};
use crate::request_id::RequestInfo;

/// One decoded request as it arrived.
pub(crate) struct RawRequest<'a> {
    /// `GET` or `POST`.
    pub(crate) method: &'a str,
    /// The Host header exactly as received (with `:port` if the client sent it).
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    /// Decoded pairs in wire order.
    pub(crate) pairs: &'a [(String, String)],
    /// Where the action it names is noted for the request counters.
    pub(crate) info: &'a RequestInfo,
}

/// Log lines a second for refusals of requests that never proved who sent
/// them: anyone reaching the port can cause those, as fast as they like.
const UNSIGNED_REFUSALS_PER_SECOND: u32 = 20;

static UNSIGNED_REFUSALS: RefusalGate = RefusalGate::new(UNSIGNED_REFUSALS_PER_SECOND);

/// Handle a request end to end and return the envelope. Never fails: every
/// error becomes an envelope with its code.
pub(crate) async fn handle(api: &ApiState, req: RawRequest<'_>) -> Answer {
    let field = |name: &str| {
        req.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    // Counted under the action it names (one of ours), refused or not.
    if let Ok(known) = Action::parse(field("Action")) {
        req.info.set_action(known.name());
    }
    // Every string here is the client's: escaped and cut before logging.
    let action = untrusted(field("Action"));
    let mut signed = false;
    match handle_inner(api, &req, &mut signed).await {
        Ok(reply) => {
            tracing::debug!(%action, "ok");
            Answer::success(&Success(&reply))
        }
        Err(e) => {
            let text = e.v2_message();
            let message = untrusted_text(&text);
            let (code, code_desc) = (e.code.v2_code(), e.code.code_desc());
            if e.code == ErrorCode::StorageUnavailable {
                // One log line per episode, not per request.
                api.storage.refused(e.why.log_detail());
                tracing::debug!(%action, code, code_desc, "refused: storage not writable");
            } else if signed {
                tracing::info!(%action, code, code_desc, reason = %message, "refused");
            } else {
                match UNSIGNED_REFUSALS.admit(std::time::Instant::now()) {
                    Admit::Log { held_back } => {
                        let secret_id = untrusted(field("SecretId"));
                        tracing::info!(%action, %secret_id, code, code_desc, reason = %message, held_back, "refused an unsigned request");
                    }
                    Admit::Drop => {}
                }
            }
            refuse(&e)
        }
    }
}

/// `signed` becomes true once the signature has verified.
async fn handle_inner(api: &ApiState, req: &RawRequest<'_>, signed: &mut bool) -> ApiResult<Reply> {
    // Before anything else reads the pairs: two different parameter sets
    // must never share a string to sign (issue 11, finding 5).
    vpcd_auth::form::check_signable(req.pairs).map_err(|e| match e {
        SignableError::Name { key } => ApiError::invalid(
            &untrusted(&key).to_string(),
            "not a parameter name (ASCII letters, digits, '.', '_', '-')",
        ),
        SignableError::Value { key } => ApiError::invalid(
            &key,
            "the value must not contain '&' followed by a parameter name and '='",
        ),
    })?;
    let params = Params::decode(req.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let scope = authenticate(api, req, &params).await?;
    *signed = true;
    let action = Action::parse(params.req_str("Action")?)?;
    dispatch(api, &scope, action, &params).await
}

/// Check the common parameters and the signature; answer the caller's scope.
async fn authenticate(api: &ApiState, req: &RawRequest<'_>, p: &Params) -> ApiResult<Scope> {
    p.req_str("Action")?;
    // Either spelling (`gz`, `ap-guangzhou`); resources live under the
    // canonical one, which both protocols share.
    let region = p.req_str("Region")?;
    let region = api.settings.regions.canonical(region).ok_or_else(|| {
        ApiError::wire(
            ErrorCode::UnsupportedRegion,
            "Region",
            api.settings.regions.refusal(),
        )
    })?;
    let secret_id = p.req_str("SecretId")?;
    if secret_id.len() > 128 || !secret_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unknown_secret_id());
    }
    let timestamp = p.req_str("Timestamp")?;
    let timestamp = parse_int(timestamp)
        .filter(|t| *t >= 0)
        .ok_or_else(|| ApiError::invalid("Timestamp", "must be Unix seconds"))?;
    let nonce = p.req_str("Nonce")?;
    if nonce.len() > 19
        || !nonce.bytes().all(|b| b.is_ascii_digit())
        || nonce.parse::<i64>().map_or(true, |n| n <= 0)
    {
        return Err(ApiError::invalid(
            "Nonce",
            "must be a positive integer of at most 2^63-1",
        ));
    }
    let signature = p.req_str("Signature")?;
    let method = SignatureMethod::from_param(p.raw("SignatureMethod"));

    let key = api.key(secret_id).await?.ok_or_else(unknown_secret_id)?;

    let pairs: Vec<(&str, &str)> = req
        .pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The official SDK leaves `@`-prefixed values out of the POST signature
    // (a file-upload convention). Such a request verifies only that way.
    // Accepting such a value would let it be changed in transit, so a POST
    // carrying one is refused.
    let skip_at = req.method == "POST";
    if skip_at {
        if let Some((k, _)) = req.pairs.iter().find(|(_, v)| v.starts_with('@')) {
            return Err(ApiError::invalid(
                k,
                "values starting with '@' are not covered by the v2 signature on POST; send this request with GET",
            ));
        }
    }
    let to_sign = vpcd_auth::string_to_sign(req.method, req.host, req.path, &pairs, skip_at);
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
    let now = api.fresh(&key, timestamp, "Timestamp")?;
    // An unknown action is refused right after; counted as a change here.
    let writes = Action::parse(p.req_str("Action")?).map_or(true, Action::writes);
    // Checked after the signature, so nobody can burn another caller's nonces.
    api.nonce(&key, nonce, timestamp, now, writes).await?;
    Ok(Scope {
        account_id: key.account_id,
        region: region.to_owned(),
    })
}

/// A success's envelope: `code`, `message` and `codeDesc`, then the reply's
/// fields (reference §4), the payload already rendered.
struct Success<'a>(&'a Reply);

impl Serialize for Success<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("code", &0)?;
        m.serialize_entry("message", "")?;
        m.serialize_entry("codeDesc", "Success")?;
        match self.0 {
            Reply::Data(v) => m.serialize_entry("data", v)?,
            Reply::List { total, items } => {
                m.serialize_entry("totalCount", total)?;
                m.serialize_entry("data", items)?;
            }
            Reply::TopLevel(fields) => {
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
            }
        }
        m.end()
    }
}

/// A refusal, as the client gets it.
pub(crate) fn refuse(e: &ApiError) -> Answer {
    Answer::new(&envelope_err(e), e.code.code_desc())
}

pub(crate) fn envelope_err(e: &ApiError) -> Value {
    json!({ "code": e.code.v2_code(), "message": e.v2_message(), "codeDesc": e.code.code_desc() })
}

fn unknown_secret_id() -> ApiError {
    ApiError::wire(
        ErrorCode::SecretIdNotFound,
        "SecretId",
        "the SecretId does not exist",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(answer: Answer) -> String {
        String::from_utf8(answer.into_body()).unwrap()
    }

    /// v2 clients read the envelope in this order; the payload is the
    /// typed struct's rendering, field order kept.
    #[test]
    fn a_success_renders_the_envelope_then_the_payload_in_order() {
        #[derive(Serialize)]
        struct Item {
            z: u32,
            a: &'static str,
        }
        let data = Reply::data(Item { z: 1, a: "x\"y" }).unwrap();
        assert_eq!(
            text(Answer::success(&Success(&data))),
            r#"{"code":0,"message":"","codeDesc":"Success","data":{"z":1,"a":"x\"y"}}"#
        );
        let list = Reply::list(7, [Item { z: 2, a: "b" }].into_iter()).unwrap();
        assert_eq!(
            text(Answer::success(&Success(&list))),
            r#"{"code":0,"message":"","codeDesc":"Success","totalCount":7,"data":[{"z":2,"a":"b"}]}"#
        );
        let top = Reply::top_level(Item { z: 3, a: "c" }).unwrap();
        assert_eq!(
            text(Answer::success(&Success(&top))),
            r#"{"code":0,"message":"","codeDesc":"Success","z":3,"a":"c"}"#
        );
    }

    #[test]
    fn a_refusal_is_counted_under_its_code_desc() {
        let e = ApiError::invalid("limit", "too big");
        let answer = refuse(&e);
        assert_eq!(answer.code(), "InvalidParameter");
        let v: Value = serde_json::from_slice(&answer.into_body()).unwrap();
        assert_eq!(v["code"], 4000);
        assert_eq!(v["codeDesc"], "InvalidParameter");
    }
}
