//! RepairConnection: the customer finished the provider's update flow (Plaid Link's update
//! mode, a new Akoya consent). The connection is checked at the provider, goes back to ACTIVE
//! with one STATUS_CHANGE, and is aggregated; accounts not seen before come in
//! ACCOUNTS_UPDATING with `newAccount: true`.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::{LifecycleError, aggregates, plaid_failure, tenant_connection};
use crate::context::Context;
use crate::domain::background_refresh;
use crate::domain::connect_flow::{self, RawRepair};
use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::connection_state::{ConnectionState, Effect};
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId, RequestId};
use crate::domain::import::ProviderCredentials;
use crate::domain::secret::Secret;
use crate::jobs::{self, Job};
use crate::providers::akoya::AkoyaErrorKind;
use crate::providers::akoya::tokens::{self, Refreshed};
use crate::store::credentials::AkoyaTokens;
use crate::store::jobs::OnDuplicate;
use crate::store::{
    self, StoreError, connections, credentials, duplicates, events, refresh_schedule,
};

/// What the provider said when the repair was checked.
enum Checked {
    /// The Plaid item works; `new_token` replaces the stored one when given.
    Plaid { new_token: Option<Secret> },
    /// The new Akoya consent, its token rotated by the check.
    Akoya {
        refreshed: Refreshed,
        provider_id: String,
    },
}

/// Repairs a connection from any status but DELETED, EXPIRED and IN_PROGRESS.
pub async fn repair(
    ctx: &Context,
    account_id: AccountId,
    id: ConnectionId,
    raw: RawRepair,
) -> Result<Connection, LifecycleError> {
    let connection = {
        let mut conn = store::connect(ctx.pool()).await?;
        tenant_connection(&mut conn, account_id, id).await?
    };
    require_repairable(connection.status)?;
    if !aggregates(connection.service_provider) {
        return Err(LifecycleError::NotSupported(connection.service_provider));
    }
    let new_credentials = connect_flow::validate_repair(connection.service_provider, raw)?;
    let checked = check(ctx, &connection, new_credentials).await?;
    let request_id = RequestId::generate();
    let mut conn = store::connect(ctx.pool()).await?;
    let repaired = conn
        .transaction::<_, LifecycleError, _>(async |conn| {
            duplicates::lock_customer(conn, connection.customer_id).await?;
            let row = connections::lock_aggregation(conn, id).await?;
            require_repairable(row.state.status)?;
            store_credentials(conn, ctx, &connection, &checked).await?;
            let repaired = connections::get(conn, account_id, id).await?;
            reactivate(conn, &repaired, row.state).await?;
            let job = Job::after_repair(account_id, id, &request_id);
            jobs::enqueue(conn, &job, OnDuplicate::Rerun).await?;
            let first = background_refresh::first_refresh(
                Utc::now(),
                ctx.refresh_interval(),
                &mut rand::rng(),
            );
            refresh_schedule::set_next_refresh(conn, id, first).await?;
            Ok(connections::get(conn, account_id, id).await?)
        })
        .await?;
    ctx.hub().wake();
    ctx.wake_workers();
    Ok(repaired)
}

/// A connection with no working link to repair: deleted, never linked, or still linking.
fn require_repairable(status: ConnectionStatus) -> Result<(), LifecycleError> {
    match status {
        ConnectionStatus::Deleted | ConnectionStatus::Expired | ConnectionStatus::InProgress => {
            Err(LifecycleError::NotRepairable(status))
        }
        _ => Ok(()),
    }
}

/// The provider refusing the repair's check, the stored credential or a new one: the link is
/// still broken, which RepairConnection answers with FAILED_PRECONDITION and the provider's
/// code in the message.
fn still_refused(refusal: LifecycleError) -> LifecycleError {
    LifecycleError::StillRefused(refusal.to_string())
}

