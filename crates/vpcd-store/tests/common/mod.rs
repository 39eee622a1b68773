//! Shared test code: the engine-independent store conformance suite and a
//! bulk load.

#[macro_use]
pub(crate) mod conformance;

pub(crate) mod bulk;
