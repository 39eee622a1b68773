//! Shared test code: the engine-independent store conformance suite, a
//! bulk load, and databases left by an older vpcd.

#[macro_use]
pub(crate) mod conformance;

pub(crate) mod bulk;

pub(crate) mod migration;
