//! Unified resource ids.
//!
//! A unified id is a fixed prefix, a dash and 8 lower-case letters or digits
//! (`vpc-amhnnao5`). Older clients still send the numeric row id, so every
//! input id is an [`IdRef`]: either form, resolved by the store.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rand::Rng;

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `{prefix}-` followed by 8 lower-case letters or digits, or a positive number")]
pub struct IdError {
    pub prefix: &'static str,
}

/// The resource kinds that have unified ids.
pub trait IdKind: Copy + Send + Sync + 'static {
    const PREFIX: &'static str;
}

macro_rules! kind {
    ($kind:ident, $alias:ident, $prefix:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $kind;
        impl IdKind for $kind {
            const PREFIX: &'static str = $prefix;
        }
        pub type $alias = UnifiedId<$kind>;
    };
}

kind!(VpcKind, VpcId, "vpc");
kind!(VpnGwKind, VpnGwId, "vpngw");
kind!(UserGwKind, UserGwId, "cgw");
kind!(VpnConnKind, VpnConnId, "vpnx");

const SUFFIX_LEN: usize = 8;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A well-formed unified id of kind `K`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnifiedId<K> {
    text: String,
    _kind: PhantomData<K>,
}

impl<K: IdKind> UnifiedId<K> {
    /// A fresh random id. Uniqueness is enforced by the store's unique index;
    /// with 36^8 values a collision is retried there, not prevented here.
    pub fn random() -> Self {
        let mut rng = rand::thread_rng();
        let suffix: String = (0..SUFFIX_LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        Self {
            text: format!("{}-{suffix}", K::PREFIX),
            _kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<K: IdKind> FromStr for UnifiedId<K> {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = IdError { prefix: K::PREFIX };
        let suffix = s
            .strip_prefix(K::PREFIX)
            .and_then(|rest| rest.strip_prefix('-'))
            .ok_or(err.clone())?;
        let ok = suffix.len() == SUFFIX_LEN
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(err);
        }
        Ok(Self {
            text: s.to_owned(),
            _kind: PhantomData,
        })
    }
}

impl<K> fmt::Display for UnifiedId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> fmt::Debug for UnifiedId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> serde::Serialize for UnifiedId<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, K: IdKind> serde::Deserialize<'de> for UnifiedId<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reference to a resource as a caller may write it: the unified id or the
/// numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdRef<K> {
    Numeric(i64),
    Unified(UnifiedId<K>),
}

impl<K: IdKind> FromStr for IdRef<K> {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<i64>() {
                Ok(n) if n > 0 => Ok(IdRef::Numeric(n)),
                _ => Err(IdError { prefix: K::PREFIX }),
            };
        }
        s.parse().map(IdRef::Unified)
    }
}

impl<K: IdKind> fmt::Display for IdRef<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRef::Numeric(n) => write!(f, "{n}"),
            IdRef::Unified(u) => write!(f, "{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unified_and_numeric() {
        let v: IdRef<VpcKind> = "vpc-amhnnao5".parse().unwrap();
        assert!(matches!(v, IdRef::Unified(ref u) if u.as_str() == "vpc-amhnnao5"));
        assert_eq!("42".parse::<IdRef<VpcKind>>().unwrap(), IdRef::Numeric(42));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "vpc-",
            "vpc-AMHNNAO5",
            "vpc-amhnnao",
            "vpc-amhnnao55",
            "cgw-amhnnao5",
            "vpcamhnnao5x",
            "0",
            "-1",
            "99999999999999999999",
            "vpc-amhn nao",
        ] {
            assert!(bad.parse::<IdRef<VpcKind>>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn random_ids_parse_back() {
        for _ in 0..100 {
            let id = VpnConnId::random();
            assert_eq!(id.as_str().parse::<VpnConnId>().unwrap(), id);
        }
    }

    #[test]
    fn formats_as_written() {
        let u: UnifiedId<VpcKind> = "vpc-amhnnao5".parse().unwrap();
        assert_eq!(u.to_string(), "vpc-amhnnao5");
        assert_eq!(format!("{u:?}"), "vpc-amhnnao5");
        assert_eq!(IdRef::Unified(u).to_string(), "vpc-amhnnao5");
        assert_eq!(IdRef::<VpcKind>::Numeric(42).to_string(), "42");
    }
}
