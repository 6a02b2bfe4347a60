//! Importing one Akoya consent. Akoya rotates the refresh token on every use, so the caller's
//! token is dead the moment linkstate refreshes it: the rotated one is committed with the
//! connection at once, before any other call, and the accounts follow in a second
//! transaction. An import retried after a lost answer finds its connection by the dead
//! token's digest instead of failing on it.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::{Imported, ItemFailure, store_failure};
use crate::context::Context;
use crate::domain::background_refresh;
use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::ids::{AccountId, RequestId};
use crate::domain::import::{ImportItem, ProviderCredentials};
use crate::domain::product::AKOYA_PRODUCTS;
use crate::domain::secret::Secret;
use crate::domain::service_provider::ServiceProvider;
use crate::jobs::{self, Job};
use crate::providers::akoya::tokens::{self, Refreshed};
use crate::providers::akoya::{AkoyaError, AkoyaErrorKind, mapping, retrying};
use crate::store::connections::ImportedConnection;
use crate::store::credentials::{self, AkoyaTokens};
use crate::store::institutions::{self, InstitutionOwner};
use crate::store::jobs::OnDuplicate;
use crate::store::{
    self, StoreError, connections, customers, duplicates, events, financial_accounts,
    refresh_schedule,
};

/// Imports one Akoya consent.
pub async fn import_one(
    ctx: &Context,
    account_id: AccountId,
    request_id: &RequestId,
    item: &ImportItem,
) -> Result<Imported, ItemFailure> {
    let ProviderCredentials::Akoya {
        refresh_token,
        provider_id,
    } = &item.credentials
    else {
        unreachable!("only Akoya items come here");
    };
    if let Some(connection) = already_imported(ctx, account_id, refresh_token).await? {
        return Ok(Imported {
            connection,
            already_imported: true,
        });
    }
    let refreshed = tokens::refresh(ctx.akoya(), refresh_token)
        .await
        .map_err(|error| akoya_failure(&error))?;
    let (connection, is_new) = commit_consent(
        ctx,
        account_id,
        item,
        refresh_token,
        provider_id,
        &refreshed,
    )
    .await
    .map_err(|error| lost_token_failure(error, &refreshed))?;
    let akoya = ctx.akoya();
    let listed = async {
        let (infos, balances) = tokio::try_join!(
            retrying(|| akoya.accounts_info(&refreshed.id_token, provider_id)),
            retrying(|| akoya.balances(&refreshed.id_token, provider_id)),
        )?;
        Ok::<_, AkoyaError>(mapping::accounts(&infos.accounts, &balances.accounts))
    };
    match listed.await {
        Ok(accounts) => write_accounts(ctx, &connection, request_id, &accounts, is_new)
            .await
            .map(|connection| Imported {
                connection,
                already_imported: !is_new,
            })
            .map_err(store_failure),
        Err(error) => {
            // The consent is linkstate's now and must not be lost: its first aggregation reads
            // the accounts when Akoya answers, and announces them itself.
            let mut conn = store::connect(ctx.pool()).await.map_err(store_failure)?;
            queue_aggregation(&mut conn, ctx, &connection, request_id, true)
                .await
                .map_err(store_failure)?;
            let mut failure = akoya_failure(&error);
            failure.message = format!(
                "Akoya did not list the accounts ({error}); the consent is kept as connection {} and is aggregated when Akoya answers",
                connection.id
            );
            failure
                .provider_details
                .insert("connectionId".into(), connection.id.to_string().into());
            Err(failure)
        }
    }
}

/// The connection an earlier import made with this very token, for a retried request.
async fn already_imported(
    ctx: &Context,
    account_id: AccountId,
    refresh_token: &Secret,
) -> Result<Option<Connection>, ItemFailure> {
    let found = async {
        let mut conn = store::connect(ctx.pool()).await?;
        match credentials::consumed_by(&mut conn, refresh_token, account_id).await? {
            Some(id) => Ok(Some(connections::get(&mut conn, account_id, id).await?)),
            None => Ok(None),
        }
    };
    found.await.map_err(store_failure)
}

/// Writes the customer, the institution and the connection with its rotated tokens in one
/// short transaction, tried again while the database is briefly away: the only live refresh
/// token is in hand.
async fn commit_consent(
    ctx: &Context,
    account_id: AccountId,
    item: &ImportItem,
    used_token: &Secret,
    provider_id: &str,
    refreshed: &Refreshed,
) -> Result<(Connection, bool), StoreError> {
    store::persistently(|| async {
        let mut conn = store::connect(ctx.pool()).await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            write_consent(
                conn,
                ctx,
                account_id,
                item,
                used_token,
                provider_id,
                refreshed,
            )
            .await
        })
        .await
    })
    .await
}

