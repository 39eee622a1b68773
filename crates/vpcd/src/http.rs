//! HTTP: the v2 endpoint (`/v2/index.php`), the API 3.0 endpoint (`/`) and
//! `/healthz`. The only module that knows HTTP: it hands each protocol
//! adapter ([`crate::v2`], [`crate::v3`]) the request's parts and turns its
//! answer into a response.
//!
//! Every answer of an API endpoint is HTTP 200 with `Content-Type:
//! application/json` exactly (the 3.0 SDKs take anything else, even with a
//! charset, for a success), since real clients raise on any other status;
//! bad input of any kind, including an oversized body, becomes an envelope
//! with the protocol's error code.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::answer::Answer;
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::{ApiError, ErrorCode, Why};
use crate::metrics::Protocol;
use crate::request_id::RequestInfo;
use crate::settings::Settings;
use crate::storage_health::Readiness;
use crate::v2;
use crate::v2::protocol::{refuse as refuse_v2, RawRequest};
use crate::v3;

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route(v2::PATH, any(api))
        .route(v3::PATH, any(api3))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(crate::console::router(state))
}

/// Liveness: the process serves HTTP.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 while the storage takes writes, 503 with
/// `"storage not writable"` (and since when) during a storage fault; reads
/// are still served then.
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.storage.readiness() {
        Readiness::Ready => ok_json(json!({ "status": "ready" })),
        Readiness::NotWritable { since } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "storage not writable", "since": format_utc(since) })),
        )
            .into_response(),
    }
}

fn ok_json(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

/// An API answer: HTTP 200, `Content-Type: application/json` exactly.
fn answered(answer: Answer) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.into_body(),
    )
        .into_response()
}

/// Refuse a request whose HTTP shape is wrong, naming what is wrong.
fn bad(what: &str, why: impl std::fmt::Display) -> Answer {
    refuse_v2(&ApiError::invalid(what, why))
}

/// An error envelope for a request that ran out of time, in the
/// protocol's own shape.
fn timed_out(limit: std::time::Duration) -> ApiError {
    ApiError {
        code: ErrorCode::InternalError,
        param: None,
        why: Why::text(format!(
            "the request was not completed within {} ms; a change may still have been applied, \
             so read the state before retrying",
            limit.as_millis()
        )),
    }
}

/// Run one API request in its span (every log line it causes carries its
/// `request_id`), bounded by the request timeout, and count it.
async fn instrumented<F>(
    state: &ApiState,
    protocol: Protocol,
    info: &RequestInfo,
    handle: F,
    timed_out_envelope: impl FnOnce(&ApiError) -> Answer,
) -> Response
where
    F: std::future::Future<Output = Answer>,
{
    use tracing::Instrument as _;
    let started = std::time::Instant::now();
    let limit = state.settings.request_timeout;
    let answer = match tokio::time::timeout(limit, handle)
        .instrument(info.span(protocol.label()))
        .await
    {
        Ok(answer) => answer,
        Err(_) => timed_out_envelope(&timed_out(limit)),
    };
    state
        .requests
        .observe(protocol, info, answer.code(), started.elapsed());
    answered(answer)
}

async fn api(State(state): State<ApiState>, req: Request) -> Response {
    let info = RequestInfo::new();
    let handle = api_v2(&state, req, &info);
    instrumented(&state, Protocol::V2, &info, handle, refuse_v2).await
}

async fn api_v2(state: &ApiState, req: Request, info: &RequestInfo) -> Answer {
    let (parts, body) = req.into_parts();
    let method = match parts.method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => return bad("method", "only GET and POST are supported"),
    };
    let host = match request_host(&parts) {
        Ok(h) => h,
        Err(why) => return bad("Host", why),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(q) = parts.uri.query() {
        match decode_form(q.as_bytes()) {
            Ok(p) => pairs.extend(p),
            Err(e) => return refuse_v2(&e),
        }
    }
    if method == "POST" {
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let body = match read_limited(body, &parts.headers, &state.settings).await {
            Ok(b) => b,
            Err(why) => return bad("request body", why),
        };
        if !body.is_empty() {
            if !is_form {
                return bad(
                    "Content-Type",
                    "POST bodies must be application/x-www-form-urlencoded",
                );
            }
            match decode_form(&body) {
                Ok(p) => pairs.extend(p),
                Err(e) => return refuse_v2(&e),
            }
        }
    }
    v2::protocol::handle(
        state,
        RawRequest {
            method,
            host: &host,
            path: v2::PATH,
            pairs: &pairs,
            info,
        },
    )
    .await
}

