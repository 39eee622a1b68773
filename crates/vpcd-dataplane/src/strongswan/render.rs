//! Pure translation of a [`TunnelSpec`] into the VICI messages that install
//! it on charon. Nothing here does I/O, so every mapping decision is pinned
//! by snapshot tests.
//!
//! The same [`ConnBody`] is built for both ends of the tunnel: [`load_conn`]
//! from the cloud gateway's point of view, [`peer_conn`] mirrored for the
//! customer's device (used by the swanctl.conf generator in
//! [`crate::peer_config`]), so the two can never drift apart.
//!
//! # Why these settings
//! The tunnel must come up by itself whichever side is configured last, and
//! recover after either side restarts, without anyone calling `initiate`:
//! - `start_action = start` on every child: loading the config initiates it.
//!   The side configured last therefore always starts the negotiation, while
//!   the first side's attempt may fail harmlessly.
//! - `keyingtries = 0`: a negotiation that times out (peer down, packets
//!   lost) is retried forever instead of given up after one try.
//! - `dpd_delay`/`dpd_timeout` + `dpd_action = restart`: a peer that vanished
//!   (crash, reboot without DELETE) is detected and re-initiated.
//! - `close_action = restart`: a peer that deleted the SA on purpose (reset,
//!   graceful restart) is re-initiated.
//!
//! IKEv1 carries a single traffic-selector pair per CHILD SA: strongSwan uses
//! only the first entry of a `local_ts`/`remote_ts` list in Quick Mode. An SPD
//! rule `{vpc: [idc1, idc2]}` is therefore installed as one child per
//! (vpc, idc) pair; a rule with one IDC CIDR is exactly one child.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use vpcd_types::{
    AuthAlgorithm, DhGroup, DpdAction, ExchangeMode, Identity, IkeEncryption, IkeVersion,
    IpsecEncryption, NegotiationType, Secret, TunnelSpec, VpnConnId,
};

/// Seconds between DPD probes (R_U_THERE / empty INFORMATIONAL) on an idle
/// tunnel whose connection has DPD enabled.
pub(crate) const DPD_DELAY_SECONDS: u32 = 10;

/// The strongSwan keyword for an IKE encryption algorithm.
pub(crate) fn ike_encryption(e: IkeEncryption) -> &'static str {
    match e {
        IkeEncryption::TripleDesCbc => "3des",
        IkeEncryption::DesCbc => "des",
        IkeEncryption::AesCbc128 => "aes128",
        IkeEncryption::AesCbc192 => "aes192",
        IkeEncryption::AesCbc256 => "aes256",
        IkeEncryption::Aes128Gcm128 => "aes128gcm16",
        IkeEncryption::Aes192Gcm128 => "aes192gcm16",
        IkeEncryption::Aes256Gcm128 => "aes256gcm16",
    }
}

/// The strongSwan keyword for an ESP encryption algorithm.
pub(crate) fn esp_encryption(e: IpsecEncryption) -> &'static str {
    match e {
        IpsecEncryption::TripleDesCbc => "3des",
        IpsecEncryption::DesCbc => "des",
        IpsecEncryption::AesCbc128 => "aes128",
        IpsecEncryption::AesCbc192 => "aes192",
        IpsecEncryption::AesCbc256 => "aes256",
        IpsecEncryption::Null => "null",
        IpsecEncryption::Aes128Gcm128 => "aes128gcm16",
        IpsecEncryption::Aes192Gcm128 => "aes192gcm16",
        IpsecEncryption::Aes256Gcm128 => "aes256gcm16",
    }
}

/// The strongSwan keyword for an integrity algorithm.
pub(crate) fn integrity(a: AuthAlgorithm) -> &'static str {
    match a {
        AuthAlgorithm::Md5 => "md5",
        AuthAlgorithm::Sha => "sha1",
        AuthAlgorithm::Sha256 => "sha256",
        AuthAlgorithm::Sha384 => "sha384",
        AuthAlgorithm::Sha512 => "sha512",
    }
}

/// The strongSwan keyword for the PRF an AEAD IKE proposal names
/// explicitly (with an AEAD cipher there is no integrity algorithm to
/// derive it from): the connection's authentication algorithm as a PRF.
pub(crate) fn prf(a: AuthAlgorithm) -> &'static str {
    match a {
        AuthAlgorithm::Md5 => "prfmd5",
        AuthAlgorithm::Sha => "prfsha1",
        AuthAlgorithm::Sha256 => "prfsha256",
        AuthAlgorithm::Sha384 => "prfsha384",
        AuthAlgorithm::Sha512 => "prfsha512",
    }
}

