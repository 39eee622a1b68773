//! `application/x-www-form-urlencoded` for the form-signed protocols (v2, and API 3.0 with
//! `HmacSHA1`/`HmacSHA256`): strict decoding, the unambiguity check, and encoding for clients.
//!
//! Why the server needs more than a lenient decoder (issue 11, finding 5): the form signature signs
//! the *decoded* pairs joined as `k=v&k=v`, and values may contain `&` and `=`. Two different
//! requests can then share one string to sign: {`preSharedKey=X`, `userGwCidrBlock.0=Y`} and the
//! single parameter `preSharedKey` = `X&userGwCidrBlock.0=Y` both join to
//! `preSharedKey=X&userGwCidrBlock.0=Y`, so a signature for one verifies the other. Likewise a
//! lenient decoder turns `%FF` into U+FFFD, so a request signed over U+FFFD verifies with any invalid
//! byte in its place. The signing format is fixed by the clients, so the server refuses the
//! ambiguous inputs instead: run [`decode`] and then [`check_signable`] before verifying.
//!
//! What remains: a client that *itself* signs a value containing `&name=` sends a request this
//! check refuses, but someone who captures it can resend the split form, which passes. Only such
//! values (which real parameters never need) are exposed, and the client's own request is refused.
//!
//! # Layout
//! - [`decode`], [`DecodeError`]: bytes to pairs; invalid UTF-8 is refused, naming the parameter.
//! - [`check_signable`], [`SignableError`], [`is_param_name`]: the unambiguity rule.
//! - [`encode_form`]: pairs to bytes, exactly as the SDK encodes.

/// Why form input could not be decoded. Answer `InvalidParameter` (v2: code 4000), naming the
/// parameter as the message does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A key is not UTF-8 after percent-decoding. `raw` is the key as received, with every byte
    /// outside printable ASCII shown as `%XX`, so the message can name it.
    #[error("parameter {raw}: the name is not valid UTF-8 after percent-decoding")]
    Key { raw: String },
    /// The value of `key` is not UTF-8 after percent-decoding.
    #[error("{key}: the value is not valid UTF-8 after percent-decoding")]
    Value { key: String },
}

