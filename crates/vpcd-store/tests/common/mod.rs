//! Shared test code: the engine-independent store conformance suite, a
//! bulk load, databases left by an older vpcd, storage faults, and secrets
//! at rest.

#[macro_use]
pub(crate) mod conformance;

pub(crate) mod bulk;

pub(crate) mod migration;

pub(crate) mod faults;

pub(crate) mod secrets;