/// The strongSwan keyword for a Diffie-Hellman group.
pub(crate) fn dh_group(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Group1 => "modp768",
        DhGroup::Group2 => "modp1024",
        DhGroup::Group5 => "modp1536",
        DhGroup::Group14 => "modp2048",
        DhGroup::Group24 => "modp2048s256",
        DhGroup::Group15 => "modp3072",
        DhGroup::Group16 => "modp4096",
        DhGroup::Group19 => "ecp256",
        DhGroup::Group20 => "ecp384",
        DhGroup::Group21 => "ecp521",
    }
}

/// The IKE proposal, e.g. `3des-md5-modp1024`, or with an AEAD cipher
/// `aes256gcm16-prfsha256-ecp256` (the authentication algorithm as PRF).
pub(crate) fn ike_proposal(spec: &TunnelSpec) -> String {
    let ike = &spec.settings.ike;
    let mac = if ike.encryption.is_aead() {
        prf(ike.authentication)
    } else {
        integrity(ike.authentication)
    };
    format!(
        "{}-{mac}-{}",
        ike_encryption(ike.encryption),
        dh_group(ike.dh_group)
    )
}

/// The ESP proposal, e.g. `aes256-sha1-modp2048` (PFS), `null-md5`, or
/// `aes256gcm16` (AEAD: no integrity algorithm).
pub(crate) fn esp_proposal(spec: &TunnelSpec) -> String {
    let ipsec = &spec.settings.ipsec;
    let mut p = esp_encryption(ipsec.encryption).to_owned();
    if !ipsec.encryption.is_aead() {
        p.push('-');
        p.push_str(integrity(ipsec.integrity));
    }
    if let Some(g) = ipsec.pfs.group() {
        p.push('-');
        p.push_str(dh_group(g));
    }
    p
}

/// `load-shared`: the tunnel's pre-shared key, owned by both identities.
///
/// `Debug` never shows the key ([`Secret`] redacts itself); serializing does,
/// because the key has to reach charon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadShared {
    /// Unique id, so the key can be unloaded on its own (`unload-shared`).
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) data: Secret,
    pub(crate) owners: Vec<String>,
}

/// `unload-shared` / `unload-conn` / `terminate` style requests naming one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ById<'a> {
    pub(crate) id: &'a str,
}

/// `unload-conn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ByName<'a> {
    pub(crate) name: &'a str,
}

/// `load-conn`: one connection, keyed by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConn {
    pub(crate) name: String,
    pub(crate) conn: ConnBody,
}

impl Serialize for LoadConn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.name, &self.conn)?;
        m.end()
    }
}

/// The body of a swanctl `connections.<name>` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ConnBody {
    pub(crate) version: u8,
    pub(crate) aggressive: bool,
    pub(crate) local_addrs: Vec<String>,
    pub(crate) remote_addrs: Vec<String>,
    pub(crate) proposals: Vec<String>,
    pub(crate) keyingtries: u32,
    pub(crate) dpd_delay: u32,
    pub(crate) dpd_timeout: u32,
    pub(crate) reauth_time: u32,
    pub(crate) over_time: u32,
    pub(crate) rekey_time: u32,
    pub(crate) local: AuthRound,
    pub(crate) remote: AuthRound,
    pub(crate) children: Named<Child>,
}

/// A `local`/`remote` authentication round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AuthRound {
    pub(crate) auth: &'static str,
    pub(crate) id: String,
}

/// One CHILD SA (one traffic-selector pair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Child {
    pub(crate) mode: &'static str,
    pub(crate) local_ts: Vec<String>,
    pub(crate) remote_ts: Vec<String>,
    pub(crate) esp_proposals: Vec<String>,
    pub(crate) life_time: u32,
    pub(crate) rekey_time: u32,
    pub(crate) life_bytes: u64,
    pub(crate) rekey_bytes: u64,
    pub(crate) start_action: &'static str,
    pub(crate) dpd_action: &'static str,
    pub(crate) close_action: &'static str,
}

