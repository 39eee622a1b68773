//! The console's HTML, rendered on the server with maud (every value is
//! escaped). Pages are small: a table of the resources and the form that
//! creates one. No page carries a secret: PSKs and SecretKeys are never
//! rendered (the PSK field is write-only), and the session token never
//! leaves its HttpOnly cookie (forms carry a CSRF token derived from it).

use std::collections::HashMap;

use maud::{display, html, Markup, DOCTYPE};
use vpcd_store::{Task, UserGw, Vpc, VpnConn, VpnGw};
use vpcd_types::{
    AuthAlgorithm, ConnStatus, DhGroup, ExchangeMode, IdentityType, IkeEncryption, IpsecEncryption,
    NetStatus, PfsGroup, TaskStatus,
};

use super::forms::Refusal;
use crate::clock::format_utc;
use crate::ops::conn_settings::Defaults;
use crate::v2::CONN_DEFAULTS;

/// What every signed-in page shows around its content.
pub(crate) struct Frame<'a> {
    pub(crate) account: &'a str,
    pub(crate) region: &'a str,
    /// (name, code) of every region served.
    pub(crate) regions: Vec<(String, String)>,
    pub(crate) csrf: String,
    /// The page's path under `/console/`.
    pub(crate) page: &'a str,
}

/// A form as last submitted (values to show again) and why it was refused.
#[derive(Default)]
pub(crate) struct FormState {
    pub(crate) values: HashMap<String, String>,
    pub(crate) refusal: Option<Refusal>,
    /// Which form of the page the state belongs to.
    pub(crate) form: &'static str,
}

impl FormState {
    fn value(&self, form: &str, name: &str) -> &str {
        if self.form != form {
            return "";
        }
        self.values.get(name).map_or("", String::as_str)
    }

    fn error_for(&self, form: &str, name: &str) -> Option<&Refusal> {
        self.refusal
            .as_ref()
            .filter(|r| self.form == form && r.field.as_deref() == Some(name))
    }

    fn form_error(&self, form: &str) -> Option<&Refusal> {
        self.refusal
            .as_ref()
            .filter(|r| self.form == form && r.field.is_none())
    }
}

