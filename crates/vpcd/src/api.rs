//! The state the API side (HTTP, protocol adapters, operations) sees.
//!
//! It is deliberately narrow: the API side reads and writes the store, and
//! tells the background side that a task is waiting through [`ApiState::tasks`];
//! it never sees the task engine, the data-plane drivers or the cluster.

use std::sync::Arc;

use tokio::sync::Notify;
use vpcd_store::Store;

use crate::clock::Clock;
use crate::placement::Placement;
use crate::settings::Settings;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) clock: Clock,
    pub(crate) placement: Arc<Placement>,
    /// Notified after a task row commits, so a worker picks it up at once.
    pub(crate) tasks: Arc<Notify>,
}
