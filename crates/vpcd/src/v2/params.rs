//! Decoding the flat `key=value` parameters of a v2 request.
//!
//! The raw pairs (decoded, in wire order) are what the signature covers; this
//! module turns them into a map the action adapters read from, which:
//! - refuses a repeated key (4000), also when two spellings of a nested set
//!   field name the same thing (`IKESet.x` and `ikeSet.0.x`);
//! - folds the documented spellings of nested sets into one canonical form:
//!   `IKESet.x`, `IKESet.0.x` and `ikeSet.0.x` all become `IKESet.x`, and the
//!   same for `IPsecSet`;
//! - offers typed getters whose errors name the parameter as it was sent.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// A request's parameters, decoded.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// The nested sets and their canonical prefixes.
const SETS: &[(&str, &str)] = &[("ikeset", "IKESet"), ("ipsecset", "IPsecSet")];

fn canonical_key(key: &str) -> ApiResult<String> {
    // The signature treats `_` in a key as `.`, so parsing must too: `a_b`
    // and `a.b` are one parameter (and together a repeat).
    let key = key.replace('_', ".");
    let Some((head, rest)) = key.split_once('.') else {
        return Ok(key);
    };
    let lower = head.to_ascii_lowercase();
    let Some((_, canon)) = SETS.iter().find(|(l, _)| *l == lower) else {
        return Ok(key.clone());
    };
    // `IKESet.0.x` is the single-element array form of `IKESet.x`.
    let field = match rest.split_once('.') {
        Some(("0", field)) => field,
        Some((idx, _)) if idx.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(ApiError::invalid(
                &key,
                format!("{canon} holds one set of settings; only index 0 is allowed"),
            ))
        }
        _ => rest,
    };
    Ok(format!("{canon}.{field}"))
}

