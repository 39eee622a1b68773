//! swanctl.conf for a strongSwan peer.

use std::fmt::Write as _;

use vpcd_types::TunnelSpec;

use super::{header, hex, peer_view};
use crate::strongswan::render;

/// swanctl.conf, loadable with `swanctl --load-all --file FILE`.
pub(super) fn strongswan(spec: &TunnelSpec) -> String {
    let v = peer_view(spec);
    let mut out = String::new();
    header(&mut out, "#", spec);
    out.push_str("# Load with: swanctl --load-all --file <this file>\n");
    out.push_str(&render::peer_conn(spec).to_string());
    // Named after the tunnel so that several generated files can be
    // concatenated into one swanctl.conf.
    let _ = writeln!(out, "secrets {{\n  ike-{} {{", spec.name);
    let _ = writeln!(out, "    id-local = {}", v.local_id.value());
    let _ = writeln!(out, "    id-remote = {}", v.remote_id.value());
    let _ = writeln!(
        out,
        "    secret = 0x{}",
        hex(spec.settings.pre_shared_key.expose().as_bytes())
    );
    out.push_str("  }\n}\n");
    out
}