async fn write_consent(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    account_id: AccountId,
    item: &ImportItem,
    used_token: &Secret,
    provider_id: &str,
    refreshed: &Refreshed,
) -> Result<(Connection, bool), StoreError> {
    let customer_id =
        customers::find_or_create_customer(conn, account_id, item.external_customer_id.as_deref())
            .await?;
    let institution_id = institutions::upsert_institution(
        conn,
        ServiceProvider::Akoya,
        InstitutionOwner::Shared,
        provider_id,
        provider_id,
    )
    .await?;
    let credentials = ProviderCredentials::Akoya {
        refresh_token: refreshed.refresh_token.clone(),
        provider_id: provider_id.to_owned(),
    };
    let (id, is_new) = connections::insert_imported(
        conn,
        ctx.cipher(),
        ImportedConnection {
            account_id,
            customer_id,
            institution_id,
            provider_connection_id: &refreshed.grant_id,
            credentials: &credentials,
            products: AKOYA_PRODUCTS
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            webhook_url: None,
        },
    )
    .await?;
    let tokens = AkoyaTokens {
        refresh_token: refreshed.refresh_token.clone(),
        provider_id: provider_id.to_owned(),
        id_token: Some((refreshed.id_token.clone(), refreshed.expires_at)),
    };
    credentials::set_akoya_tokens(conn, ctx.cipher(), id, &tokens).await?;
    credentials::record_consumed_token(conn, used_token, id).await?;
    Ok((connections::get(conn, account_id, id).await?, is_new))
}

/// The accounts, ACCOUNTS_UPDATING for a new connection, and the first aggregation.
async fn write_accounts(
    ctx: &Context,
    connection: &Connection,
    request_id: &RequestId,
    accounts: &[crate::domain::financial_account::ProviderAccount],
    is_new: bool,
) -> Result<Connection, StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    conn.transaction::<_, StoreError, _>(async |conn| {
        duplicates::lock_customer(conn, connection.customer_id).await?;
        if is_new {
            let upserted = financial_accounts::upsert(
                conn,
                connection.account_id,
                connection.id,
                connection.customer_id,
                accounts,
                Utc::now(),
            )
            .await?;
            let summaries =
                connection_events::summaries(accounts, financial_accounts::newness(&upserted));
            let updating =
                connection_events::accounts_updating(&connection.facts(), request_id, &summaries);
            events::append(conn, connection.account_id, &[updating]).await?;
        }
        // A known consent imported again is refreshed, and that run announces itself.
        queue_aggregation(conn, ctx, connection, request_id, !is_new).await?;
        if is_new {
            let settled = crate::duplicates::settle(conn, connection).await?;
            events::append(conn, connection.account_id, &settled).await?;
        }
        connections::get(conn, connection.account_id, connection.id).await
    })
    .await
}

/// The first aggregation and the first background refresh, as for a Plaid import.
async fn queue_aggregation(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    connection: &Connection,
    request_id: &RequestId,
    announce: bool,
) -> Result<(), StoreError> {
    let first =
        background_refresh::first_refresh(Utc::now(), ctx.refresh_interval(), &mut rand::rng());
    refresh_schedule::set_next_refresh(conn, connection.id, first).await?;
    let job = Job::after_import(connection.account_id, connection.id, request_id, announce);
    jobs::enqueue(conn, &job, OnDuplicate::Skip).await?;
    Ok(())
}

/// An Akoya failure as one item's error. A refused refresh token or client is UNAUTHENTICATED
/// (the contract's words); nothing was written.
fn akoya_failure(error: &AkoyaError) -> ItemFailure {
    let code = match error.kind() {
        AkoyaErrorKind::NotConfigured => "FAILED_PRECONDITION",
        AkoyaErrorKind::ConsentRefused | AkoyaErrorKind::ClientRefused => "UNAUTHENTICATED",
        AkoyaErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        AkoyaErrorKind::Refused => "INVALID_ARGUMENT",
        AkoyaErrorKind::Unavailable => "UNAVAILABLE",
        AkoyaErrorKind::Unexpected => "INTERNAL",
    };
    ItemFailure {
        code,
        message: error.to_string(),
        provider_details: error.details(),
    }
}

/// The database would not take the rotated token, even after retries: the consent is lost
/// (Akoya killed the caller's token), and the answer says so plainly.
fn lost_token_failure(error: StoreError, refreshed: &Refreshed) -> ItemFailure {
    tracing::error!(%error, grant = %refreshed.grant_id, "the rotated Akoya token could not be stored; the consent needs a new one");
    let mut failure = store_failure(error);
    failure.message = "the database did not take Akoya's rotated refresh token; the consent must be granted again".into();
    failure
}