/// Asks the provider whether the connection works now, outside any transaction.
async fn check(
    ctx: &Context,
    connection: &Connection,
    new_credentials: Option<ProviderCredentials>,
) -> Result<Checked, LifecycleError> {
    match new_credentials {
        Some(ProviderCredentials::Akoya {
            refresh_token,
            provider_id,
        }) => {
            let refreshed =
                tokens::refresh(ctx.akoya(), &refresh_token)
                    .await
                    .map_err(|error| match error.kind() {
                        AkoyaErrorKind::ConsentRefused | AkoyaErrorKind::Refused => {
                            still_refused(LifecycleError::Akoya(error))
                        }
                        _ => LifecycleError::Akoya(error),
                    })?;
            Ok(Checked::Akoya {
                refreshed,
                provider_id,
            })
        }
        Some(ProviderCredentials::Plaid { access_token }) => {
            check_plaid_item(ctx, connection, &access_token).await?;
            Ok(Checked::Plaid {
                new_token: Some(access_token),
            })
        }
        None => {
            let stored = {
                let mut conn = store::connect(ctx.pool()).await?;
                credentials::get(&mut conn, ctx.cipher(), connection.id).await?
            };
            // Validation lets only PLAID through without new credentials.
            let ProviderCredentials::Plaid { access_token } = stored else {
                return Err(LifecycleError::Store(StoreError::Corrupt(format!(
                    "credentials of {} are not a Plaid item's",
                    connection.id
                ))));
            };
            check_plaid_item(ctx, connection, &access_token).await?;
            Ok(Checked::Plaid { new_token: None })
        }
    }
}

/// `/item/get` must name the connection's item and show no error.
async fn check_plaid_item(
    ctx: &Context,
    connection: &Connection,
    access_token: &Secret,
) -> Result<(), LifecycleError> {
    let answer = ctx.plaid().item_get(access_token).await.map_err(|error| {
        plaid_failure(error, |refused| {
            still_refused(LifecycleError::CredentialsRefused(refused))
        })
    })?;
    let item = answer.item;
    if connection.provider_connection_id.as_deref() != Some(item.item_id.as_str()) {
        return Err(LifecycleError::TokenOfOtherItem);
    }
    match item.error {
        Some(error) => Err(LifecycleError::StillBroken {
            code: error.error_code,
        }),
        None => Ok(()),
    }
}

/// Stores what the check brought: a new Plaid token, or the new Akoya consent (whose grant
/// names the connection from now on).
async fn store_credentials(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    connection: &Connection,
    checked: &Checked,
) -> Result<(), LifecycleError> {
    match checked {
        Checked::Plaid { new_token: None } => Ok(()),
        Checked::Plaid {
            new_token: Some(access_token),
        } => {
            let credentials = ProviderCredentials::Plaid {
                access_token: access_token.clone(),
            };
            credentials::set(conn, ctx.cipher(), connection.id, &credentials).await?;
            Ok(())
        }
        Checked::Akoya {
            refreshed,
            provider_id,
        } => {
            let tokens = AkoyaTokens {
                refresh_token: refreshed.refresh_token.clone(),
                provider_id: provider_id.clone(),
                id_token: Some((refreshed.id_token.clone(), refreshed.expires_at)),
            };
            credentials::set_akoya_tokens(conn, ctx.cipher(), connection.id, &tokens).await?;
            if connection.provider_connection_id.as_deref() != Some(refreshed.grant_id.as_str()) {
                connections::set_provider_connection_id(conn, connection.id, &refreshed.grant_id)
                    .await
                    .map_err(|error| super::already_linked(error.into(), &refreshed.grant_id))?;
            }
            Ok(())
        }
    }
}

/// ACTIVE again, with one STATUS_CHANGE when the status was another; an inactive duplicate
/// leaves its group (the aggregation that follows settles the group again).
async fn reactivate(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    before: ConnectionState,
) -> Result<(), LifecycleError> {
    let active = ConnectionState {
        status: ConnectionStatus::Active,
        reason: None,
        consecutive_failures: 0,
    };
    if before.is_inactive_duplicate() {
        duplicates::promote(conn, connection.id).await?;
    }
    connections::set_state(conn, connection.id, active, Utc::now()).await?;
    if (before.status, before.reason) == (active.status, active.reason) {
        return Ok(());
    }
    let effect = Effect::StatusChanged {
        old: before.status,
        new: ConnectionStatus::Active,
        reason: None,
    };
    let facts = connection.facts();
    let new_events =
        connection_events::transition_events(&facts, &[effect], &facts.provider_details(), &[]);
    events::append(conn, connection.account_id, &new_events).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_linked_connections_are_repairable() {
        for status in [
            ConnectionStatus::Deleted,
            ConnectionStatus::Expired,
            ConnectionStatus::InProgress,
        ] {
            assert!(require_repairable(status).is_err());
        }
        assert!(require_repairable(ConnectionStatus::ReconnectRequired).is_ok());
        assert!(require_repairable(ConnectionStatus::PartiallyActive).is_ok());
    }
}