const NAV: &[(&str, &str)] = &[
    ("vpcs", "VPCs"),
    ("vpn-gws", "VPN gateways"),
    ("user-gws", "Peer gateways"),
    ("conns", "Connections"),
    ("tasks", "Tasks"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · vpcd console" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

pub(crate) fn layout(f: &Frame<'_>, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-region=(f.region) data-page=(f.page) {
                header {
                    strong.brand { "vpcd console" }
                    nav {
                        @for (path, label) in NAV {
                            a href={ "/console/" (path) "?region=" (f.region) }
                              class=[(*path == f.page).then_some("active")] { (label) }
                        }
                    }
                    form.region method="get" action={ "/console/" (f.page) } {
                        label for="region-select" { "Region" }
                        select id="region-select" name="region" {
                            @for (name, code) in &f.regions {
                                option value=(code) selected[code == f.region] {
                                    (name) @if name != code { " (" (code) ")" }
                                }
                            }
                        }
                        button type="submit" { "Switch" }
                    }
                    span.account { "Signed in as " strong { (f.account) } }
                    form method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(f.csrf);
                        button type="submit" id="logout" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

fn hidden(f: &Frame<'_>) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(f.csrf);
        input type="hidden" name="region" value=(f.region);
    }
}

fn form_error(state: &FormState, form: &str) -> Markup {
    html! {
        @if let Some(r) = state.form_error(form) {
            p.error.form-error role="alert" data-code=(r.code_desc) { (r.message) }
        }
    }
}

/// One labelled field with the API's message under it when it was refused.
fn field(state: &FormState, form: &str, name: &str, label: &str, input: Markup) -> Markup {
    let err = state.error_for(form, name);
    html! {
        div.field.invalid[err.is_some()] {
            label for={ (form) "-" (name) } { (label) }
            (input)
            @if let Some(r) = err {
                p.error role="alert" data-error-for=(name) data-code=(r.code_desc) { (r.message) }
            }
        }
    }
}

fn text(state: &FormState, form: &str, name: &str, label: &str, placeholder: &str) -> Markup {
    let input = html! {
        input type="text" id={ (form) "-" (name) } name=(name)
            value=(state.value(form, name)) placeholder=(placeholder);
    };
    field(state, form, name, label, input)
}

/// A select of `options`, `default` marked and chosen unless the form said
/// otherwise.
fn choice(
    state: &FormState,
    form: &str,
    name: &str,
    label: &str,
    options: &[&str],
    default: &str,
) -> Markup {
    let chosen = match state.value(form, name) {
        "" => default,
        v => v,
    };
    let input = html! {
        select id={ (form) "-" (name) } name=(name) {
            @for o in options {
                option value=(o) selected[*o == chosen] {
                    (o) @if *o == default { " (default)" }
                }
            }
        }
    };
    field(state, form, name, label, input)
}

fn delete_button(f: &Frame<'_>, action: &str, fields: &[(&str, &str)], what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (hidden(f))
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button.danger type="submit" title={ "Delete " (what) } { "Delete" }
        }
    }
}

fn empty_row(cols: usize, what: &str) -> Markup {
    html! { tr { td.empty colspan=(cols) { "No " (what) " in this region yet." } } }
}

// ---- sign-in ---------------------------------------------------------------------

pub(crate) fn login(message: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.login {
                main {
                    h1 { "vpcd console" }
                    @if let Some(m) = message { p.error.form-error role="alert" id="login-error" { (m) } }
                    section {
                        h2 { "Sign in with an API key" }
                        form method="post" action="/console/login" id="login-key" {
                            input type="hidden" name="mode" value="key";
                            div.field {
                                label for="secret-id" { "SecretId" }
                                input type="text" id="secret-id" name="secretId" autocomplete="username" required;
                            }
                            div.field {
                                label for="secret-key" { "SecretKey" }
                                input type="password" id="secret-key" name="secretKey" autocomplete="current-password" required;
                            }
                            button type="submit" { "Sign in" }
                        }
                    }
                    section {
                        h2 { "Sign in with a console password" }
                        p.hint { "Set with " code { "vpcd admin account password NAME" } "." }
                        form method="post" action="/console/login" id="login-password" {
                            input type="hidden" name="mode" value="password";
                            div.field {
                                label for="account" { "Account" }
                                input type="text" id="account" name="account" autocomplete="username" required;
                            }
                            div.field {
                                label for="password" { "Password" }
                                input type="password" id="password" name="password" autocomplete="current-password" required;
                            }
                            button type="submit" { "Sign in" }
                        }
                    }
                }
            }
        }
    }
}

/// A page for a refusal outside any form (a stale or forged form).
pub(crate) fn refused(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.login { main { h1 { (title) } p.error { (message) } p { a href="/console/" { "Back to the console" } } } }
        }
    }
}

// ---- VPCs ------------------------------------------------------------------------

pub(crate) fn vpcs(f: &Frame<'_>, vpcs: &[Vpc], state: &FormState) -> Markup {
    let form = "vpc";
    layout(
        f,
        "VPCs",
        html! {
            table id="vpcs" {
                thead { tr { th { "ID" } th { "Name" } th { "CIDR" } th { "VPN gateways" } th { "Created (UTC)" } th {} } }
                tbody {
                    @for v in vpcs {
                        tr data-id=(display(&v.un_id)) {
                            td { code { (display(&v.un_id)) } } td { (v.name) } td { (v.cidr.as_given()) }
                            td { (v.vpn_gw_num) } td { (format_utc(v.created_at)) }
                            td { (delete_button(f, "/console/vpcs/delete", &[("vpcId", v.un_id.to_string().as_str())], "VPC")) }
                        }
                    }
                    @if vpcs.is_empty() { (empty_row(6, "VPCs")) }
                }
            }
            h2 { "Create a VPC" }
            form.create method="post" action="/console/vpcs" id="create-vpc" {
                (hidden(f))
                (form_error(state, form))
                (text(state, form, "vpcName", "Name (vpcName)", "prod"))
                (text(state, form, "cidrBlock", "CIDR block (cidrBlock)", "10.0.0.0/16"))
                button type="submit" { "Create VPC" }
            }
        },
    )
}