impl Params {
    /// Build from decoded pairs in wire order; the error is the v2
    /// `message`. For callers outside the crate (the benchmarks).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        Self::decode(pairs).map_err(|e| e.v2_message())
    }

    /// Build from decoded pairs in wire order.
    pub(crate) fn decode<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> ApiResult<Self> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if k.is_empty() {
                return Err(ApiError::invalid("(empty name)", "a parameter has no name"));
            }
            let key = canonical_key(k)?;
            if map.insert(key.clone(), v.to_owned()).is_some() {
                return Err(ApiError::invalid(
                    &key,
                    "the parameter is given more than once",
                ));
            }
        }
        Ok(Params { map })
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A present value; an empty value is an error (an empty optional value
    /// is a mistake worth reporting, not a silent default).
    pub(crate) fn opt_str(&self, key: &str) -> ApiResult<Option<&str>> {
        match self.raw(key) {
            None => Ok(None),
            Some("") => Err(ApiError::invalid(key, "must not be empty")),
            Some(v) => Ok(Some(v)),
        }
    }

    pub(crate) fn req_str(&self, key: &str) -> ApiResult<&str> {
        self.opt_str(key)?.ok_or_else(|| ApiError::missing(key))
    }

    /// Parse an optional value with `FromStr`, naming `key` on failure.
    pub(crate) fn opt_parse<T>(&self, key: &str) -> ApiResult<Option<T>>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_str(key)?
            .map(|v| v.parse::<T>().map_err(|e| ApiError::invalid(key, e)))
            .transpose()
    }

    pub(crate) fn req_parse<T>(&self, key: &str) -> ApiResult<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_parse(key)?.ok_or_else(|| ApiError::missing(key))
    }

    /// A required value checked by a domain parser, whose refusal is
    /// answered with `code`. An empty value goes to the parser too (names
    /// and keys have their own rule about emptiness).
    pub(crate) fn req_with<T, E: Display>(
        &self,
        key: &str,
        code: ErrorCode,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> ApiResult<T> {
        self.opt_with(key, code, parse)?
            .ok_or_else(|| ApiError::missing(key))
    }

    /// Like [`Params::req_with`], for an optional value.
    pub(crate) fn opt_with<T, E: Display>(
        &self,
        key: &str,
        code: ErrorCode,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> ApiResult<Option<T>> {
        self.raw(key)
            .map(|v| parse(v).map_err(|why| ApiError::wire(code, key, why)))
            .transpose()
    }

    /// An optional integer within `range`.
    pub(crate) fn opt_int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> ApiResult<Option<i64>> {
        let Some(v) = self.opt_str(key)? else {
            return Ok(None);
        };
        if !is_plain_int(v) {
            return Err(ApiError::invalid(key, "must be an integer"));
        }
        // An integer that does not fit in an i64 is out of every range.
        if !parse_int(v).is_some_and(|n| range.contains(&n)) {
            return Err(ApiError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
        Ok(parse_int(v))
    }

    /// The elements of an array parameter `name.0`, `name.1`, ... in index
    /// order. Indexes must be 0..n without gaps.
    pub(crate) fn array(&self, name: &str) -> ApiResult<Vec<(String, &str)>> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, String, &str)> = Vec::new();
        for (k, v) in self.map.range(prefix.clone()..) {
            let Some(idx) = k.strip_prefix(&prefix) else {
                break;
            };
            let n: u32 = idx
                .parse()
                .ok()
                .filter(|_| idx.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::invalid(k, "array index must be a number"))?;
            items.push((n, k.clone(), v.as_str()));
        }
        items.sort_by_key(|(n, _, _)| *n);
        for (expected, (n, key, _)) in items.iter().enumerate() {
            if *n as usize != expected {
                return Err(ApiError::invalid(
                    key,
                    format!("array indexes must start at 0 and have no gaps (expected {name}.{expected})"),
                ));
            }
        }
        Ok(items.into_iter().map(|(_, k, v)| (k, v)).collect())
    }

    /// The indexes of an array of sets `name.N.field`, which must run 0..n.
    pub(crate) fn array_sets(&self, name: &str) -> ApiResult<Vec<u32>> {
        let prefix = format!("{name}.");
        let mut idx: Vec<u32> = Vec::new();
        for k in self.map.keys() {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let (n, _) = rest
                .split_once('.')
                // The message names the key once (issue 11, finding 9).
                .ok_or_else(|| {
                    ApiError::invalid(k, "must end in an element's field, as in .0.field")
                })?;
            let n: u32 = n
                .parse()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::invalid(k, "array index must be a number"))?;
            if !idx.contains(&n) {
                idx.push(n);
            }
        }
        idx.sort_unstable();
        if idx.iter().enumerate().any(|(i, n)| *n as usize != i) {
            return Err(ApiError::invalid(
                name,
                "array indexes must start at 0 and have no gaps",
            ));
        }
        Ok(idx)
    }

    /// Every key, in canonical spelling and sorted order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

/// A plain decimal integer: optional '-', digits only (no '+', spaces or
/// exponents, which `str::parse` would partly accept).
/// `None` also when the number does not fit in an i64.
pub(crate) fn parse_int(v: &str) -> Option<i64> {
    is_plain_int(v).then(|| v.parse().ok()).flatten()
}

fn is_plain_int(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Param;

    fn p(pairs: &[(&str, &str)]) -> ApiResult<Params> {
        Params::decode(pairs.iter().copied())
    }

    #[test]
    fn nested_spellings_fold() {
        for k in [
            "IKESet.dhGroupName",
            "IKESet.0.dhGroupName",
            "ikeSet.0.dhGroupName",
        ] {
            let params = p(&[(k, "group2")]).unwrap();
            assert_eq!(params.raw("IKESet.dhGroupName"), Some("group2"), "{k}");
        }
        let params = p(&[("ipsecSet.0.pfsDhGroup", "null")]).unwrap();
        assert_eq!(params.raw("IPsecSet.pfsDhGroup"), Some("null"));
    }

    #[test]
    fn repeated_names_are_refused_even_across_spellings() {
        let e = p(&[("a", "1"), ("a", "2")]).unwrap_err();
        assert_eq!(e.code.v2_code(), 4000);
        assert_eq!(e.param, Some(Param::Wire("a".into())));
        let e = p(&[("IKESet.x", "1"), ("ikeSet.0.x", "2")]).unwrap_err();
        assert_eq!(e.param, Some(Param::Wire("IKESet.x".into())));
    }

    /// Issue 11, finding 9: the message does not repeat the key.
    #[test]
    fn a_set_key_without_a_field_is_named_once() {
        let params = p(&[("subnetSet.0", "x")]).unwrap();
        let e = params.array_sets("subnetSet").unwrap_err();
        assert_eq!(
            e.v2_message(),
            "subnetSet.0: must end in an element's field, as in .0.field"
        );
    }

    #[test]
    fn underscore_means_dot_and_both_spellings_are_a_repeat() {
        let params = p(&[("IKESet_dhGroupName", "group5"), ("a_b", "1")]).unwrap();
        assert_eq!(params.raw("IKESet.dhGroupName"), Some("group5"));
        assert_eq!(params.raw("a.b"), Some("1"));
        for (first, second, named) in [
            ("a_b", "a.b", "a.b"),
            ("a.b", "a_b", "a.b"),
            (
                "IKESet.dhGroupName",
                "IKESet_dhGroupName",
                "IKESet.dhGroupName",
            ),
            (
                "ikeSet_0_dhGroupName",
                "IKESet.dhGroupName",
                "IKESet.dhGroupName",
            ),
            (
                "userGwCidrBlock_0",
                "userGwCidrBlock.0",
                "userGwCidrBlock.0",
            ),
        ] {
            let e = p(&[(first, "1"), (second, "1")]).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameter, "{first} {second}");
            assert_eq!(e.param, Some(Param::Wire(named.into())), "{first} {second}");
        }
    }

    /// The entry point for callers outside the crate decodes the same way,
    /// and its error is the v2 `message`.
    #[test]
    fn from_pairs_decodes_and_answers_the_v2_message() {
        let params = Params::from_pairs([("ikeSet.0.dhGroupName", "group5")]).unwrap();
        assert_eq!(params.raw("IKESet.dhGroupName"), Some("group5"));
        let e = Params::from_pairs([("a", "1"), ("a", "2")]).unwrap_err();
        assert_eq!(e, "a: the parameter is given more than once");
    }

    #[test]
    fn set_index_other_than_zero_is_refused() {
        assert!(p(&[("IKESet.1.x", "1")]).is_err());
    }

    /// Only a numeric second part is an index: `IKESet.x.y` keeps its
    /// spelling (and is later an unknown parameter by that name), rather
    /// than being refused as a set index other than 0.
    #[test]
    fn a_set_field_with_a_dot_is_not_an_index() {
        let params = p(&[("ikeSet.dh.x", "1")]).unwrap();
        assert_eq!(params.raw("IKESet.dh.x"), Some("1"));
        assert_eq!(params.keys().collect::<Vec<_>>(), ["IKESet.dh.x"]);
    }

    /// The elements of an array of sets: each index once however many
    /// fields it has, in order; a gap or a start other than 0 is refused
    /// naming the array.
    #[test]
    fn array_sets_lists_each_index_once_and_refuses_gaps() {
        let params = p(&[
            ("subnetSet.1.cidrBlock", "10.0.1.0/24"),
            ("subnetSet.0.cidrBlock", "10.0.0.0/24"),
            ("subnetSet.0.subnetName", "a"),
            ("subnetSet.1.subnetName", "b"),
        ])
        .unwrap();
        assert_eq!(params.array_sets("subnetSet").unwrap(), [0, 1]);
        assert_eq!(params.array_sets("other").unwrap(), Vec::<u32>::new());
        for gap in [
            &[("subnetSet.1.cidrBlock", "x")][..],
            &[
                ("subnetSet.0.cidrBlock", "x"),
                ("subnetSet.2.cidrBlock", "y"),
            ],
        ] {
            let e = p(gap).unwrap().array_sets("subnetSet").unwrap_err();
            assert_eq!(
                e.v2_message(),
                "subnetSet: array indexes must start at 0 and have no gaps"
            );
        }
    }

    #[test]
    fn arrays_in_index_order_without_gaps() {
        let params = p(&[("c.10", "k"), ("c.1", "b"), ("c.0", "a")]).unwrap();
        assert!(params.array("c").is_err());
        let params = p(&[("c.2", "c"), ("c.1", "b"), ("c.0", "a"), ("cx", "z")]).unwrap();
        let v: Vec<&str> = params
            .array("c")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(v, ["a", "b", "c"]);
        let params = p(&[("c.x", "a")]).unwrap();
        assert!(params.array("c").is_err());
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int("42"), Some(42));
        for bad in [
            "",
            "+1",
            " 1",
            "1e3",
            "1.0",
            "0x10",
            "-",
            "9223372036854775808",
        ] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
        // Issue 11: every i64 is accepted, up to 19 digits.
        assert_eq!(parse_int("9223372036854775807"), Some(i64::MAX));
        let params = p(&[("taskId", "9223372036854775807")]).unwrap();
        assert_eq!(
            params.opt_int("taskId", 1..=i64::MAX).unwrap(),
            Some(i64::MAX)
        );
        let params = p(&[("taskId", "99999999999999999999")]).unwrap();
        let e = params.opt_int("taskId", 1..=i64::MAX).unwrap_err();
        assert!(e.v2_message().contains("between"), "{}", e.v2_message());
        let params = p(&[("n", "7")]).unwrap();
        assert_eq!(
            params.opt_int("n", 0..=5).unwrap_err().param,
            Some(Param::Wire("n".into()))
        );
    }
}
