//! `vpcd admin`: accounts and keys, directly on the database.

use vpcd_store::Store;

/// Print accounts with their keys; secret keys are never printed here.
pub async fn list(store: &dyn Store) -> anyhow::Result<()> {
    for (account, keys) in store.list_accounts().await? {
        println!(
            "account {:>4}  {:<24} {}",
            account.id,
            account.name,
            if account.disabled {
                "disabled"
            } else {
                "active"
            }
        );
        for k in keys {
            println!(
                "    key {}  {}",
                k.secret_id,
                if k.disabled { "disabled" } else { "active" }
            );
        }
    }
    Ok(())
}

/// Create an account with one key pair and print the pair once.
pub async fn create_account(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    store.create_account(name).await?;
    create_key(store, name).await
}

pub async fn create_key(store: &dyn Store, account: &str) -> anyhow::Result<()> {
    let key = store.create_key(account).await?;
    println!("account:   {account}");
    println!("SecretId:  {}", key.secret_id);
    println!("SecretKey: {}", key.secret_key.expose());
    Ok(())
}
