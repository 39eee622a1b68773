//! The web console, served at `/console/` on the API's listeners (on by
//! default; `--console off` removes it).
//!
//! A person signs in with an API key pair or an account's console password
//! (`vpcd admin account password`), and gets pages for the VPCs, VPN
//! gateways, peer gateways, connections and tasks of their account in the
//! region they choose; connections update by themselves (the page's script
//! polls `state.json` twice a second). Every change goes through the v2
//! adapter's decoding into the same operations the APIs reach (`forms`), so
//! the console writes no rule of its own.
//!
//! # Layout
//! - this file: the routes, the handlers, the security headers.
//! - `session`: sign-in, sessions kept in the store (any vpcd of a cluster
//!   serves them), the cookie, the same-origin and CSRF checks.
//! - `forms`: a form's fields as v2 parameters, through the v2 decoding and
//!   dispatch; an error mapped back to its field.
//! - `pages`: the HTML (maud: every value escaped).
//! - `assets/`: the stylesheet and the script, compiled into the binary.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{middleware, Extension, Json, Router};
use maud::Markup;
use serde::Deserialize;
use serde_json::{json, Value};
use vpcd_store::{Order, Page, Scope};

use crate::api::ApiState;
use crate::error::ApiError;
use crate::ops::peer_config::list_vendors;
use crate::ops::{user_gw, vpc, vpn_conn, vpn_gw, Describe};
use crate::v2::Action;
use forms::{Form, Refusal};
use pages::{FormState, Frame};
use session::{SignInError, Signed};

mod forms;
mod pages;
pub(crate) mod session;

/// Marks a request that arrived over HTTPS (the HTTPS listener adds it), so
/// the session cookie is `Secure` there.
#[derive(Clone, Copy)]
pub(crate) struct OverTls;

type Tls = Option<Extension<OverTls>>;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Rows shown per list (the API's own page limit is 50; the console asks
/// the operation directly for more).
const LIST_LIMIT: u32 = 200;
/// Tasks shown on the task page.
const TASKS_SHOWN: u32 = 50;

/// The console's routes, or none when it is off.
pub(crate) fn router(api: ApiState) -> Router {
    if !api.settings.console.enabled {
        return Router::new();
    }
    let limit = api.settings.max_body_bytes;
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/vpcs", get(show_vpcs).post(create_vpc))
        .route("/console/vpcs/delete", post(delete_vpc))
        .route("/console/vpn-gws", get(show_vpn_gws).post(create_vpn_gw))
        .route("/console/vpn-gws/delete", post(delete_vpn_gw))
        .route("/console/user-gws", get(show_user_gws).post(create_user_gw))
        .route("/console/user-gws/delete", post(delete_user_gw))
        .route("/console/conns", get(show_conns).post(create_conn))
        .route("/console/conns/delete", post(delete_conn))
        .route("/console/conns/config", get(download_config))
        .route("/console/conns/diagnostics", get(show_diagnostics))
        .route("/console/tasks", get(show_tasks))
        .route("/console/state.json", get(state_json))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/{*rest}", any(not_found))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::map_response(security_headers))
        .with_state(api)
}

/// Headers on every console answer: scripts, styles and requests only from
/// the console itself, never framed, nothing cached (pages name resources
/// and carry a CSRF token), no referrer to other sites (`same-origin`:
/// `no-referrer` would make browsers send `Origin: null` on the console's
/// own forms).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn html(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

fn to_login() -> Response {
    see_other("/console/login")
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        pages::refused("Not found", "There is no such console page."),
    )
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
        .into_response()
}

// ---- regions and pages -------------------------------------------------------

#[derive(Deserialize)]
struct RegionQuery {
    region: Option<String>,
}

/// The region asked for (either spelling) in its stored form, or the first
/// region served.
fn region(api: &ApiState, asked: Option<&str>) -> String {
    let regions = &api.settings.regions;
    asked
        .and_then(|r| regions.canonical(r))
        .map(str::to_owned)
        .or_else(|| regions.list().first().map(|(_, code)| code.clone()))
        .unwrap_or_default()
}

