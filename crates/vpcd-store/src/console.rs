//! What the web console keeps: console passwords and sign-in sessions.
//!
//! A supertrait of [`crate::Store`] so that its methods live apart from the
//! API's while every engine still implements them (`sql/console.rs`), and
//! `Arc<dyn Store>` offers them.

use async_trait::async_trait;
use vpcd_types::AccountId;

use crate::{Result, Scope, Task, Timestamp};

/// What signing in with an account's console password needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLogin {
    pub account_id: AccountId,
    /// The Argon2id hash in PHC form; `None` when no console password is set.
    pub password_hash: Option<String>,
    pub disabled: bool,
}

/// A new sign-in session. `token_hash` is a hash of the token the browser
/// holds, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsoleSession {
    pub token_hash: String,
    pub account_id: AccountId,
    /// The key the session was opened with; `None` for a password sign-in.
    pub secret_id: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A live session, as [`ConsoleStore::find_console_session`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub account_id: AccountId,
    pub account_name: String,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait ConsoleStore {
    /// Set (`Some`, a PHC hash string) or clear (`None`) the console
    /// password of the account named `account`. `NotFound(Account)` if there
    /// is no such account.
    async fn set_console_password(&self, account: &str, hash: Option<&str>) -> Result<()>;
    /// The account named `account`, for a password sign-in.
    async fn console_login(&self, account: &str) -> Result<Option<ConsoleLogin>>;
    /// Record a session. Sessions that expired before `created_at` are
    /// deleted on the way (a bounded batch), so the table holds about the
    /// live sessions.
    async fn create_console_session(&self, new: NewConsoleSession) -> Result<()>;
    /// The session whose token hashes to `token_hash`, if it has not expired
    /// at `now` and neither its account nor the key it was opened with is
    /// disabled.
    async fn find_console_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>>;
    /// Delete a session (sign-out); whether there was one.
    async fn delete_console_session(&self, token_hash: &str) -> Result<bool>;
    /// The scope's newest `limit` tasks, newest first (the console's task
    /// list; the APIs only find a task by its id).
    async fn recent_tasks(&self, scope: &Scope, limit: u32) -> Result<Vec<Task>>;
}