// ---- VPN gateways ------------------------------------------------------------------

fn vpc_select(state: &FormState, form: &str, vpcs: &[Vpc]) -> Markup {
    let chosen = state.value(form, "vpcId");
    let input = html! {
        select id={ (form) "-vpcId" } name="vpcId" {
            @for v in vpcs {
                @let id = v.un_id.to_string();
                option value=(id) selected[id == chosen] { (v.name) " (" (id) ", " (v.cidr.as_given()) ")" }
            }
        }
    };
    field(state, form, "vpcId", "VPC (vpcId)", input)
}

pub(crate) fn vpn_gws(f: &Frame<'_>, gws: &[VpnGw], vpcs: &[Vpc], state: &FormState) -> Markup {
    let form = "vpngw";
    layout(
        f,
        "VPN gateways",
        html! {
            table id="vpn-gws" {
                thead { tr { th { "ID" } th { "Name" } th { "VPC" } th { "Public address" } th { "Bandwidth (Mbps)" } th { "Connections" } th {} } }
                tbody {
                    @for g in gws {
                        tr data-id=(display(&g.un_id)) {
                            td { code { (display(&g.un_id)) } } td { (g.name) } td { (g.vpc.name) " " code { (display(&g.vpc.un_id)) } }
                            td { (display(&g.address)) } td { (g.bandwidth) } td { (g.conn_num) }
                            td { (delete_button(f, "/console/vpn-gws/delete",
                                &[("vpcId", g.vpc.un_id.to_string().as_str()), ("vpnGwId", g.un_id.to_string().as_str())], "VPN gateway")) }
                        }
                    }
                    @if gws.is_empty() { (empty_row(7, "VPN gateways")) }
                }
            }
            h2 { "Create a VPN gateway" }
            form.create method="post" action="/console/vpn-gws" id="create-vpn-gw" {
                (hidden(f))
                (form_error(state, form))
                (vpc_select(state, form, vpcs))
                (text(state, form, "name", "Name (name)", "gw1"))
                (text(state, form, "bandwidth", "Bandwidth in Mbps (bandwidth)", "5"))
                button type="submit" { "Create VPN gateway" }
            }
        },
    )
}

// ---- peer gateways -----------------------------------------------------------------

pub(crate) fn user_gws(f: &Frame<'_>, gws: &[UserGw], state: &FormState) -> Markup {
    let form = "usergw";
    layout(
        f,
        "Peer gateways",
        html! {
            table id="user-gws" {
                thead { tr { th { "ID" } th { "Name" } th { "Public address" } th { "Connections" } th { "Created (UTC)" } th {} } }
                tbody {
                    @for g in gws {
                        tr data-id=(display(&g.un_id)) {
                            td { code { (display(&g.un_id)) } } td { (g.name) } td { (display(&g.address)) } td { (g.conn_num) }
                            td { (format_utc(g.created_at)) }
                            td { (delete_button(f, "/console/user-gws/delete", &[("userGwId", g.un_id.to_string().as_str())], "peer gateway")) }
                        }
                    }
                    @if gws.is_empty() { (empty_row(6, "peer gateways")) }
                }
            }
            h2 { "Add a peer (customer) gateway" }
            form.create method="post" action="/console/user-gws" id="create-user-gw" {
                (hidden(f))
                (form_error(state, form))
                (text(state, form, "userGwName", "Name (userGwName)", "office"))
                (text(state, form, "userGwAddr", "Public IPv4 address (userGwAddr)", "198.51.100.7"))
                button type="submit" { "Add peer gateway" }
            }
        },
    )
}

// ---- connections -------------------------------------------------------------------

/// `vpcConnStatus` in words.
pub(crate) fn conn_status(s: ConnStatus) -> &'static str {
    match s {
        ConnStatus::Creating => "creating",
        ConnStatus::CreateFailed => "create failed",
        ConnStatus::Modifying => "modifying",
        ConnStatus::ModifyFailed => "modify failed",
        ConnStatus::Deleting => "deleting",
        ConnStatus::DeleteFailed => "delete failed",
        ConnStatus::Running => "running",
    }
}