/// The console's pages with a list and a form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PageKind {
    Vpcs,
    VpnGws,
    UserGws,
    Conns,
    Tasks,
}

impl PageKind {
    fn path(self) -> &'static str {
        match self {
            PageKind::Vpcs => "vpcs",
            PageKind::VpnGws => "vpn-gws",
            PageKind::UserGws => "user-gws",
            PageKind::Conns => "conns",
            PageKind::Tasks => "tasks",
        }
    }
}

fn all<F: Default>() -> Describe<F> {
    Describe {
        filter: F::default(),
        page: Page {
            offset: 0,
            limit: LIST_LIMIT,
            order: Order::CreateTime,
            descending: false,
        },
    }
}

/// What every page shows around its content.
fn frame<'a>(api: &ApiState, signed: &'a Signed, region: &'a str, kind: PageKind) -> Frame<'a> {
    Frame {
        account: &signed.account_name,
        region,
        regions: api.settings.regions.list(),
        csrf: signed.csrf(),
        page: kind.path(),
    }
}

/// Render a page with its data; `state` is a refused form to show again.
async fn render(
    api: &ApiState,
    signed: &Signed,
    region: &str,
    kind: PageKind,
    state: FormState,
    status: StatusCode,
) -> Response {
    let scope = signed.scope(region);
    let frame = frame(api, signed, region, kind);
    let page = match kind {
        PageKind::Vpcs => match vpc::describe_vpcs(api, &scope, all()).await {
            Ok(v) => Ok(pages::vpcs(&frame, &v.items, &state)),
            Err(e) => Err(e),
        },
        PageKind::VpnGws => {
            let (gws, vpcs) = tokio::join!(
                vpn_gw::describe_vpn_gws(api, &scope, all()),
                vpc::describe_vpcs(api, &scope, all())
            );
            gws.and_then(|g| vpcs.map(|v| pages::vpn_gws(&frame, &g.items, &v.items, &state)))
        }
        PageKind::UserGws => user_gw::describe_user_gws(api, &scope, all())
            .await
            .map(|g| pages::user_gws(&frame, &g.items, &state)),
        PageKind::Conns => {
            let (conns, vpcs, gws, ugws) = tokio::join!(
                vpn_conn::describe_conns(api, &scope, all()),
                vpc::describe_vpcs(api, &scope, all()),
                vpn_gw::describe_vpn_gws(api, &scope, all()),
                user_gw::describe_user_gws(api, &scope, all()),
            );
            match (conns, vpcs, gws, ugws) {
                (Ok(c), Ok(v), Ok(g), Ok(u)) => Ok(pages::conns(
                    &frame,
                    &pages::ConnsPage {
                        conns: &c.items,
                        vpcs: &v.items,
                        vpn_gws: &g.items,
                        user_gws: &u.items,
                        vendors: vendors(),
                    },
                    &state,
                )),
                (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => Err(e),
            }
        }
        PageKind::Tasks => match api.store.recent_tasks(&scope, TASKS_SHOWN).await {
            Ok(t) => Ok(pages::tasks(&frame, &t)),
            Err(e) => Err(crate::error::ApiError::from_store(
                e,
                crate::error::Field::TaskId,
            )),
        },
    };
    match page {
        Ok(m) => html(status, m),
        Err(e) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::refused("Not available", &e.v2_message()),
        ),
    }
}

/// (key, label) of every vendor GetVpnConnConfig writes for.
fn vendors() -> Vec<(&'static str, String)> {
    list_vendors()
        .items
        .iter()
        .map(|v| {
            (
                v.key,
                format!("{} {} ({})", v.vendorname, v.platform, v.software),
            )
        })
        .collect()
}

