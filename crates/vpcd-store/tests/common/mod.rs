//! Shared test code: the engine-independent store conformance suite.

#[macro_use]
pub(crate) mod conformance;