/// Sections keyed by name, serialized as a map in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named<T>(pub(crate) Vec<(String, T)>);

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Which end of the tunnel a config is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Cloud,
    Peer,
}

/// One IKE endpoint as seen from the side being rendered.
struct View<'a> {
    local_addr: IpAddr,
    remote_addr: IpAddr,
    local_id: &'a Identity,
    remote_id: &'a Identity,
    /// (local net, remote net) per child.
    selectors: Vec<(IpNet, IpNet)>,
}

fn view(spec: &TunnelSpec, side: Side) -> View<'_> {
    let ike = &spec.settings.ike;
    let pairs = spd_pairs(spec);
    match side {
        Side::Cloud => View {
            local_addr: spec.local_addr,
            remote_addr: spec.remote_addr,
            local_id: &ike.local_identity,
            remote_id: &ike.remote_identity,
            selectors: pairs,
        },
        Side::Peer => View {
            local_addr: spec.remote_addr,
            remote_addr: spec.local_addr,
            local_id: &ike.remote_identity,
            remote_id: &ike.local_identity,
            selectors: pairs.into_iter().map(|(l, r)| (r, l)).collect(),
        },
    }
}

/// Every (VPC net, IDC net) pair of the SPD, host bits cleared, duplicates
/// removed, in rule order.
pub(crate) fn spd_pairs(spec: &TunnelSpec) -> Vec<(IpNet, IpNet)> {
    let mut out: Vec<(IpNet, IpNet)> = Vec::new();
    for rule in &spec.settings.spd {
        for remote in &rule.remote {
            let pair = (rule.local.net(), remote.net());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

fn child_name(conn: &str, index: usize) -> String {
    format!("{conn}-{index}")
}

/// IKEv1 cannot rekey an IKE SA, it re-authenticates: the lifetime proposed
/// on the wire is `reauth_time + over_time`, so split S as 0.9 S + 0.1 S.
fn ike_lifetimes(seconds: u32) -> (u32, u32) {
    let reauth = seconds / 10 * 9 + (seconds % 10) * 9 / 10;
    (reauth, seconds - reauth)
}

/// Rekey a CHILD SA at 90 % of its hard limit, so traffic never hits it.
fn soft(limit: u64) -> u64 {
    limit / 10 * 9 + (limit % 10) * 9 / 10
}

/// What a child does on load, when the peer closes it, and when DPD
/// declares the peer dead: `(start_action, close_action, dpd_action)`.
///
/// The gateway follows the connection's negotiation type: `active`
/// initiates on load and re-initiates after a close; `passive` only answers
/// (nothing is initiated, so nothing is re-initiated); `flowTrigger`
/// installs a trap policy that initiates on the first packet, and puts it
/// back after a close. DPD's action is the connection's (`clear` or
/// `restart`). The peer's file mirrors this so the tunnel still comes up:
/// it initiates unless the gateway waits for traffic (then it traps too).
fn actions(spec: &TunnelSpec, side: Side) -> (&'static str, &'static str, &'static str) {
    let s = &spec.settings;
    let dpd = match s.dpd.action {
        DpdAction::Clear => "clear",
        DpdAction::Restart => "restart",
    };
    match (side, s.negotiation) {
        (Side::Cloud, NegotiationType::Active) => ("start", "restart", dpd),
        (Side::Cloud, NegotiationType::Passive) => ("none", "none", dpd),
        (_, NegotiationType::FlowTrigger) => ("trap", "trap", "trap"),
        (Side::Peer, _) => ("start", "restart", "restart"),
    }
}

/// `(version, reauth_time, over_time, rekey_time)` of the IKE SA. IKEv1
/// cannot rekey an IKE SA, it re-authenticates ([`ike_lifetimes`]); IKEv2
/// rekeys in place at 90 % of the lifetime, with the rest as margin.
fn ike_timing(version: IkeVersion, seconds: u32) -> (u8, u32, u32, u32) {
    let (soft, margin) = ike_lifetimes(seconds);
    match version {
        IkeVersion::V1 => (1, soft, margin, 0),
        IkeVersion::V2 => (2, 0, margin, soft),
    }
}

fn body(spec: &TunnelSpec, side: Side) -> ConnBody {
    let v = view(spec, side);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    let (version, reauth_time, over_time, rekey_time) =
        ike_timing(ike.version, ike.sa_lifetime_seconds);
    let (start_action, close_action, dpd_action) = actions(spec, side);
    let dpd = &spec.settings.dpd;
    let (dpd_delay, dpd_timeout) = if dpd.enabled {
        (DPD_DELAY_SECONDS, dpd.timeout_seconds)
    } else {
        (0, 0)
    };
    let life_bytes = ipsec.sa_lifetime_traffic_bytes();
    let esp = esp_proposal(spec);
    let children = v
        .selectors
        .iter()
        .enumerate()
        .map(|(i, (local, remote))| {
            (
                child_name(spec.name.as_str(), i + 1),
                Child {
                    mode: "tunnel",
                    local_ts: vec![local.to_string()],
                    remote_ts: vec![remote.to_string()],
                    esp_proposals: vec![esp.clone()],
                    life_time: ipsec.sa_lifetime_seconds,
                    rekey_time: soft(u64::from(ipsec.sa_lifetime_seconds)) as u32,
                    life_bytes,
                    rekey_bytes: soft(life_bytes),
                    start_action,
                    dpd_action,
                    close_action,
                },
            )
        })
        .collect();
    ConnBody {
        version,
        aggressive: version == 1 && ike.exchange_mode == ExchangeMode::Aggressive,
        local_addrs: vec![v.local_addr.to_string()],
        remote_addrs: vec![v.remote_addr.to_string()],
        proposals: vec![ike_proposal(spec)],
        keyingtries: 0,
        dpd_delay,
        dpd_timeout,
        reauth_time,
        over_time,
        rekey_time,
        local: AuthRound {
            auth: "psk",
            id: v.local_id.value(),
        },
        remote: AuthRound {
            auth: "psk",
            id: v.remote_id.value(),
        },
        children: Named(children),
    }
}

/// `load-conn` for the cloud gateway (charon on the VPN gateway node).
pub fn load_conn(spec: &TunnelSpec) -> LoadConn {
    LoadConn {
        name: spec.name.to_string(),
        conn: body(spec, Side::Cloud),
    }
}

/// The same connection from the customer's device's point of view: local
/// and remote swapped. Named like the cloud side; the name is not secret.
pub(crate) fn peer_conn(spec: &TunnelSpec) -> LoadConn {
    LoadConn {
        name: spec.name.to_string(),
        conn: body(spec, Side::Peer),
    }
}

/// The id under which the tunnel's key is loaded (`load-shared`/`unload-shared`).
pub(crate) fn shared_id(id: &VpnConnId) -> String {
    format!("{id}-psk")
}

/// `load-shared` for the cloud gateway.
pub fn load_shared(spec: &TunnelSpec) -> LoadShared {
    let ike = &spec.settings.ike;
    LoadShared {
        id: shared_id(&spec.name),
        kind: "IKE",
        data: spec.settings.pre_shared_key.clone(),
        owners: vec![ike.local_identity.value(), ike.remote_identity.value()],
    }
}

/// `terminate` request for every IKE SA of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Terminate<'a> {
    pub(crate) ike: &'a str,
    /// Milliseconds to wait for the DELETE exchange (IKEv1 sends it without
    /// waiting for an answer, so this is rarely used up).
    pub(crate) timeout: i32,
    /// Do not wait for the peer if the timeout expires.
    pub(crate) force: bool,
}

impl fmt::Display for LoadConn {
    /// The connection as a swanctl.conf `connections` section.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every value comes from a closed alphabet (addresses, CIDRs, FQDNs
        // restricted by `Fqdn`, algorithm keywords, numbers, generated child
        // names), so no quoting is needed; `debug_assert` guards that claim.
        fn kv(f: &mut fmt::Formatter<'_>, indent: usize, k: &str, v: &str) -> fmt::Result {
            debug_assert!(v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-/:_,".contains(&b)));
            writeln!(f, "{:indent$}{k} = {v}", "")
        }
        let c = &self.conn;
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "connections {{")?;
        writeln!(f, "  {} {{", self.name)?;
        kv(f, 4, "version", &c.version.to_string())?;
        kv(f, 4, "aggressive", yn(c.aggressive))?;
        kv(f, 4, "local_addrs", &c.local_addrs.join(","))?;
        kv(f, 4, "remote_addrs", &c.remote_addrs.join(","))?;
        kv(f, 4, "proposals", &c.proposals.join(","))?;
        kv(f, 4, "keyingtries", &c.keyingtries.to_string())?;
        kv(f, 4, "dpd_delay", &format!("{}s", c.dpd_delay))?;
        kv(f, 4, "dpd_timeout", &format!("{}s", c.dpd_timeout))?;
        kv(f, 4, "reauth_time", &format!("{}s", c.reauth_time))?;
        kv(f, 4, "over_time", &format!("{}s", c.over_time))?;
        kv(f, 4, "rekey_time", &format!("{}s", c.rekey_time))?;
        for (section, round) in [("local", &c.local), ("remote", &c.remote)] {
            writeln!(f, "    {section} {{")?;
            kv(f, 6, "auth", round.auth)?;
            kv(f, 6, "id", &round.id)?;
            writeln!(f, "    }}")?;
        }
        writeln!(f, "    children {{")?;
        for (name, ch) in &c.children.0 {
            writeln!(f, "      {name} {{")?;
            kv(f, 8, "mode", ch.mode)?;
            kv(f, 8, "local_ts", &ch.local_ts.join(","))?;
            kv(f, 8, "remote_ts", &ch.remote_ts.join(","))?;
            kv(f, 8, "esp_proposals", &ch.esp_proposals.join(","))?;
            kv(f, 8, "life_time", &format!("{}s", ch.life_time))?;
            kv(f, 8, "rekey_time", &format!("{}s", ch.rekey_time))?;
            kv(f, 8, "life_bytes", &ch.life_bytes.to_string())?;
            kv(f, 8, "rekey_bytes", &ch.rekey_bytes.to_string())?;
            kv(f, 8, "start_action", ch.start_action)?;
            kv(f, 8, "dpd_action", ch.dpd_action)?;
            kv(f, 8, "close_action", ch.close_action)?;
            writeln!(f, "      }}")?;
        }
        writeln!(f, "    }}")?;
        writeln!(f, "  }}")?;
        writeln!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{spec_custom, spec_default, spec_ikev2_gcm, spec_null_esp};

    #[test]
    fn lifetimes_split() {
        assert_eq!(ike_lifetimes(86_400), (77_760, 8_640));
        assert_eq!(ike_lifetimes(60), (54, 6));
        assert_eq!(ike_lifetimes(61), (54, 7));
        // 90 % rounded down, also when the last digit carries into it.
        assert_eq!(ike_lifetimes(65), (58, 7));
        assert_eq!(ike_lifetimes(69), (62, 7));
        assert_eq!(soft(3_600), 3_240);
        assert_eq!(soft(15), 13);
        assert_eq!(soft(1_887_436_805), 1_698_693_124);
    }

    #[test]
    fn proposals() {
        assert_eq!(ike_proposal(&spec_default()), "3des-md5-modp1024");
        assert_eq!(esp_proposal(&spec_default()), "3des-md5");
        assert_eq!(ike_proposal(&spec_custom()), "aes256-sha1-modp2048");
        assert_eq!(esp_proposal(&spec_custom()), "aes256-sha1-modp2048");
        assert_eq!(esp_proposal(&spec_null_esp()), "null-sha1");
    }

    /// Every API value, each once, to strongSwan's keyword (the names of
    /// strongSwan's IKEv1/ESP proposal keywords, RFC 2409/3526/5114 groups).
    #[test]
    fn every_api_value_becomes_its_strongswan_keyword() {
        let ike = [
            (IkeEncryption::TripleDesCbc, "3des"),
            (IkeEncryption::AesCbc128, "aes128"),
            (IkeEncryption::AesCbc192, "aes192"),
            (IkeEncryption::AesCbc256, "aes256"),
            (IkeEncryption::DesCbc, "des"),
            (IkeEncryption::Aes128Gcm128, "aes128gcm16"),
            (IkeEncryption::Aes192Gcm128, "aes192gcm16"),
            (IkeEncryption::Aes256Gcm128, "aes256gcm16"),
        ];
        assert_eq!(ike.len(), IkeEncryption::ALL.len());
        for (e, kw) in ike {
            let mut s = spec_default();
            s.settings.ike.encryption = e;
            // An AEAD cipher carries its own integrity: the algorithm is the PRF.
            let mac = if e.is_aead() { "prfmd5" } else { "md5" };
            assert_eq!(ike_proposal(&s), format!("{kw}-{mac}-modp1024"));
        }
        let esp = [
            (IpsecEncryption::TripleDesCbc, "3des"),
            (IpsecEncryption::AesCbc128, "aes128"),
            (IpsecEncryption::AesCbc192, "aes192"),
            (IpsecEncryption::AesCbc256, "aes256"),
            (IpsecEncryption::DesCbc, "des"),
            (IpsecEncryption::Null, "null"),
            (IpsecEncryption::Aes128Gcm128, "aes128gcm16"),
            (IpsecEncryption::Aes192Gcm128, "aes192gcm16"),
            (IpsecEncryption::Aes256Gcm128, "aes256gcm16"),
        ];
        assert_eq!(esp.len(), IpsecEncryption::ALL.len());
        for (e, kw) in esp {
            let mut s = spec_default();
            s.settings.ipsec.encryption = e;
            let want = if e.is_aead() {
                kw.to_owned()
            } else {
                format!("{kw}-md5")
            };
            assert_eq!(esp_proposal(&s), want);
        }
        let auth = [
            (AuthAlgorithm::Md5, "md5"),
            (AuthAlgorithm::Sha, "sha1"),
            (AuthAlgorithm::Sha256, "sha256"),
            (AuthAlgorithm::Sha384, "sha384"),
            (AuthAlgorithm::Sha512, "sha512"),
        ];
        assert_eq!(auth.len(), AuthAlgorithm::ALL.len());
        for (a, kw) in auth {
            let mut s = spec_default();
            s.settings.ike.authentication = a;
            assert_eq!(ike_proposal(&s), format!("3des-{kw}-modp1024"));
            let mut s = spec_default();
            s.settings.ipsec.integrity = a;
            assert_eq!(esp_proposal(&s), format!("3des-{kw}"));
        }
        let groups = [
            (DhGroup::Group1, vpcd_types::PfsGroup::DhGroup1, "modp768"),
            (DhGroup::Group2, vpcd_types::PfsGroup::DhGroup2, "modp1024"),
            (DhGroup::Group5, vpcd_types::PfsGroup::DhGroup5, "modp1536"),
            (
                DhGroup::Group14,
                vpcd_types::PfsGroup::DhGroup14,
                "modp2048",
            ),
            (
                DhGroup::Group24,
                vpcd_types::PfsGroup::DhGroup24,
                "modp2048s256",
            ),
            (
                DhGroup::Group15,
                vpcd_types::PfsGroup::DhGroup15,
                "modp3072",
            ),
            (
                DhGroup::Group16,
                vpcd_types::PfsGroup::DhGroup16,
                "modp4096",
            ),
            (DhGroup::Group19, vpcd_types::PfsGroup::DhGroup19, "ecp256"),
            (DhGroup::Group20, vpcd_types::PfsGroup::DhGroup20, "ecp384"),
            (DhGroup::Group21, vpcd_types::PfsGroup::DhGroup21, "ecp521"),
        ];
        assert_eq!(groups.len(), DhGroup::ALL.len());
        assert_eq!(groups.len() + 1, vpcd_types::PfsGroup::ALL.len());
        for (g, pfs, kw) in groups {
            let mut s = spec_default();
            s.settings.ike.dh_group = g;
            s.settings.ipsec.pfs = pfs;
            assert_eq!(ike_proposal(&s), format!("3des-md5-{kw}"));
            assert_eq!(esp_proposal(&s), format!("3des-md5-{kw}"));
        }
        let mut s = spec_default();
        s.settings.ipsec.pfs = vpcd_types::PfsGroup::Null;
        assert_eq!(esp_proposal(&s), "3des-md5", "no PFS: no group");
    }

    #[test]
    fn snapshot_defaults() {
        let s = spec_default();
        insta::assert_json_snapshot!("defaults_load_conn", load_conn(&s));
        insta::assert_json_snapshot!("defaults_load_shared", load_shared(&s));
        insta::assert_snapshot!("defaults_peer_swanctl", peer_conn(&s).to_string());
    }

    #[test]
    fn snapshot_custom() {
        let s = spec_custom();
        insta::assert_json_snapshot!("custom_load_conn", load_conn(&s));
        insta::assert_json_snapshot!("custom_load_shared", load_shared(&s));
        insta::assert_json_snapshot!("custom_peer_conn", peer_conn(&s));
    }

    #[test]
    fn ikev2_gcm_proposals_and_timing() {
        let s = spec_ikev2_gcm(NegotiationType::Active);
        assert_eq!(ike_proposal(&s), "aes256gcm16-prfsha256-ecp256");
        assert_eq!(esp_proposal(&s), "aes256gcm16-ecp384");
        let c = load_conn(&s).conn;
        assert_eq!(c.version, 2);
        // IKEv2 rekeys the IKE SA in place; nothing re-authenticates.
        assert_eq!(
            (c.reauth_time, c.rekey_time, c.over_time),
            (0, 77_760, 8_640)
        );
        assert_eq!((c.dpd_delay, c.dpd_timeout), (DPD_DELAY_SECONDS, 45));
    }

    /// start / close / DPD action per negotiation type, on the gateway and
    /// in the peer's file.
    #[test]
    fn negotiation_types() {
        let actions = |n, side| {
            let s = spec_ikev2_gcm(n);
            let c = match side {
                Side::Cloud => load_conn(&s),
                Side::Peer => peer_conn(&s),
            };
            let (_, ch) = &c.conn.children.0[0];
            (ch.start_action, ch.close_action, ch.dpd_action)
        };
        use NegotiationType::*;
        assert_eq!(actions(Active, Side::Cloud), ("start", "restart", "clear"));
        assert_eq!(actions(Passive, Side::Cloud), ("none", "none", "clear"));
        assert_eq!(actions(FlowTrigger, Side::Cloud), ("trap", "trap", "trap"));
        assert_eq!(actions(Active, Side::Peer), ("start", "restart", "restart"));
        assert_eq!(
            actions(Passive, Side::Peer),
            ("start", "restart", "restart")
        );
        assert_eq!(actions(FlowTrigger, Side::Peer), ("trap", "trap", "trap"));
    }

    #[test]
    fn dpd_off_sends_no_probes() {
        let mut s = spec_default();
        s.settings.dpd.enabled = false;
        let c = load_conn(&s).conn;
        assert_eq!((c.dpd_delay, c.dpd_timeout), (0, 0));
    }

    #[test]
    fn every_algorithm_has_a_keyword() {
        use vpcd_types::{IkeEncryption as E, IpsecEncryption as P, PfsGroup};
        for e in E::ALL {
            assert!(!ike_encryption(*e).is_empty());
        }
        for e in P::ALL {
            assert!(!esp_encryption(*e).is_empty());
        }
        for a in AuthAlgorithm::ALL {
            assert!(prf(*a).starts_with("prf") && !integrity(*a).is_empty());
        }
        for g in PfsGroup::ALL {
            if let Some(g) = g.group() {
                assert!(!dh_group(g).is_empty());
            }
        }
    }

    #[test]
    fn snapshot_ikev2_gcm() {
        let s = spec_ikev2_gcm(NegotiationType::FlowTrigger);
        insta::assert_json_snapshot!("ikev2_gcm_load_conn", load_conn(&s));
        insta::assert_snapshot!("ikev2_gcm_peer_swanctl", peer_conn(&s).to_string());
    }

    #[test]
    fn snapshot_null_esp() {
        insta::assert_json_snapshot!("null_esp_load_conn", load_conn(&spec_null_esp()));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = spec_default();
        let dbg = format!("{:?}", load_shared(&s));
        assert!(!dbg.contains(s.settings.pre_shared_key.expose()));
    }

    #[test]
    fn messages_encode_as_vici() {
        // The typed messages must be representable in VICI's encoding
        // (e.g. no nested lists), not only in JSON.
        for s in [
            spec_default(),
            spec_custom(),
            spec_null_esp(),
            spec_ikev2_gcm(NegotiationType::Passive),
        ] {
            serde_vici::to_vec(&load_conn(&s)).unwrap();
            serde_vici::to_vec(&load_shared(&s)).unwrap();
        }
    }

    #[test]
    fn selectors_use_network_addresses() {
        let s = spec_default();
        let c = load_conn(&s);
        let (_, child) = &c.conn.children.0[0];
        // The rule was written 10.100.0.1/24; host bits are cleared.
        assert_eq!(child.local_ts, vec!["10.100.0.0/24"]);
    }
}