async fn show(api: ApiState, headers: HeaderMap, q: RegionQuery, kind: PageKind) -> Response {
    let Some(signed) = session::current(&api, &headers).await else {
        return to_login();
    };
    let region = region(&api, q.region.as_deref());
    render(
        &api,
        &signed,
        &region,
        kind,
        FormState::default(),
        StatusCode::OK,
    )
    .await
}

async fn home(State(api): State<ApiState>, headers: HeaderMap) -> Response {
    match session::current(&api, &headers).await {
        Some(_) => see_other("/console/conns"),
        None => to_login(),
    }
}

async fn show_vpcs(
    State(api): State<ApiState>,
    h: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    show(api, h, q, PageKind::Vpcs).await
}

async fn show_vpn_gws(
    State(api): State<ApiState>,
    h: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    show(api, h, q, PageKind::VpnGws).await
}

async fn show_user_gws(
    State(api): State<ApiState>,
    h: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    show(api, h, q, PageKind::UserGws).await
}

async fn show_conns(
    State(api): State<ApiState>,
    h: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    show(api, h, q, PageKind::Conns).await
}

async fn show_tasks(
    State(api): State<ApiState>,
    h: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    show(api, h, q, PageKind::Tasks).await
}

// ---- sign-in and sign-out -------------------------------------------------------

async fn login_page(State(api): State<ApiState>, headers: HeaderMap) -> Response {
    if session::current(&api, &headers).await.is_some() {
        return see_other("/console/conns");
    }
    html(StatusCode::OK, pages::login(None))
}

/// Shown for every refused sign-in, whatever was wrong.
const SIGN_IN_REFUSED: &str =
    "Sign-in failed: the credentials do not match an enabled API key or account password.";

async fn login(State(api): State<ApiState>, tls: Tls, headers: HeaderMap, body: Bytes) -> Response {
    let over_tls = tls.is_some();
    if !session::same_origin(&headers, over_tls) {
        return cross_origin();
    }
    let Ok(form) = Form::decode(&body) else {
        return html(StatusCode::BAD_REQUEST, pages::login(Some(SIGN_IN_REFUSED)));
    };
    let field = |k: &str| form.get(k).unwrap_or("");
    let signed_in = match field("mode") {
        "password" => session::with_password(&api, field("account"), field("password"))
            .await
            .map(|account| (account, None)),
        _ => session::with_key(&api, field("secretId"), field("secretKey"))
            .await
            .map(|(account, secret_id)| (account, Some(secret_id))),
    };
    let opened = match signed_in {
        Ok((account, secret_id)) => session::open(&api, account, secret_id, over_tls).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(cookie) => {
            let mut res = see_other("/console/conns");
            res.headers_mut().insert(header::SET_COOKIE, cookie);
            res
        }
        Err(SignInError::Refused) => {
            tracing::info!("console: a sign-in was refused");
            html(
                StatusCode::UNAUTHORIZED,
                pages::login(Some(SIGN_IN_REFUSED)),
            )
        }
        Err(SignInError::Unavailable) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::login(Some(
                "Sign-in is unavailable: the storage cannot be read; try again shortly.",
            )),
        ),
    }
}

async fn logout(
    State(api): State<ApiState>,
    tls: Tls,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let over_tls = tls.is_some();
    let post = match Post::check(&api, &headers, over_tls, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    session::close(&api, &post.signed).await;
    let mut res = to_login();
    res.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(over_tls));
    res
}

fn cross_origin() -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::refused(
            "Refused",
            "This form was not sent from the console's own page.",
        ),
    )
}

// ---- forms -----------------------------------------------------------------------

/// A state-changing form that passed the checks: same origin, a live
/// session, and the session's CSRF token.
struct Post {
    signed: Signed,
    form: Form,
    region: String,
}

