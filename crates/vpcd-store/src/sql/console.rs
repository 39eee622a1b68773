//! [`ConsoleStore`] on any [`Engine`]: console passwords and sessions.

use async_trait::async_trait;

use super::text::TASK_SELECT;
use super::*;
use crate::console::{ConsoleLogin, ConsoleSession, ConsoleStore, NewConsoleSession};
use crate::{Scope, Task};

/// Expired sessions deleted per sign-in, so none waits long.
const EXPIRED_SESSIONS_BATCH: i64 = 100;

#[async_trait]
impl<DB: Engine> ConsoleStore for SqlStore<DB> {
    async fn set_console_password(&self, account: &str, hash: Option<&str>) -> Result<()> {
        let q = Sql::new("UPDATE accounts SET console_password = $1 WHERE name = $2")
            .arg(hash.map(str::to_owned))
            .arg(account);
        self.write(move |tx| {
            Box::pin(async move {
                if DB::execute(&mut *tx, q).await? == 0 {
                    return Err(StoreError::NotFound(Resource::Account));
                }
                Ok(())
            })
        })
        .await
    }

    async fn console_login(&self, account: &str) -> Result<Option<ConsoleLogin>> {
        let q = Sql::new("SELECT id, console_password, disabled FROM accounts WHERE name = $1")
            .arg(account);
        let Some(row) = self.read_opt(q).await? else {
            return Ok(None);
        };
        Ok(Some(ConsoleLogin {
            account_id: row.id("id")?,
            password_hash: row.opt_text("console_password")?,
            disabled: row.flag("disabled")?,
        }))
    }

    async fn create_console_session(&self, new: NewConsoleSession) -> Result<()> {
        self.write(move |tx| {
            Box::pin(async move {
                let prune = Sql::new(
                    "DELETE FROM console_sessions WHERE token_hash IN \
                     (SELECT token_hash FROM console_sessions WHERE expires_at <= $1 LIMIT $2)",
                )
                .arg(new.created_at)
                .arg(EXPIRED_SESSIONS_BATCH);
                DB::execute(&mut *tx, prune).await?;
                let insert = Sql::new(
                    "INSERT INTO console_sessions \
                     (token_hash, account_id, secret_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .arg(new.token_hash)
                .arg(new.account_id)
                .arg(new.secret_id)
                .arg(new.created_at)
                .arg(new.expires_at);
                DB::execute(&mut *tx, insert).await?;
                Ok(())
            })
        })
        .await
    }

    async fn find_console_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let q = Sql::new(
            "SELECT s.account_id, a.name, s.expires_at FROM console_sessions s \
             JOIN accounts a ON a.id = s.account_id \
             LEFT JOIN api_keys k ON k.secret_id = s.secret_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled = $3 \
               AND (s.secret_id IS NULL OR k.disabled = $3)",
        )
        .arg(token_hash)
        .arg(now)
        .arg(false);
        let Some(row) = self.read_opt(q).await? else {
            return Ok(None);
        };
        Ok(Some(ConsoleSession {
            account_id: row.id("account_id")?,
            account_name: row.text("name")?,
            expires_at: row.int("expires_at")?,
        }))
    }

    async fn delete_console_session(&self, token_hash: &str) -> Result<bool> {
        let q = Sql::new("DELETE FROM console_sessions WHERE token_hash = $1").arg(token_hash);
        self.write(move |tx| Box::pin(async move { Ok(DB::execute(&mut *tx, q).await? > 0) }))
            .await
    }

    async fn recent_tasks(&self, scope: &Scope, limit: u32) -> Result<Vec<Task>> {
        let q = Sql::new(format!(
            "{TASK_SELECT} WHERE account_id = $1 AND region = $2 ORDER BY id DESC LIMIT $3"
        ))
        .arg(scope.account_id)
        .arg(&scope.region)
        .arg(i64::from(limit));
        self.read_rows(q, Size::Bounded)
            .await?
            .iter()
            .map(task_from_row)
            .collect()
    }
}