/// Decode `application/x-www-form-urlencoded` bytes (a query string or a POST body) into pairs, in
/// order, refusing any key or value that is not UTF-8 after percent-decoding.
///
/// Otherwise the same rules as the `form_urlencoded` crate that the server used before (and the
/// Python SDKs' encoders): split on `&`, skip empty pieces, split each at its first `=` (none means
/// an empty value), `+` is a space, `%XX` is a byte, and a `%` not followed by two hex digits is
/// kept literally. Repeated keys are all returned; refusing them is the adapter's business.
pub fn decode(input: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut pairs = Vec::new();
    for piece in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let key = decode_component(raw_key).ok_or_else(|| DecodeError::Key {
            raw: printable(raw_key),
        })?;
        let value =
            decode_component(raw_value).ok_or_else(|| DecodeError::Value { key: key.clone() })?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `+` to space and `%XX` to its byte; `None` when the result is not UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let escaped = match raw.get(i..i + 3) {
            Some(&[b'%', hi, lo]) => hex_digit(hi).zip(hex_digit(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Bytes for an error message: printable ASCII as is, everything else `%XX`.
fn printable(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Why decoded pairs cannot be signed unambiguously. Answer `InvalidParameter` (v2: code 4000;
/// 3.0: `InvalidParameter`), naming [`SignableError::key`]; the value is never repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignableError {
    /// The key does not have the shape of a parameter name (see [`is_param_name`]).
    #[error("{key:?}: not a parameter name (ASCII letters, digits, '.', '_', '-')")]
    Name { key: String },
    /// The value of `key` contains `&` followed by a parameter name and `=`, so it joins to the
    /// same string to sign as two parameters would.
    #[error("{key}: the value must not contain '&' followed by a parameter name and '='")]
    Value { key: String },
}

impl SignableError {
    /// The offending parameter's key, as received.
    pub fn key(&self) -> &str {
        match self {
            Self::Name { key } | Self::Value { key } => key,
        }
    }
}

/// Whether `key` has the shape of a parameter name: non-empty, only ASCII letters, digits, `.`,
/// `_` and `-`. Every name of both APIs has it (`Filters.0.Values.1`, `userGwCidrBlock_0`).
pub fn is_param_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Refuse decoded pairs whose string to sign would also be the string to sign of other pairs.
///
/// The rule: every key is a parameter name ([`is_param_name`]; this excludes `&` and `=`), and no
/// value contains `&`, then one or more name characters, then `=` (`X&userGwCidrBlock.0=Y`). A
/// plain `&` in a value stays allowed: `R&D`, `a & b`, `x&`, `a&b` and even `a&=b`.
///
/// Why keys must be names, not merely free of `&` and `=`: with a key `é` allowed, {`a` = `X&é=Y`}
/// and {`a` = `X`, `é` = `Y`} would collide, and the value rule would have to refuse every `&...=`.
/// With both rules the joined string has exactly one reading: a key runs to the first `=`, a
/// value runs to the next `&name=` (no value contains one, and a match cannot straddle the `&` that
/// separates pairs, since `&` is not a name character) or to the end. So accepted pair lists with
/// different sorted (`_` -> `.` rewritten) contents never share a string to sign; the property
/// tests check this by parsing strings back.
pub fn check_signable<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<(), SignableError> {
    for (key, value) in pairs {
        let key = key.as_ref();
        if !is_param_name(key) {
            return Err(SignableError::Name {
                key: key.to_owned(),
            });
        }
        if has_assignment(value.as_ref()) {
            return Err(SignableError::Value {
                key: key.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `value` contains `&`, one or more name bytes, then `=`. Linear: each scan stops at the
/// next `&`, which is not a name byte.
fn has_assignment(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().any(|(at, &b)| {
        if b != b'&' {
            return false;
        }
        let name_len = bytes[at + 1..]
            .iter()
            .take_while(|&&c| is_name_byte(c))
            .count();
        name_len > 0 && bytes.get(at + 1 + name_len) == Some(&b'=')
    })
}

/// `application/x-www-form-urlencoded`, byte for byte what the SDK's `urlencode` (Python's
/// `quote_plus`) produces: UTF-8, `A-Z a-z 0-9 - . _ ~` kept, space -> `+`, all else `%XX` upper-case.
///
/// Matching the SDK exactly (rather than any valid encoding) lets captured SDK requests and ours be
/// compared as strings.
pub fn encode_form(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_form_component(&mut out, key);
        out.push('=');
        push_form_component(&mut out, value);
    }
    out
}

fn push_form_component(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => push_escaped(out, b),
        }
    }
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn decode_follows_form_rules() {
        assert_eq!(
            decode(b"a=1&&b=x+y%2B%26%3D&c&=v&d=%zz%4&e=%e9%A9%bd&f=a=b").unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "x y+&="),
                ("c", ""),
                ("", "v"),
                ("d", "%zz%4"),
                ("e", "驽"),
                ("f", "a=b"),
            ])
        );
        assert_eq!(decode(b"").unwrap(), pairs(&[]));
        assert_eq!(decode("k=é".as_bytes()).unwrap(), pairs(&[("k", "é")]));
    }

    #[test]
    fn decode_refuses_invalid_utf8_naming_the_parameter() {
        assert_eq!(
            decode(b"a=1&preSharedKey=%FF&b=2"),
            Err(DecodeError::Value {
                key: "preSharedKey".into()
            })
        );
        assert_eq!(
            decode(b"a=1&pre\xffKey=x"),
            Err(DecodeError::Key {
                raw: "pre%FFKey".into()
            })
        );
        assert_eq!(
            decode(b"x%C3=1"),
            Err(DecodeError::Key { raw: "x%C3".into() })
        );
        // A half-escaped sequence and a raw invalid byte in a value.
        assert!(decode(b"k=%C3%").is_err());
        assert!(decode(b"k=\xC3").is_err());
        let message = decode(b"preSharedKey=secret%FF").unwrap_err().to_string();
        assert!(message.contains("preSharedKey") && !message.contains("secret"));
    }

    #[test]
    fn check_signable_rules() {
        let accepted: &[&[(&str, &str)]] = &[
            &[
                ("vpnConnName", "R&D"),
                ("a", "a & b"),
                ("b", "x&"),
                ("c", "a&b"),
            ],
            &[
                ("c", "a&=b"),
                ("d", "&"),
                ("e", "=&"),
                ("f", "a=b&c"),
                ("g", ""),
            ],
            &[("userGwCidrBlock_0", "1"), ("Filters.0.Values-1", "&é=x")],
        ];
        for list in accepted {
            assert_eq!(check_signable(list), Ok(()), "{list:?}");
        }
        for (list, bad) in [
            (
                &[("a", "1"), ("preSharedKey", "X&userGwCidrBlock.0=Y")][..],
                "preSharedKey",
            ),
            (&[("p", "&a=")], "p"),
            (&[("p", "R&D&x_y.z-0=1")], "p"),
        ] {
            assert_eq!(
                check_signable(list),
                Err(SignableError::Value { key: bad.into() })
            );
        }
        for key in ["", "a&b", "a=b", "é", "a b", "a+b", "Signature?"] {
            let err = check_signable(&[(key, "v")]).unwrap_err();
            assert_eq!(err, SignableError::Name { key: key.into() });
            assert_eq!(err.key(), key);
        }
        let message = check_signable(&[("preSharedKey", "s3cret&a=b")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("preSharedKey") && !message.contains("s3cret"));
    }

    #[test]
    fn encode_form_matches_python_urlencode() {
        // Python 3.11: urlencode([("k ~*-._!'()", ...), ("é", "😀"), ("", "")])
        let params = vec![
            (
                "k ~*-._!'()".to_owned(),
                "a~b*c d+e&f=g/h?i#j%k@l;m:n,o$p[q]r{s}t|u\\v^w`x\"y<z>".to_owned(),
            ),
            ("é".to_owned(), "😀".to_owned()),
            (String::new(), String::new()),
        ];
        assert_eq!(
            encode_form(&params),
            "k+~%2A-._%21%27%28%29=a~b%2Ac+d%2Be%26f%3Dg%2Fh%3Fi%23j%25k%40l%3Bm%3An%2Co%24p%5Bq%5Dr\
             %7Bs%7Dt%7Cu%5Cv%5Ew%60x%22y%3Cz%3E&%C3%A9=%F0%9F%98%80&="
        );
        assert_eq!(encode_form(&[]), "");
    }
}
