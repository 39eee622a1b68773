//! Issue 11, finding 5: the form signature joins decoded `k=v` pairs with `&`, so values holding
//! `&name=` and lossy UTF-8 decoding let one signature cover two different requests. These tests
//! show the raw algorithm is ambiguous and that `form::decode` + `form::check_signable`, run before
//! verifying, leave at most one reading that verifies.

use proptest::prelude::*;
use vpcd_auth::form::{check_signable, decode, is_param_name, DecodeError, SignableError};
use vpcd_auth::{encode_form, string_to_sign, verify, SignatureMethod, Signer};

const PATH: &str = "/v2/index.php";
const HOST: &str = "vpc.api.qcloud.com";
const KEY: &[u8] = b"Gu5t9xGARNpq86cd98joQYCN3Cozk1qA";

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn sign_request(params: &[(&str, &str)]) -> Vec<(String, String)> {
    let signer = Signer {
        secret_id: "AKIDexample",
        secret_key: KEY,
        method: SignatureMethod::HmacSha256,
    };
    signer.signed_params(
        "POST",
        HOST,
        PATH,
        "AddVpnConnEx",
        "gz",
        1_700_000_000,
        7,
        &owned(params),
    )
}

/// What the v2 adapter does with a body: decode strictly, check, rebuild, verify.
fn server(body: &[u8]) -> Result<bool, String> {
    let pairs = decode(body).map_err(|e| e.to_string())?;
    check_signable(&pairs).map_err(|e| e.to_string())?;
    Ok(raw_verifies(&pairs))
}

/// The bare algorithm, without the new checks: what the server did before.
fn raw_verifies(pairs: &[(String, String)]) -> bool {
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let provided = borrowed.iter().find(|(k, _)| *k == "Signature").unwrap().1;
    let to_sign = string_to_sign("POST", HOST, PATH, &borrowed, true);
    verify(KEY, SignatureMethod::HmacSha256, &to_sign, provided)
}