/// The tunnel's health as a person reads it.
pub(crate) fn health(c: &VpnConn) -> &'static str {
    match (c.status, c.net_status) {
        (ConnStatus::Running, NetStatus::Available) => "up",
        (ConnStatus::Running, NetStatus::Unavailable) => "down",
        (ConnStatus::Creating | ConnStatus::Modifying | ConnStatus::Deleting, _) => "changing",
        _ => "failed",
    }
}

pub(crate) struct ConnsPage<'a> {
    pub(crate) conns: &'a [VpnConn],
    pub(crate) vpcs: &'a [Vpc],
    pub(crate) vpn_gws: &'a [VpnGw],
    pub(crate) user_gws: &'a [UserGw],
    /// (key, label) of every peer vendor.
    pub(crate) vendors: Vec<(&'static str, String)>,
}

/// Every field of the connection form, by its v2 parameter name.
pub(crate) const CONN_FIELDS: &[&str] = &[
    "vpcId",
    "vpnGwId",
    "userGwId",
    "vpnConnName",
    "preSharedKey",
    "userGwCidrBlock",
    "spdAcl",
    "IKESet.propoEncryAlgorithm",
    "IKESet.propoAuthenAlgorithm",
    "IKESet.exchangeMode",
    "IKESet.localIdentity",
    "IKESet.remoteIdentity",
    "IKESet.localAddress",
    "IKESet.remoteAddress",
    "IKESet.localFqdnName",
    "IKESet.remoteFqdnName",
    "IKESet.dhGroupName",
    "IKESet.ikeSaLifetimeSeconds",
    "IPsecSet.encryptAlgorithm",
    "IPsecSet.integrityAlgorith",
    "IPsecSet.ipsecSaLifetimeSeconds",
    "IPsecSet.ipsecSaLifetimeTraffic",
    "IPsecSet.pfsDhGroup",
];

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

