//! Criterion micro-benchmarks of vpcd's per-request and per-task hot
//! functions, on the same typical AddVpnConnEx the load generator sends:
//!
//! - `verify`: the server's signature check, `string_to_sign` + `verify`.
//! - `decode`: `form_urlencoded` parsing of the query string (as `http.rs`
//!   does) + `Params::from_pairs` (as `v2/protocol.rs` does).
//! - `render`: the strongSwan rendering of a connection (`load-conn` and
//!   `load-shared`), and the same encoded to VICI bytes.
//! - `sign`: the generator's own cost of signing one request.
//!
//! `cargo bench -p vpcd-bench --bench micro`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use vpcd::v2::Params;
use vpcd_auth::{encode_form, SignatureMethod, Signer};
use vpcd_bench::fixtures;
use vpcd_dataplane::strongswan::render;

const HOST: &str = "127.0.0.1:8080";
const PATH: &str = "/v2/index.php";
const SECRET_KEY: &[u8] = b"Gu5t9xGARNpq86cd98joQYCN3Cozk1qA";

fn signer() -> Signer<'static> {
    Signer {
        secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA",
        secret_key: SECRET_KEY,
        method: SignatureMethod::HmacSha256,
    }
}

/// The signed parameters of a typical AddVpnConnEx, as the server decodes
/// them from the wire.
fn signed_add() -> Vec<(String, String)> {
    signer().signed_params(
        "GET",
        HOST,
        PATH,
        "AddVpnConnEx",
        "gz",
        1_700_000_000,
        4_242,
        &fixtures::typical_add_params(),
    )
}

fn bench_verify(c: &mut Criterion) {
    let pairs = signed_add();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = pairs
        .iter()
        .find(|(k, _)| k == "Signature")
        .map(|(_, v)| v.clone())
        .expect("signed");
    assert!(vpcd_auth::verify(
        SECRET_KEY,
        SignatureMethod::HmacSha256,
        &vpcd_auth::string_to_sign("GET", HOST, PATH, &borrowed, false),
        &signature
    ));
    c.bench_function("verify/AddVpnConnEx HmacSHA256", |b| {
        b.iter(|| {
            let sts = vpcd_auth::string_to_sign(
                "GET",
                black_box(HOST),
                PATH,
                black_box(&borrowed),
                false,
            );
            vpcd_auth::verify(
                SECRET_KEY,
                SignatureMethod::HmacSha256,
                &sts,
                black_box(&signature),
            )
        })
    });
}

fn bench_decode(c: &mut Criterion) {
    let query = encode_form(&signed_add());
    assert!(Params::from_pairs(
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    )
    .is_ok());
    c.bench_function("decode/AddVpnConnEx query", |b| {
        b.iter(|| {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(black_box(query.as_bytes()))
                .into_owned()
                .collect();
            let params = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            black_box(params.is_ok())
        })
    });
}

fn bench_render(c: &mut Criterion) {
    let spec = fixtures::typical_tunnel_spec();
    c.bench_function("render/load-conn + load-shared", |b| {
        b.iter(|| {
            let conn = render::load_conn(black_box(&spec));
            let shared = render::load_shared(black_box(&spec));
            black_box((conn, shared))
        })
    });
    c.bench_function("render/encoded to VICI", |b| {
        b.iter(|| {
            let conn = serde_vici::to_vec(&render::load_conn(black_box(&spec))).expect("encodes");
            let shared =
                serde_vici::to_vec(&render::load_shared(black_box(&spec))).expect("encodes");
            black_box(conn.len() + shared.len())
        })
    });
}

fn bench_sign(c: &mut Criterion) {
    let params = fixtures::typical_add_params();
    let mut nonce = 0u64;
    c.bench_function("sign/AddVpnConnEx (generator side)", |b| {
        b.iter(|| {
            nonce += 1;
            let signed = signer().signed_params(
                "GET",
                HOST,
                PATH,
                "AddVpnConnEx",
                "gz",
                1_700_000_000,
                nonce,
                black_box(&params),
            );
            encode_form(&signed)
        })
    });
}

criterion_group!(
    benches,
    bench_verify,
    bench_decode,
    bench_render,
    bench_sign
);
criterion_main!(benches);
