//! Tenant accounts and their API keys.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::StoreError;
use super::schema::{accounts, api_keys};
use crate::domain::api_key;
use crate::domain::ids::AccountId;
use crate::domain::secret::Secret;

/// Creates a tenant and its first API key; the key is returned once and stored only hashed.
pub async fn create(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<(AccountId, Secret), StoreError> {
    let account_id = AccountId::generate();
    let key = api_key::generate();
    let key_hash = api_key::hash(key.expose());
    let name = name.to_string();
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::insert_into(accounts::table)
            .values((accounts::id.eq(account_id.0), accounts::name.eq(name)))
            .execute(conn)
            .await?;
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::key_hash.eq(key_hash),
                api_keys::account_id.eq(account_id.0),
            ))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await?;
    Ok((account_id, key))
}

/// The account the API key hashed to `key_hash` ([`api_key::hash`]) belongs to, if the key is
/// known and not revoked.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    key_hash: &[u8],
) -> Result<Option<AccountId>, StoreError> {
    let account = api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::account_id)
        .first::<uuid::Uuid>(conn)
        .await
        .optional()?;
    Ok(account.map(AccountId))
}
