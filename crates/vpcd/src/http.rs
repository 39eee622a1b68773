//! HTTP: the `/v2/index.php` endpoint and `/healthz`. The only module that
//! knows HTTP: it turns a request into decoded pairs for the protocol
//! adapter ([`crate::v2`]) and its answer into a response.
//!
//! Every answer of the API endpoint is HTTP 200 with the v2 envelope, since
//! real clients raise on any other status; bad input of any kind, including
//! an oversized body, becomes an envelope with code 4000.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::api::ApiState;
use crate::error::ApiError;
use crate::v2;
use crate::v2::protocol::{envelope_err, RawRequest};

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route(v2::PATH, any(api))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn ok_json(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

/// Refuse a request whose HTTP shape is wrong, naming what is wrong.
fn bad(what: &str, why: impl std::fmt::Display) -> Response {
    ok_json(envelope_err(&ApiError::invalid(what, why)))
}

async fn api(State(state): State<ApiState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = match parts.method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => return bad("method", "only GET and POST are supported"),
    };
    let Some(host) = host_header(&parts.headers) else {
        return bad(
            "Host",
            "the request has no valid Host header, which the signature covers",
        );
    };
    let limit = state.settings.max_body_bytes;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(q) = parts.uri.query() {
        pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
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
        let body = match read_limited(body, &parts.headers, limit).await {
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
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
    }
    let envelope = v2::protocol::handle(
        &state,
        RawRequest {
            method,
            host: &host,
            path: v2::PATH,
            pairs: &pairs,
        },
    )
    .await;
    ok_json(envelope)
}

fn host_header(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(header::HOST)?.to_str().ok()?;
    (!h.is_empty() && h.len() <= 255).then(|| h.to_owned())
}

/// Read at most `limit` bytes. A declared Content-Length over the limit is
/// refused before reading anything; an undeclared (chunked) body is cut off
/// as soon as it passes the limit, so an oversized body is never buffered.
/// The error is why the body is refused.
async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, String> {
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
    match limited.collect().await {
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