pub(crate) fn conns(f: &Frame<'_>, p: &ConnsPage<'_>, state: &FormState) -> Markup {
    let form = "conn";
    let d: &Defaults = &CONN_DEFAULTS;
    let gw_chosen = state.value(form, "vpnGwId");
    let ugw_chosen = state.value(form, "userGwId");
    let num = |name: &str, label: &str, default: String| -> Markup {
        let input = html! {
            input type="number" id={ (form) "-" (name) } name=(name)
                value=(state.value(form, name)) placeholder=(default);
        };
        field(
            state,
            form,
            name,
            &format!("{label} ({name}, default {default})"),
            input,
        )
    };
    layout(
        f,
        "Connections",
        html! {
            p.hint { "State and health follow the gateway live; this table updates by itself." }
            table id="conns" {
                thead { tr {
                    th { "ID" } th { "Name" } th { "VPC" } th { "VPN gateway" } th { "Peer gateway" }
                    th { "Peer ranges" } th { "Status" } th { "netStatus" } th { "Health" } th { "Task" }
                    th { "Peer configuration" } th {}
                } }
                tbody {
                    @for c in p.conns {
                        tr data-conn=(display(&c.un_id)) {
                            td {
                                code { (display(&c.un_id)) } br;
                                a.diagnostics href={ "/console/conns/diagnostics?region=" (f.region) "&vpnConnId=" (display(&c.un_id)) } { "diagnostics" }
                            }
                            td { (c.name) }
                            td { (c.vpc.name) " " code { (display(&c.vpc.un_id)) } }
                            td { (c.vpn_gw.name) " " code { (display(&c.vpn_gw.un_id)) } br; (display(&c.vpn_gw.address)) }
                            td { (c.user_gw.name) " " code { (display(&c.user_gw.un_id)) } br; (display(&c.user_gw.address)) }
                            td { @for r in &c.settings.spd { @for net in &r.remote { (net.as_given()) " " } } }
                            td data-field="status" { (conn_status(c.status)) }
                            td data-field="netStatus" { (c.net_status.as_str()) }
                            td data-field="health" class={ "health " (health(c)) } { (health(c)) }
                            td data-field="task" { @if let Some(t) = c.active_task { "task " (display(t)) " running" } @else { "—" } }
                            td {
                                form.inline.config method="get" action="/console/conns/config" {
                                    input type="hidden" name="region" value=(f.region);
                                    input type="hidden" name="vpnConnId" value=(display(&c.un_id));
                                    select name="vendor" aria-label="Vendor" {
                                        @for (key, label) in &p.vendors { option value=(key) { (label) } }
                                    }
                                    button type="submit" { "Download" }
                                }
                            }
                            td { (delete_button(f, "/console/conns/delete", &[
                                ("vpcId", c.vpc.un_id.to_string().as_str()),
                                ("vpnGwId", c.vpn_gw.un_id.to_string().as_str()),
                                ("vpnConnId", c.un_id.to_string().as_str())], "connection")) }
                        }
                    }
                    @if p.conns.is_empty() { (empty_row(12, "connections")) }
                }
            }
            h2 { "Create a connection (AddVpnConnEx)" }
            p.hint { "Every parameter of AddVpnConnEx; an empty field takes the default shown. The pre-shared key is never shown again." }
            form.create.wide method="post" action="/console/conns" id="create-conn" {
                (hidden(f))
                (form_error(state, form))
                fieldset {
                    legend { "Tunnel" }
                    (vpc_select(state, form, p.vpcs))
                    (field(state, form, "vpnGwId", "VPN gateway (vpnGwId)", html! {
                        select id="conn-vpnGwId" name="vpnGwId" {
                            @for g in p.vpn_gws {
                                @let id = g.un_id.to_string();
                                option value=(id) selected[id == gw_chosen] { (g.name) " (" (id) ", " (display(&g.vpc.un_id)) ")" }
                            }
                        }
                    }))
                    (field(state, form, "userGwId", "Peer gateway (userGwId)", html! {
                        select id="conn-userGwId" name="userGwId" {
                            @for g in p.user_gws {
                                @let id = g.un_id.to_string();
                                option value=(id) selected[id == ugw_chosen] { (g.name) " (" (id) ", " (display(&g.address)) ")" }
                            }
                        }
                    }))
                    (text(state, form, "vpnConnName", "Name (vpnConnName)", "to-office"))
                    (field(state, form, "preSharedKey", "Pre-shared key (preSharedKey)", html! {
                        input type="password" id="conn-preSharedKey" name="preSharedKey" autocomplete="new-password" value="";
                    }))
                    (field(state, form, "userGwCidrBlock", "Peer ranges, one per line (userGwCidrBlock.n)", html! {
                        textarea id="conn-userGwCidrBlock" name="userGwCidrBlock" rows="2" placeholder="10.56.20.0/24" {
                            (state.value(form, "userGwCidrBlock"))
                        }
                    }))
                    (field(state, form, "spdAcl", "Or SPD rules as JSON (spdAcl)", html! {
                        textarea id="conn-spdAcl" name="spdAcl" rows="2" placeholder=r#"{"10.0.0.0/24":["10.56.20.0/24"]}"# {
                            (state.value(form, "spdAcl"))
                        }
                    }))
                }
                fieldset {
                    legend { "IKE (IKESet)" }
                    (choice(state, form, "IKESet.propoEncryAlgorithm", "Encryption (IKESet.propoEncryAlgorithm)",
                        &names(IkeEncryption::V2, IkeEncryption::as_str), d.ike_encryption.as_str()))
                    (choice(state, form, "IKESet.propoAuthenAlgorithm", "Authentication (IKESet.propoAuthenAlgorithm)",
                        &names(AuthAlgorithm::V2, AuthAlgorithm::as_str), d.ike_authentication.as_str()))
                    (choice(state, form, "IKESet.exchangeMode", "Negotiation mode (IKESet.exchangeMode)",
                        &names(ExchangeMode::V2, ExchangeMode::as_str), d.exchange_mode.as_str()))
                    (choice(state, form, "IKESet.dhGroupName", "DH group (IKESet.dhGroupName)",
                        &names(DhGroup::V2, DhGroup::as_str), d.dh_group.as_str()))
                    (num("IKESet.ikeSaLifetimeSeconds", "IKE SA lifetime, s", d.ike_sa_lifetime_seconds.to_string()))
                    (choice(state, form, "IKESet.localIdentity", "Local identity type (IKESet.localIdentity)",
                        &names(IdentityType::V2, IdentityType::as_str), IdentityType::Address.as_str()))
                    (text(state, form, "IKESet.localAddress", "Local address (IKESet.localAddress)", "default: the VPN gateway's public address"))
                    (text(state, form, "IKESet.localFqdnName", "Local FQDN (IKESet.localFqdnName)", "for identity type fqdn"))
                    (choice(state, form, "IKESet.remoteIdentity", "Peer identity type (IKESet.remoteIdentity)",
                        &names(IdentityType::V2, IdentityType::as_str), IdentityType::Address.as_str()))
                    (text(state, form, "IKESet.remoteAddress", "Peer address (IKESet.remoteAddress)", "default: the peer gateway's address"))
                    (text(state, form, "IKESet.remoteFqdnName", "Peer FQDN (IKESet.remoteFqdnName)", "for identity type fqdn"))
                }
                fieldset {
                    legend { "IPsec (IPsecSet)" }
                    (choice(state, form, "IPsecSet.encryptAlgorithm", "Encryption (IPsecSet.encryptAlgorithm)",
                        &names(IpsecEncryption::V2, IpsecEncryption::as_str), d.ipsec_encryption.as_str()))
                    (choice(state, form, "IPsecSet.integrityAlgorith", "Integrity (IPsecSet.integrityAlgorith)",
                        &names(AuthAlgorithm::V2, AuthAlgorithm::as_str), d.ipsec_integrity.as_str()))
                    (num("IPsecSet.ipsecSaLifetimeSeconds", "IPsec SA lifetime, s", d.ipsec_sa_lifetime_seconds.to_string()))
                    (num("IPsecSet.ipsecSaLifetimeTraffic", "IPsec SA lifetime, KB", d.ipsec_sa_lifetime_traffic_kb.to_string()))
                    (choice(state, form, "IPsecSet.pfsDhGroup", "PFS (IPsecSet.pfsDhGroup)",
                        &names(PfsGroup::V2, PfsGroup::as_str), d.pfs.as_str()))
                }
                button type="submit" { "Create connection" }
            }
        },
    )
}