/// Merge `second` into `first` as `first=X&second=Y`, keeping the Signature: the resent request.
fn merge(signed: &[(String, String)], first: &str, second: &str) -> Vec<(String, String)> {
    let second_value = signed.iter().find(|(k, _)| k == second).unwrap().1.clone();
    signed
        .iter()
        .filter(|(k, _)| k != second)
        .map(|(k, v)| {
            let v = if k == first {
                format!("{v}&{second}={second_value}")
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

#[test]
fn two_params_resent_as_one_no_longer_verify() {
    let signed = sign_request(&[("preSharedKey", "X"), ("userGwCidrBlock.0", "10.0.0.0/24")]);
    let merged = merge(&signed, "preSharedKey", "userGwCidrBlock.0");
    assert_eq!(merged.len(), signed.len() - 1);
    // Before: both readings verify with the one signature.
    assert!(raw_verifies(&signed) && raw_verifies(&merged));
    // Now: the signed request passes, the merged one is refused before verification.
    assert_eq!(server(encode_form(&signed).as_bytes()), Ok(true));
    assert_eq!(
        check_signable(&merged),
        Err(SignableError::Value {
            key: "preSharedKey".into()
        })
    );
    let refused = server(encode_form(&merged).as_bytes()).unwrap_err();
    assert!(refused.contains("preSharedKey") && !refused.contains("10.0.0.0"));
}

#[test]
fn one_param_resent_as_two_no_longer_both_verify() {
    let signed = sign_request(&[("preSharedKey", "X&userGwCidrBlock.0=10.0.0.0/24")]);
    let split: Vec<(String, String)> = signed
        .iter()
        .flat_map(|(k, v)| match v.split_once("&userGwCidrBlock.0=") {
            Some((psk, cidr)) if k == "preSharedKey" => vec![
                (k.clone(), psk.to_owned()),
                ("userGwCidrBlock.0".to_owned(), cidr.to_owned()),
            ],
            _ => vec![(k.clone(), v.clone())],
        })
        .collect();
    assert!(raw_verifies(&signed) && raw_verifies(&split));
    // The signed form is refused, so only one reading of this signature is ever accepted. (The
    // split one is a different, unambiguous request; see the `form` module docs for why that
    // residue is inherent to the clients' format.)
    assert!(server(encode_form(&signed).as_bytes()).is_err());
    assert_eq!(server(encode_form(&split).as_bytes()), Ok(true));
}

#[test]
fn plain_ampersands_in_values_still_verify() {
    for name in ["R&D", "a & b", "x&", "&", "a&b", "a&=b", "=&="] {
        let signed = sign_request(&[("vpnConnName", name), ("preSharedKey", "p&ss")]);
        assert_eq!(
            server(encode_form(&signed).as_bytes()),
            Ok(true),
            "{name:?}"
        );
    }
}

#[test]
fn invalid_utf8_is_refused_not_replaced() {
    // Signed over U+FFFD, sent as %FF: the old lenient decoder turned it back into U+FFFD.
    let signed = sign_request(&[("preSharedKey", "\u{FFFD}")]);
    let body = encode_form(&signed).replace("%EF%BF%BD", "%FF");
    let lenient: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert!(raw_verifies(&lenient));
    assert_eq!(
        decode(body.as_bytes()),
        Err(DecodeError::Value {
            key: "preSharedKey".into()
        })
    );
    // The genuine U+FFFD, percent-encoded as UTF-8, is still fine.
    assert_eq!(server(encode_form(&signed).as_bytes()), Ok(true));
}

/// The string-to-sign pairs with the algorithm's own ordering (canonical key, key, value) and the
/// `_` -> `.` rewrite: what a string to sign can at best determine.
fn canonical(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut sorted: Vec<(String, String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.replace('_', "."), k.clone(), v.clone()))
        .collect();
    sorted.sort();
    sorted.into_iter().map(|(c, _, v)| (c, v)).collect()
}

fn joined(pairs: &[(String, String)]) -> String {
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let full = string_to_sign("GET", "h", "/p", &borrowed, false);
    full.strip_prefix("GETh/p?").unwrap().to_owned()
}

/// A reader for joined strings of accepted pairs, written from the grammar in `check_signable`'s
/// docs: a key runs to the first `=`, a value to the next `&<name>=` or the end.
fn parse_back(joined: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = joined;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("every pair has '='");
        let value_end = (0..after.len())
            .find(|&i| {
                after.as_bytes()[i] == b'&'
                    && after[i + 1..]
                        .split_once('=')
                        .is_some_and(|(name, _)| is_param_name(name))
            })
            .unwrap_or(after.len());
        out.push((key.to_owned(), after[..value_end].to_owned()));
        rest = after.get(value_end + 1..).unwrap_or("");
    }
    out
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[A-Za-z0-9._-]{1,5}", 1 => "[a-z&=é]{0,3}"]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z&=._ -]{0,8}", "[a&=]{0,6}", any::<String>()]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), value()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// For accepted pairs the joined string can be read back into exactly those pairs, so no two
    /// accepted pair lists with different contents share a string to sign.
    #[test]
    fn accepted_pairs_read_back(list in pairs()) {
        prop_assume!(check_signable(&list).is_ok());
        prop_assert_eq!(parse_back(&joined(&list)), canonical(&list));
    }

    /// Direct form of the same claim: every other way of cutting the joined string into pairs
    /// (at any subset of its `&`, each piece at its first `=`) that the check accepts and that
    /// joins to the same string is the original list.
    #[test]
    fn no_other_accepted_cut_of_the_string(list in pairs()) {
        prop_assume!(check_signable(&list).is_ok());
        let original = joined(&list);
        let cuts: Vec<usize> = original.match_indices('&').map(|(i, _)| i).take(10).collect();
        for mask in 0u32..(1 << cuts.len()) {
            let mut pieces = Vec::new();
            let mut from = 0;
            for (bit, &cut) in cuts.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    pieces.push(&original[from..cut]);
                    from = cut + 1;
                }
            }
            pieces.push(&original[from..]);
            let Some(other): Option<Vec<(String, String)>> = pieces
                .iter()
                .map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect()
            else {
                continue;
            };
            if !original.is_empty() && check_signable(&other).is_ok() && joined(&other) == original {
                prop_assert_eq!(canonical(&other), canonical(&list));
            }
        }
    }

    /// Merging any two neighbouring accepted pairs into one value (the attack) yields the same
    /// string to sign, and is always refused. (Keys unique after the `_` -> `.` rewrite, as a
    /// request's are: with repeated keys the algorithm also orders by value, so the merge moves.)
    #[test]
    fn merged_neighbours_are_refused(
        map in prop::collection::btree_map("[A-Za-z0-9.-]{1,5}", value(), 2..6),
        at in any::<prop::sample::Index>(),
    ) {
        let list: Vec<(String, String)> = map.into_iter().collect();
        prop_assume!(check_signable(&list).is_ok());
        let sorted: Vec<(String, String)> = canonical(&list);
        let i = at.index(sorted.len() - 1);
        let mut merged = sorted.clone();
        let (next_key, next_value) = merged.remove(i + 1);
        merged[i].1 = format!("{}&{next_key}={next_value}", merged[i].1);
        prop_assert_eq!(joined(&merged), joined(&sorted));
        prop_assert!(check_signable(&merged).is_err());
    }

    /// Strict decoding agrees with the lenient `form_urlencoded` wherever the input is valid UTF-8
    /// after decoding, and refuses exactly where the lenient one substitutes U+FFFD.
    #[test]
    fn decode_matches_form_urlencoded_or_refuses(
        input in prop::collection::vec(prop::sample::select(
            b"%&=+aF0e9cC3\xff\xc3\xa9\xbd ".to_vec()), 0..40),
    ) {
        let lenient: Vec<(String, String)> = form_urlencoded::parse(&input).into_owned().collect();
        match decode(&input) {
            Ok(strict) => prop_assert_eq!(strict, lenient),
            Err(_) => {
                let substituted = lenient.iter().any(|(k, v)| k.contains(char::REPLACEMENT_CHARACTER) || v.contains(char::REPLACEMENT_CHARACTER));
                prop_assert!(substituted);
            }
        }
    }

    /// Decoding undoes the SDK-compatible encoder.
    #[test]
    fn decode_inverts_encode(list in prop::collection::vec((any::<String>(), any::<String>()), 0..6)) {
        prop_assert_eq!(decode(encode_form(&list).as_bytes()), Ok(list));
    }
}