/// Strict form decoding: a key or value that is not UTF-8 after
/// percent-decoding is refused rather than signed as U+FFFD (issue 11).
fn decode_form(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    use vpcd_auth::form::DecodeError;
    vpcd_auth::form::decode(input).map_err(|e| match e {
        DecodeError::Key { raw } => ApiError::invalid(
            &raw,
            "the parameter name is not valid UTF-8 after percent-decoding",
        ),
        DecodeError::Value { key } => {
            ApiError::invalid(&key, "the value is not valid UTF-8 after percent-decoding")
        }
    })
}

/// The host the client addressed, which the signature covers: the Host
/// header (HTTP/1.1) or `:authority` (HTTP/2, where it arrives in the URI).
/// When both are present they must agree.
fn request_host(parts: &axum::http::request::Parts) -> Result<String, &'static str> {
    let header = match parts.headers.get(header::HOST) {
        Some(v) => Some(v.to_str().map_err(|_| "the Host header is not text")?),
        None => None,
    };
    let authority = parts.uri.authority().map(|a| a.as_str());
    let host = match (header, authority) {
        (Some(h), Some(a)) if h != a => return Err("the Host header and :authority disagree"),
        (Some(h), _) | (None, Some(h)) => h,
        (None, None) => "",
    };
    if host.is_empty() || host.len() > 255 {
        return Err(
            "the request has no valid Host header or :authority, which the signature covers",
        );
    }
    Ok(host.to_owned())
}

async fn api3(State(state): State<ApiState>, req: Request) -> Response {
    let info = RequestInfo::new();
    let handle = api_v3(&state, req, &info);
    let refuse = |e: &ApiError| v3::protocol::refuse(e, &info.id);
    instrumented(&state, Protocol::V3, &info, handle, refuse).await
}

async fn api_v3(state: &ApiState, req: Request, info: &RequestInfo) -> Answer {
    let (parts, body) = req.into_parts();
    let body = match read_limited(body, &parts.headers, &state.settings).await {
        Ok(b) => b,
        Err(why) => {
            return v3::protocol::refuse(&ApiError::invalid("request body", why), &info.id);
        }
    };
    // The host the client signed: the Host header, or HTTP/2's :authority
    // (the two must agree), exactly as sent.
    let host = match request_host(&parts) {
        Ok(h) => h,
        Err(why) => {
            return v3::protocol::refuse(&ApiError::invalid("Host", why), &info.id);
        }
    };
    // Values that are not visible ASCII cannot be signed headers; leaving
    // them out makes a signature over them fail as a missing header.
    let mut headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    if !parts.headers.contains_key(header::HOST) {
        headers.push(("host", &host));
    }
    v3::protocol::handle(
        state,
        v3::protocol::RawRequest {
            method: parts.method.as_str(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
            info,
        },
    )
    .await
}

/// Read at most `limit` bytes within the body-read timeout. A declared
/// Content-Length over the limit is refused before reading anything; an
/// undeclared (chunked) body is cut off as soon as it passes the limit, so
/// an oversized body is never buffered. The error is why the body is
/// refused; the connection is then closed (hyper does not reuse a
/// connection whose request body was not read to its end).
async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    settings: &Settings,
) -> Result<bytes::Bytes, String> {
    let limit = settings.max_body_bytes;
    let too_big = || format!("larger than the limit of {limit} bytes");
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_big());
        }
    }
    let limited = http_body_util::Limited::new(body, limit);
    let timeout = settings.body_read_timeout;
    let Ok(collected) = tokio::time::timeout(timeout, limited.collect()).await else {
        return Err(format!(
            "was not received within {} ms",
            timeout.as_millis()
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_big())
        }
        Err(_) => Err("could not be read".to_owned()),
    }
}