// ---- tasks -------------------------------------------------------------------------

pub(crate) fn task_status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Running => "running",
        TaskStatus::Success => "succeeded",
        TaskStatus::Failed => "failed",
    }
}

pub(crate) fn tasks(f: &Frame<'_>, tasks: &[Task]) -> Markup {
    layout(
        f,
        "Tasks",
        html! {
            p.hint { "The newest tasks of this region; running ones update by themselves." }
            table id="tasks" {
                thead { tr { th { "Task" } th { "Kind" } th { "Connection" } th { "Progress" } th { "Status" } th { "Attempts" } th { "Created (UTC)" } th { "Finished (UTC)" } th { "Error" } } }
                tbody {
                    @for t in tasks {
                        tr data-task=(display(&t.id)) {
                            td { (display(&t.id)) } td { (t.kind.as_str()) } td { code { (display(&t.conn_un_id)) } }
                            td data-field="progress" {
                                @if t.status == TaskStatus::Running { progress {} } @else { progress value="1" max="1" {} }
                            }
                            td data-field="status" { (task_status(t.status)) }
                            td { (t.attempts) }
                            td { (format_utc(t.created_at)) }
                            td data-field="finished" { @if let Some(at) = t.finished_at { (format_utc(at)) } }
                            td data-field="error" { @if let Some(e) = &t.error { code { (e.error_code) } " " (e.error_msg) } }
                        }
                    }
                    @if tasks.is_empty() { (empty_row(9, "tasks")) }
                }
            }
        },
    )
}

// ---- one connection's diagnostics ------------------------------------------------

