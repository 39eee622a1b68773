//! Internal row ids.
//!
//! Every stored resource has a numeric id assigned by the database. The v2
//! API shows it (`vpcId: 42`) beside the unified id, and the store, the task
//! engine and the data-plane drivers pass it around. A bare `i64` would let a
//! gateway's id be handed where a connection's is expected; [`RowId`] carries
//! the kind in its type, so the compiler refuses that.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::id::{UserGwKind, VpcKind, VpnConnKind, VpnGwKind};

/// The kinds of rows that have an id. `NAME` is used by `Debug`.
pub trait RowKind: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! row_kind {
    ($($kind:ident => $name:literal),* $(,)?) => {$(
        impl RowKind for $kind {
            const NAME: &'static str = $name;
        }
    )*};
}

/// Marker for tasks, which have no unified id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskRow;
/// Marker for strongSwan gateway nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GatewayNodeRow;
/// Marker for accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountRow;

row_kind! {
    VpcKind => "VpcRowId",
    VpnGwKind => "VpnGwRowId",
    UserGwKind => "UserGwRowId",
    VpnConnKind => "VpnConnRowId",
    TaskRow => "TaskId",
    GatewayNodeRow => "GatewayNodeId",
    AccountRow => "AccountId",
}

/// The database id of a row of kind `K`.
pub struct RowId<K> {
    value: i64,
    _kind: PhantomData<fn() -> K>,
}

pub type VpcRowId = RowId<VpcKind>;
pub type VpnGwRowId = RowId<VpnGwKind>;
pub type UserGwRowId = RowId<UserGwKind>;
pub type VpnConnRowId = RowId<VpnConnKind>;
pub type TaskId = RowId<TaskRow>;
pub type GatewayNodeId = RowId<GatewayNodeRow>;
pub type AccountId = RowId<AccountRow>;

impl<K> RowId<K> {
    /// Wrap an id read from the database (or parsed from an API parameter
    /// that names this kind of row).
    pub const fn new(value: i64) -> Self {
        RowId {
            value,
            _kind: PhantomData,
        }
    }

    /// The number as stored.
    pub const fn get(self) -> i64 {
        self.value
    }
}

// Written out rather than derived: derives would require `K` itself to be
// Clone/Eq/..., which the zero-sized markers need not be.
impl<K> Clone for RowId<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for RowId<K> {}
impl<K> PartialEq for RowId<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<K> Eq for RowId<K> {}
impl<K> PartialOrd for RowId<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for RowId<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<K> Hash for RowId<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<K: RowKind> fmt::Debug for RowId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", K::NAME, self.value)
    }
}

/// The bare number, as the v2 API shows it.
impl<K> fmt::Display for RowId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

impl<K> serde::Serialize for RowId<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_number_and_the_kind() {
        let id = TaskId::new(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(format!("{id:?}"), "TaskId(42)");
        assert_eq!(serde_json::to_string(&VpcRowId::new(7)).unwrap(), "7");
        assert_eq!(id.get(), 42);
    }

    #[test]
    fn compares_and_hashes_by_value() {
        use std::hash::DefaultHasher;
        let hash = |id: TaskId| {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        assert_eq!(TaskId::new(3), TaskId::new(3));
        assert_ne!(TaskId::new(3), TaskId::new(4));
        assert!(TaskId::new(3) < TaskId::new(4));
        assert_eq!(
            TaskId::new(4).partial_cmp(&TaskId::new(3)),
            Some(std::cmp::Ordering::Greater)
        );
        assert_eq!(hash(TaskId::new(3)), hash(TaskId::new(3)));
        assert_ne!(hash(TaskId::new(3)), hash(TaskId::new(4)));
    }
}
