//! The master key in the database (see `crate::master_key`): checked at
//! every start, the clear values of an older vpcd sealed at the first start
//! on a schema that seals, and key rotation. Each of these is one write
//! transaction, so a failure leaves every secret as it was.

use vpcd_types::Secret;

use super::*;
use crate::master_key::{is_sealed, Column};

/// The key check row (`master_key_check`, at most one row).
const CHECK_SELECT: &str = "SELECT key_check FROM master_key_check WHERE id = 1";
/// Connections re-sealed per statement that reads them.
const RESEAL_PAGE: i64 = 1_000;

impl<DB: Engine> SqlStore<DB> {
    /// Check the store's key against the database's. On a database that has
    /// no key yet, record this one and seal every secret stored in clear,
    /// in one transaction.
    pub(super) async fn adopt_key(&self) -> Result<()> {
        let key = self.key();
        // A concurrent first start (another vpcd on the same PostgreSQL
        // database) may record its key between this look and this insert:
        // the insert then waits for its commit and inserts nothing, and the
        // second look checks against that key.
        for _ in 0..2 {
            let mut tx = self.begin_write().await?;
            if let Some(row) = DB::opt(&mut tx, Sql::new(CHECK_SELECT)).await? {
                return if key.opens_check(&row.text("key_check")?) {
                    Ok(())
                } else {
                    Err(StoreError::WrongMasterKey)
                };
            }
            let record = Sql::new(
                "INSERT INTO master_key_check (id, key_check) VALUES (1, $1) ON CONFLICT DO NOTHING",
            )
            .arg(key.check_value()?);
            if DB::execute(&mut tx, record).await? == 0 {
                continue;
            }
            let sealed = Self::reseal(&mut tx, None, &key).await?;
            tx.commit().await?;
            if sealed != Resealed::default() {
                tracing::info!(
                    secret_keys = sealed.secret_keys,
                    psks = sealed.psks,
                    "sealed the secrets an older vpcd stored in clear under the master key"
                );
                self.scrub().await;
            }
            return Ok(());
        }
        Err(StoreError::Backend(
            "the master key check row keeps changing".into(),
        ))
    }

    /// [`Store::rotate_master_key`](crate::Store::rotate_master_key).
    pub(super) async fn rotate_key(&self, new_key: MasterKey) -> Result<Resealed> {
        let old = self.key();
        let mut tx = self.begin_write().await?;
        let check = Sql::new(format!("{CHECK_SELECT}{}", lock::<DB>(FOR_UPDATE)));
        let row = DB::opt(&mut tx, check)
            .await?
            .ok_or_else(|| StoreError::Backend("the database records no master key".into()))?;
        if !old.opens_check(&row.text("key_check")?) {
            return Err(StoreError::WrongMasterKey);
        }
        let done = Self::reseal(&mut tx, Some(&old), &new_key).await?;
        let record = Sql::new("UPDATE master_key_check SET key_check = $1 WHERE id = 1")
            .arg(new_key.check_value()?);
        DB::execute(&mut tx, record).await?;
        tx.commit().await?;
        *self
            .key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new_key);
        self.scrub().await;
        Ok(done)
    }

    /// Seal every secret under `to`, in the caller's transaction. `from`:
    /// the key they are sealed under now; `None` for the clear values of an
    /// older vpcd. The replaced values are overwritten in the database's
    /// free space where the engine can ([`Engine::SECURE_DELETE`]).
    async fn reseal(
        conn: &mut DB::Connection,
        from: Option<&MasterKey>,
        to: &MasterKey,
    ) -> Result<Resealed> {
        if let Some((on, _)) = DB::SECURE_DELETE {
            DB::execute_raw(&mut *conn, on).await?;
        }
        let mut done = Resealed::default();
        let keys = DB::fetch(
            &mut *conn,
            Sql::new("SELECT secret_id, secret_key FROM api_keys ORDER BY secret_id"),
        )
        .await?;
        for row in &keys {
            let secret_id = row.text("secret_id")?;
            let clear = unseal(from, Column::SecretKey, &secret_id, row.text("secret_key")?)?;
            let q = Sql::new("UPDATE api_keys SET secret_key = $1 WHERE secret_id = $2")
                .arg(to.seal(Column::SecretKey, &secret_id, clear.expose())?)
                .arg(&secret_id);
            DB::execute(&mut *conn, q).await?;
            done.secret_keys += 1;
        }
        let mut after = 0i64;
        loop {
            let page = Sql::new(
                "SELECT id, un_id, settings FROM vpn_conns WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .arg(after)
            .arg(RESEAL_PAGE);
            let rows = DB::fetch(&mut *conn, page).await?;
            for row in &rows {
                let id = row.int("id")?;
                let un_id = row.text("un_id")?;
                let settings = reseal_settings(&row.text("settings")?, from, to, &un_id)?;
                let q = Sql::new("UPDATE vpn_conns SET settings = $1 WHERE id = $2")
                    .arg(settings)
                    .arg(id);
                DB::execute(&mut *conn, q).await?;
                done.psks += 1;
                after = id;
            }
            if (rows.len() as i64) < RESEAL_PAGE {
                break;
            }
        }
        if let Some((_, off)) = DB::SECURE_DELETE {
            DB::execute_raw(&mut *conn, off).await?;
        }
        Ok(done)
    }

    /// Drop the replaced values' old copies from the database's files
    /// ([`Engine::SCRUB`]). The new values are committed by then, so a
    /// failure is logged, not returned.
    async fn scrub(&self) {
        let scrubbed = async {
            let mut conn = self.write.acquire().await?;
            for statement in DB::SCRUB {
                DB::execute_raw(&mut conn, statement).await?;
            }
            Ok::<_, sqlx::Error>(())
        };
        if let Err(e) = scrubbed.await {
            tracing::warn!(
                error = %e,
                "the secrets are sealed, but the replaced values could not be scrubbed \
                 from the database files"
            );
        }
    }
}

/// The clear value of a secret stored as `stored`: opened with `from`, or
/// taken as it is when there is no key yet (an older vpcd's clear value).
fn unseal(from: Option<&MasterKey>, column: Column, row: &str, stored: String) -> Result<Secret> {
    match from {
        Some(key) => key.open(column, row, &stored),
        None if is_sealed(&stored) => Err(StoreError::Backend(format!(
            "a sealed value in a database that records no master key (row {row})"
        ))),
        None => Ok(Secret::new(stored)),
    }
}

/// Stored settings with their pre-shared key sealed under `to` instead.
/// Only that field is touched: the rest of the document is kept as it is.
fn reseal_settings(
    text: &str,
    from: Option<&MasterKey>,
    to: &MasterKey,
    un_id: &str,
) -> Result<String> {
    let damaged = || corrupt("connection settings");
    let mut doc: serde_json::Value = serde_json::from_str(text).map_err(|_| damaged())?;
    let field = doc.get_mut(PSK_FIELD).ok_or_else(damaged)?;
    let stored = field.as_str().ok_or_else(damaged)?.to_owned();
    let clear = unseal(from, Column::Psk, un_id, stored)?;
    *field = to.seal(Column::Psk, un_id, clear.expose())?.into();
    serde_json::to_string(&doc).map_err(|_| damaged())
}