/// A connection's DescribeVpnConnDiagnostics answer (its v2 shape) as a
/// page: why it is down, what it carries, when it went up and down.
pub(crate) fn diagnostics(f: &Frame<'_>, d: &serde_json::Value) -> Markup {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("—").to_owned();
    let failure = d["lastFailure"].as_object();
    let traffic = d["traffic"].as_object();
    let history = d["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    layout(
        f,
        "Diagnostics",
        html! {
            p { a href={ "/console/conns?region=" (f.region) } { "Back to the connections" } }
            table id="diagnostics" {
                tr { th { "Connection" } td { code { (text(&d["unVpnConnId"])) } } }
                tr { th { "Data plane" } td data-field="dataPlane" { (text(&d["dataPlane"])) } }
                tr { th { "IPsec negotiated" } td { @if d["ipsecNegotiated"] == true { "yes" } @else { "no" } } }
                tr { th { "netStatus" } td { (text(&d["netStatus"])) } }
            }
            p.hint { (text(&d["note"])) }
            h2 { "Last negotiation failure" }
            @if let Some(fl) = failure {
                table id="last-failure" {
                    tr { th { "What happened" } td { (text(&fl["message"])) } }
                    tr { th { "Code" } td { code { (text(&fl["code"])) } } }
                    @for (key, label) in [("stage", "Stage"), ("peerOffered", "The peer offered"),
                        ("gatewayAllows", "The gateway allows"), ("peerIdentity", "Peer identity"),
                        ("firstSeen", "First seen"), ("lastSeen", "Last seen")] {
                        @if fl.get(key).is_some_and(|v| !v.is_null()) {
                            tr { th { (label) } td { (text(&fl[key])) } }
                        }
                    }
                }
            } @else {
                p { "None recorded." }
            }
            h2 { "Traffic" }
            @if let Some(t) = traffic {
                table id="traffic" {
                    @for (key, label) in [("bytesIn", "Bytes in"), ("bytesOut", "Bytes out"),
                        ("packetsIn", "Packets in"), ("packetsOut", "Packets out")] {
                        tr { th { (label) } td { (t.get(key).and_then(|v| v.as_u64()).unwrap_or(0)) } }
                    }
                    tr { th { "Established since" } td { (text(&t["establishedSince"])) } }
                    tr { th { "Last rekey" } td { (text(&t["lastRekey"])) } }
                    tr { th { "Sampled at" } td { (text(&d["trafficSampledAt"])) } }
                }
            } @else {
                p { "No installed SA at the latest sample." }
            }
            h2 { "Up/down history (newest first)" }
            table id="history" {
                thead { tr { th { "Time" } th { "State" } th { "Reason" } } }
                tbody {
                    @for e in history {
                        tr { td { (text(&e["time"])) } td { (text(&e["state"])) } td { (text(&e["message"])) } }
                    }
                    @if history.is_empty() { (empty_row(3, "events")) }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let state = FormState {
            values: [("vpcName".to_owned(), "<script>x</script>\"".to_owned())].into(),
            refusal: Some(Refusal {
                field: Some("vpcName".into()),
                message: "vpcName: <b>".into(),
                code_desc: "InvalidVpcName",
            }),
            form: "vpc",
        };
        let f = Frame {
            account: "<acct>",
            region: "gz",
            regions: vec![("ap-guangzhou".into(), "gz".into())],
            csrf: "c".into(),
            page: "vpcs",
        };
        let page = vpcs(&f, &[], &state).into_string();
        assert!(!page.contains("<script>x"), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;&quot;"));
        assert!(page.contains("vpcName: &lt;b&gt;"));
        assert!(page.contains("&lt;acct&gt;"));
        assert!(page.contains(r#"data-error-for="vpcName""#));
    }

    #[test]
    fn the_connection_form_has_every_field() {
        let f = Frame {
            account: "a",
            region: "gz",
            regions: vec![],
            csrf: "c".into(),
            page: "conns",
        };
        let p = ConnsPage {
            conns: &[],
            vpcs: &[],
            vpn_gws: &[],
            user_gws: &[],
            vendors: vec![],
        };
        let page = conns(&f, &p, &FormState::default()).into_string();
        for name in CONN_FIELDS {
            assert!(page.contains(&format!(r#"name="{name}""#)), "{name}");
        }
        assert!(page.contains("3des-cbc (default)"));
        assert!(page.contains("group2 (default)"));
    }
}