impl Post {
    async fn check(
        api: &ApiState,
        headers: &HeaderMap,
        over_tls: bool,
        body: &[u8],
    ) -> Result<Post, Response> {
        if !session::same_origin(headers, over_tls) {
            return Err(cross_origin());
        }
        let Some(signed) = session::current(api, headers).await else {
            return Err(to_login());
        };
        let csrf_refused = || {
            html(
                StatusCode::FORBIDDEN,
                pages::refused(
                    "Refused",
                    "The form's security token is missing or out of date; reload the page and try again.",
                ),
            )
        };
        let form = Form::decode(body).map_err(|_| csrf_refused())?;
        if !session::csrf_ok(&signed, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let region = region(api, form.get("region"));
        Ok(Post {
            signed,
            form,
            region,
        })
    }
}

/// Form name of the refusals shown at the top of a page (deletes, downloads).
const PAGE_FORM: &str = "page";

/// Run `action` with the form and answer: back to the page's list on
/// success, the page again with the API's message next to the field on a
/// refusal. `form_name` names the form on the page (`PAGE_FORM` for the
/// small per-row forms).
async fn submit(
    api: &ApiState,
    post: Post,
    action: Action,
    kind: PageKind,
    form_name: &'static str,
    fields: &[&str],
) -> Response {
    let scope: Scope = post.signed.scope(&post.region);
    let result = match api.rate.admit(post.signed.account_id) {
        Ok(()) => forms::run(api, &scope, action, &post.form.v2_pairs()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other(&format!("/console/{}?region={}", kind.path(), post.region)),
        Err(e) => {
            let state = FormState {
                // Shown again, except what is secret.
                values: post
                    .form
                    .fields
                    .iter()
                    .filter(|(k, _)| k != "preSharedKey" && k != "csrf")
                    .cloned()
                    .collect(),
                refusal: Some(Refusal::of(&e, fields)),
                form: form_name,
            };
            render(
                api,
                &post.signed,
                &post.region,
                kind,
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

macro_rules! form_handler {
    ($name:ident, $action:ident, $kind:ident, $form:expr, $fields:expr) => {
        async fn $name(
            State(api): State<ApiState>,
            tls: Tls,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            match Post::check(&api, &headers, tls.is_some(), &body).await {
                Ok(post) => {
                    submit(&api, post, Action::$action, PageKind::$kind, $form, $fields).await
                }
                Err(r) => r,
            }
        }
    };
}

form_handler!(
    create_vpc,
    CreateVpc,
    Vpcs,
    "vpc",
    &["vpcName", "cidrBlock"]
);
form_handler!(delete_vpc, DeleteVpc, Vpcs, PAGE_FORM, &[]);
form_handler!(
    create_vpn_gw,
    RunVpnGw,
    VpnGws,
    "vpngw",
    &["vpcId", "name", "bandwidth"]
);
form_handler!(delete_vpn_gw, DeleteVpnGw, VpnGws, PAGE_FORM, &[]);
form_handler!(
    create_user_gw,
    AddUserGw,
    UserGws,
    "usergw",
    &["userGwName", "userGwAddr"]
);
form_handler!(delete_user_gw, DeleteUserGw, UserGws, PAGE_FORM, &[]);
form_handler!(create_conn, AddVpnConnEx, Conns, "conn", pages::CONN_FIELDS);
form_handler!(delete_conn, DeleteVpnConn, Conns, PAGE_FORM, &[]);

#[derive(Deserialize)]
struct ConfigQuery {
    region: Option<String>,
    #[serde(rename = "vpnConnId")]
    conn: Option<String>,
    vendor: Option<String>,
}

/// The peer's configuration file, through GetVpnConnConfig.
async fn download_config(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    let Some(signed) = session::current(&api, &headers).await else {
        return to_login();
    };
    let region = region(&api, q.region.as_deref());
    let conn = q.conn.unwrap_or_default();
    let mut pairs = vec![("vpnConnId".to_owned(), conn.clone())];
    // A vendor the list does not know goes to the action as its name, which
    // refuses it in its own words.
    let key = q.vendor.unwrap_or_default();
    match list_vendors().items.iter().find(|v| v.key == key) {
        Some(v) => pairs.extend([
            ("vendorname".to_owned(), v.vendorname.to_owned()),
            ("platform".to_owned(), v.platform.to_owned()),
            ("software".to_owned(), v.software.to_owned()),
        ]),
        None => pairs.push(("vendorname".to_owned(), key.clone())),
    }
    pairs.retain(|(_, v)| !v.is_empty());
    let scope = signed.scope(&region);
    match forms::run(&api, &scope, Action::GetVpnConnConfig, &pairs).await {
        Ok(data) => {
            let text = data["configFileInfo"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // The file name is made of a parsed connection id and a vendor key
            // of the list: no quoting needed.
            let vendor_key = if list_vendors().items.iter().any(|v| v.key == key) {
                key.as_str()
            } else {
                "peer"
            };
            let name = format!(
                "{}-{vendor_key}.conf",
                data["unVpnConnId"].as_str().unwrap_or("vpn")
            );
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                text,
            )
                .into_response()
        }
        Err(e) => refused_on_conns(&api, &signed, &region, &e).await,
    }
}

/// The connections page again, with an action's refusal at its top.
async fn refused_on_conns(api: &ApiState, signed: &Signed, region: &str, e: &ApiError) -> Response {
    let state = FormState {
        values: Default::default(),
        refusal: Some(Refusal::of(e, &[])),
        form: PAGE_FORM,
    };
    render(
        api,
        signed,
        region,
        PageKind::Conns,
        state,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Why a connection's tunnel is down, what it carries and its up/down
/// history: the vpcd extension DescribeVpnConnDiagnostics, through the
/// same decoding and operation as the APIs.
async fn show_diagnostics(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    let Some(signed) = session::current(&api, &headers).await else {
        return to_login();
    };
    let region = region(&api, q.region.as_deref());
    let mut pairs = vec![("vpnConnId".to_owned(), q.conn.unwrap_or_default())];
    pairs.retain(|(_, v)| !v.is_empty());
    let scope = signed.scope(&region);
    match forms::run(&api, &scope, Action::DescribeVpnConnDiagnostics, &pairs).await {
        Ok(data) => html(
            StatusCode::OK,
            pages::diagnostics(&frame(&api, &signed, &region, PageKind::Conns), &data),
        ),
        Err(e) => refused_on_conns(&api, &signed, &region, &e).await,
    }
}

// ---- live state ------------------------------------------------------------------

/// What the pages' script polls: each connection's state and health and
/// the newest tasks. No secret: no PSK, no settings.
async fn state_json(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<RegionQuery>,
) -> Response {
    let Some(signed) = session::current(&api, &headers).await else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "not signed in"})),
        )
            .into_response();
    };
    let region = region(&api, q.region.as_deref());
    let scope = signed.scope(&region);
    let (conns, tasks) = tokio::join!(
        vpn_conn::describe_conns(&api, &scope, all()),
        api.store.recent_tasks(&scope, TASKS_SHOWN)
    );
    let (Ok(conns), Ok(tasks)) = (conns, tasks) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "storage unavailable"})),
        )
            .into_response();
    };
    let conns: Vec<Value> = conns
        .items
        .iter()
        .map(|c| {
            json!({
                "id": c.un_id.to_string(),
                "status": pages::conn_status(c.status),
                "vpcConnStatus": c.status.code(),
                "netStatus": c.net_status.as_str(),
                "health": pages::health(c),
                "task": c.active_task.map(|t| format!("task {t} running")).unwrap_or_else(|| "—".into()),
            })
        })
        .collect();
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id.to_string(),
                "status": pages::task_status(t.status),
                "finished": t.finished_at.map(crate::clock::format_utc),
                "error": t.error.as_ref().map(|e| format!("{} {}", e.error_code, e.error_msg)),
            })
        })
        .collect();
    Json(json!({ "region": region, "conns": conns, "tasks": tasks })).into_response()
}
