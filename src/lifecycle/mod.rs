//! A connection's life outside aggregation: the connect flow another service runs with the
//! customer (CreateConnection, CompleteConnection, FailConnection) and DeleteConnection.
//!
//! Provider calls run outside any transaction. Each change is then written in one transaction
//! with its events, after the connection's row is locked and its status checked again, so that
//! two requests racing on one connection cannot both act.

mod repair;

pub use repair::repair;

use chrono::Utc;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::domain::background_refresh;
use crate::domain::connect_flow::{self, FLOW_LIFETIME, FlowRejection, InstitutionRef, NewFlow};
use crate::domain::connection::Connection;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId, InstitutionId, RequestId};
use crate::domain::import::ProviderCredentials;
use crate::domain::input::excerpt;
use crate::domain::lifecycle_events;
use crate::domain::product::AKOYA_PRODUCTS;
use crate::domain::secret::Secret;
use crate::domain::service_provider::ServiceProvider;
use crate::jobs::{self, Job};
use crate::providers::akoya::tokens::{self, Refreshed};
use crate::providers::akoya::{AkoyaError, AkoyaErrorKind, retrying as akoya_retrying};
use crate::providers::plaid::{ItemSummary, PlaidError, PlaidErrorKind, describe_item};
use crate::store::credentials::AkoyaTokens;
use crate::store::flows::{self, FlowConnection, ProviderLink};
use crate::store::institutions::{self, InstitutionOwner};
use crate::store::jobs::OnDuplicate;
use crate::store::{
    self, StoreError, connections, credentials, customers, duplicates, events, financial_accounts,
    refresh_schedule,
};

/// Why a lifecycle request was refused; in every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No such connection for this tenant.
    #[error("connection {} not found", excerpt(&.0.to_string()))]
    NotFound(ConnectionId),
    /// The request lacks something it must carry.
    #[error(transparent)]
    Rejected(#[from] FlowRejection),
    /// A UUID institution id that is none of ours.
    #[error("institutionId {} names no institution", excerpt(.0))]
    UnknownInstitution(String),
    /// A provider's institution id that the provider does not know.
    #[error("institutionId {} is not an institution {provider} knows", excerpt(.id))]
    UnknownProviderInstitution {
        /// The provider asked.
        provider: ServiceProvider,
        /// The id given.
        id: String,
    },
    /// Our institution id, but of another provider.
    #[error("institutionId {} is an institution of {actual}, not of {wanted}", excerpt(.id))]
    InstitutionOfOtherProvider {
        /// The id given.
        id: String,
        /// The institution's provider.
        actual: ServiceProvider,
        /// The provider of the flow.
        wanted: ServiceProvider,
    },
    /// Completing or failing a connection that is not in a connect flow (Meld answers 409).
    #[error("connection is {status}: only an IN_PROGRESS connection can be {action}")]
    NotInProgress {
        /// Where it stands.
        status: ConnectionStatus,
        /// "completed" or "failed".
        action: &'static str,
    },
    /// Deleting a deleted connection (Meld answers 409).
    #[error("connection is already DELETED")]
    AlreadyDeleted,
    /// Deleting an active connection that still has inactive duplicates (Meld's rule).
    #[error("connection has inactive duplicates ({}): delete its inactive duplicates first", ids(.0))]
    HasInactiveDuplicates(Vec<ConnectionId>),
    /// Repairing a connection that has no working link to repair.
    #[error(
        "connection is {0}: only a connection that was linked and is not DELETED can be repaired"
    )]
    NotRepairable(ConnectionStatus),
    /// The provider still reports the connection broken; nothing changed.
    #[error(
        "Plaid still reports {code} for this item: the customer has not finished the update flow; nothing changed"
    )]
    StillBroken {
        /// Plaid's error code.
        code: String,
    },
    /// The provider refused the repair's check, with the stored credential or a new one: the
    /// link is still broken; nothing changed.
    #[error("the provider still refuses this connection: {0}; nothing changed")]
    StillRefused(String),
    /// The connect flow completed while a delete was under way, so its new provider link was
    /// not severed; deleting again does it.
    #[error("the connection's connect flow completed during the delete; retry the delete")]
    CompletedMeanwhile,
    /// The access token belongs to another Plaid item than the one named.
    #[error("serviceProviderConnectionId {} is not the item of this accessToken", excerpt(.0))]
    ItemMismatch(String),
    /// A repair's access token opens another Plaid item than the connection's.
    #[error("the accessToken belongs to another Plaid item than this connection's")]
    TokenOfOtherItem,
    /// Another connection of the tenant already has this provider id.
    #[error("another connection already has serviceProviderConnectionId {}", excerpt(.0))]
    AlreadyLinked(String),
    /// The provider refused the credentials the request carries.
    #[error("Plaid refused the accessToken: {0}")]
    CredentialsRefused(PlaidError),
    /// The provider refused a call for reasons the caller cannot fix by retrying.
    #[error("Plaid refused to remove the item: {0}")]
    ProviderRefused(PlaidError),
    /// Linkstate has no API keys for the provider.
    #[error(transparent)]
    ProviderNotConfigured(PlaidError),
    /// Linkstate cannot aggregate this provider's connections yet, so it does not pretend to
    /// complete them.
    #[error("aggregation for {0} is not supported yet")]
    NotSupported(ServiceProvider),
    /// The provider is down, slow or throttling; retrying later may work.
    #[error("Plaid is unavailable, retry later: {0}")]
    ProviderUnavailable(PlaidError),
    /// Akoya refused or failed the completion's token refresh; nothing was written.
    #[error("Akoya could not refresh the refreshToken: {0}")]
    Akoya(AkoyaError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for LifecycleError {
    fn from(error: StoreError) -> Self {
        LifecycleError::Store(error)
    }
}

/// Ids as a message lists them.
fn ids(ids: &[ConnectionId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tenant's connection `id`, or NOT_FOUND naming it (also when another tenant has it).
async fn tenant_connection(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: ConnectionId,
) -> Result<Connection, LifecycleError> {
    connections::get(conn, account_id, id)
        .await
        .map_err(|error| match error {
            StoreError::NotFound => LifecycleError::NotFound(id),
            other => LifecycleError::Store(other),
        })
}

impl From<DieselError> for LifecycleError {
    fn from(error: DieselError) -> Self {
        StoreError::from(error).into()
    }
}

/// Starts a connect flow: an IN_PROGRESS connection for the customer (found or made by its
/// external id) that expires unless completed in time. Meld sends no event at this point.
pub async fn create(
    ctx: &Context,
    account_id: AccountId,
    flow: NewFlow,
) -> Result<Connection, LifecycleError> {
    let named = match (&flow.institution, flow.service_provider) {
        (InstitutionRef::Provider(id), ServiceProvider::Plaid) => {
            Some(plaid_institution(ctx, id).await?)
        }
        _ => None,
    };
    let mut conn = store::connect(ctx.pool()).await?;
    conn.transaction::<_, LifecycleError, _>(async |conn| {
        let institution_id = match named {
            Some(named) => named.upsert(conn).await?,
            None => flow_institution(conn, account_id, &flow).await?,
        };
        let customer_id =
            customers::find_or_create_customer(conn, account_id, Some(&flow.external_customer_id))
                .await?;
        let new = FlowConnection {
            account_id,
            customer_id,
            institution_id,
            service_provider: flow.service_provider,
            expires_at: Utc::now() + FLOW_LIFETIME,
        };
        let id = flows::insert_flow(conn, &new).await?;
        Ok(connections::get(conn, account_id, id).await?)
    })
    .await
}

/// A Plaid institution as Plaid names it.
struct PlaidInstitution {
    id: String,
    name: String,
}

impl PlaidInstitution {
    async fn upsert(&self, conn: &mut AsyncPgConnection) -> Result<InstitutionId, StoreError> {
        let shared = InstitutionOwner::Shared;
        institutions::upsert_institution(conn, ServiceProvider::Plaid, shared, &self.id, &self.name)
            .await
    }
}

/// The Plaid institution a flow names by Plaid's id: only Plaid's answer makes one, so no
/// tenant can add institutions that every tenant sees.
async fn plaid_institution(ctx: &Context, id: &str) -> Result<PlaidInstitution, LifecycleError> {
    match ctx.plaid().institutions_get_by_id(id).await {
        Ok(response) => Ok(PlaidInstitution {
            id: id.to_string(),
            name: response.institution.name,
        }),
        Err(error) => Err(plaid_failure(error, |_| {
            LifecycleError::UnknownProviderInstitution {
                provider: ServiceProvider::Plaid,
                id: id.to_string(),
            }
        })),
    }
}

/// The institution a flow names: ours by id (of the flow's provider, shared or the tenant's
/// own), or, for a provider linkstate cannot ask, the tenant's own institution by that
/// provider's id, named by that id.
async fn flow_institution(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    flow: &NewFlow,
) -> Result<InstitutionId, LifecycleError> {
    let wanted = flow.service_provider;
    match &flow.institution {
        InstitutionRef::Provider(id) => {
            let own = InstitutionOwner::Tenant(account_id);
            Ok(institutions::upsert_institution(conn, wanted, own, id, id).await?)
        }
        InstitutionRef::Ours(id) => {
            match institutions::institution_provider(conn, account_id, *id).await? {
                Some(actual) if actual == wanted => Ok(*id),
                Some(actual) => Err(LifecycleError::InstitutionOfOtherProvider {
                    id: id.to_string(),
                    actual,
                    wanted,
                }),
                None => Err(LifecycleError::UnknownInstitution(id.to_string())),
            }
        }
    }
}

/// Completes a connect flow: the connection becomes ACTIVE with the provider's id and
/// credentials, sends CONNECTION_COMPLETED and its STATUS_CHANGE, and (for Plaid, the one
/// provider linkstate can call) is aggregated at once and refreshed in the background after.
pub async fn complete(
    ctx: &Context,
    account_id: AccountId,
    id: ConnectionId,
    raw: connect_flow::RawCompletion,
) -> Result<Connection, LifecycleError> {
    let connection = {
        let mut conn = store::connect(ctx.pool()).await?;
        tenant_connection(&mut conn, account_id, id).await?
    };
    require_in_progress(connection.status, "completed")?;
    if !aggregates(connection.service_provider) {
        return Err(LifecycleError::NotSupported(connection.service_provider));
    }
    let completion = connect_flow::validate_completion(connection.service_provider, raw)?;
    let item = match &completion.credentials {
        Some(ProviderCredentials::Plaid { access_token }) => {
            Some(fetch_plaid_item(ctx, access_token, &completion.provider_connection_id).await?)
        }
        _ => None,
    };
    // Akoya rotates the token now: from here on the only live one is in hand, and it is
    // written with the completion below.
    let akoya = match &completion.credentials {
        Some(ProviderCredentials::Akoya {
            refresh_token,
            provider_id,
        }) => Some(AkoyaLink {
            refreshed: tokens::refresh(ctx.akoya(), refresh_token)
                .await
                .map_err(LifecycleError::Akoya)?,
            provider_id: provider_id.clone(),
        }),
        _ => None,
    };
    // Akoya's consent is the id token's grant: it names the connection, whatever was sent.
    let provider_connection_id = akoya
        .as_ref()
        .map_or(completion.provider_connection_id.as_str(), |a| {
            a.refreshed.grant_id.as_str()
        });
    let credentials = match &akoya {
        Some(link) => Some(ProviderCredentials::Akoya {
            refresh_token: link.refreshed.refresh_token.clone(),
            provider_id: link.provider_id.clone(),
        }),
        None => completion.credentials.clone(),
    };
    let request_id = RequestId::generate();
    let mut conn = store::connect(ctx.pool()).await?;
    let completed = conn
        .transaction::<_, LifecycleError, _>(async |conn| {
            let row = connections::lock_aggregation(conn, id).await?;
            require_in_progress(row.state.status, "completed")?;
            let institution_id = match &item {
                Some(item) => item_institution(conn, item, connection.institution_id).await?,
                None => connection.institution_id,
            };
            let products: Vec<String> = match &akoya {
                Some(_) => AKOYA_PRODUCTS
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
                None => item
                    .iter()
                    .flat_map(|item| &item.products)
                    .map(|p| p.as_str().to_string())
                    .collect(),
            };
            let link = ProviderLink {
                provider_connection_id,
                credentials: credentials.as_ref(),
                products,
                institution_id,
            };
            flows::link_provider(conn, ctx.cipher(), id, link).await?;
            if let Some(akoya) = &akoya {
                let tokens = AkoyaTokens {
                    refresh_token: akoya.refreshed.refresh_token.clone(),
                    provider_id: akoya.provider_id.clone(),
                    id_token: Some((akoya.refreshed.id_token.clone(), akoya.refreshed.expires_at)),
                };
                credentials::set_akoya_tokens(conn, ctx.cipher(), id, &tokens).await?;
            }
            flows::end_flow(conn, id, ConnectionStatus::Active).await?;
            let completed = connections::get(conn, account_id, id).await?;
            let new_events = lifecycle_events::flow_completed(&completed.facts(), &request_id);
            events::append(conn, account_id, &new_events).await?;
            if item.is_some() || akoya.is_some() {
                queue_first_aggregation(conn, ctx, &completed, &request_id).await?;
            }
            Ok(completed)
        })
        .await
        .map_err(|error| already_linked(error, provider_connection_id))?;
    ctx.hub().wake();
    ctx.wake_workers();
    Ok(completed)
}

/// Whether linkstate can aggregate the provider's connections (Plaid and Akoya, so far).
fn aggregates(provider: ServiceProvider) -> bool {
    matches!(provider, ServiceProvider::Plaid | ServiceProvider::Akoya)
}

/// A completed Akoya consent: its rotated tokens and institution.
struct AkoyaLink {
    refreshed: Refreshed,
    provider_id: String,
}

/// Queues the aggregation that sends ACCOUNTS_UPDATING and the rest under the completion's
/// request id, and draws the connection's first background refresh, as an import does.
async fn queue_first_aggregation(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    connection: &Connection,
    request_id: &RequestId,
) -> Result<(), StoreError> {
    let job = Job::after_completion(connection.account_id, connection.id, request_id);
    jobs::enqueue(conn, &job, OnDuplicate::Skip).await?;
    let first =
        background_refresh::first_refresh(Utc::now(), ctx.refresh_interval(), &mut rand::rng());
    refresh_schedule::set_next_refresh(conn, connection.id, first).await
}

/// Checks the access token and learns the item's institution and products, as an import does.
async fn fetch_plaid_item(
    ctx: &Context,
    access_token: &Secret,
    item_id: &str,
) -> Result<ItemSummary, LifecycleError> {
    let item = describe_item(ctx.plaid(), access_token)
        .await
        .map_err(completion_failure)?;
    if item.item_id != item_id {
        return Err(LifecycleError::ItemMismatch(item_id.to_string()));
    }
    Ok(item)
}

/// A failed `/item/get` of CompleteConnection: the access token is the caller's argument.
fn completion_failure(error: PlaidError) -> LifecycleError {
    plaid_failure(error, LifecycleError::CredentialsRefused)
}

/// A failed Plaid call as the lifecycle error it is; `refused` says what Plaid refusing the
/// request itself means to the caller.
fn plaid_failure(
    error: PlaidError,
    refused: impl FnOnce(PlaidError) -> LifecycleError,
) -> LifecycleError {
    match error.kind() {
        PlaidErrorKind::NotConfigured => LifecycleError::ProviderNotConfigured(error),
        PlaidErrorKind::CredentialsRefused | PlaidErrorKind::Refused => refused(error),
        PlaidErrorKind::RateLimited | PlaidErrorKind::Unavailable | PlaidErrorKind::Unexpected => {
            LifecycleError::ProviderUnavailable(error)
        }
    }
}

/// The institution of the connection as Plaid reports its item (the item is what the customer
/// linked), named as Plaid names it; the flow's institution when Plaid names none.
async fn item_institution(
    conn: &mut AsyncPgConnection,
    item: &ItemSummary,
    flow_institution: InstitutionId,
) -> Result<InstitutionId, StoreError> {
    let Some(plaid_id) = &item.institution_id else {
        return Ok(flow_institution);
    };
    let name = item.institution_name.as_deref().unwrap_or(plaid_id);
    let shared = InstitutionOwner::Shared;
    let id = institutions::upsert_institution(conn, ServiceProvider::Plaid, shared, plaid_id, name)
        .await?;
    institutions::name_institution(conn, id, name).await?;
    Ok(id)
}

/// A unique violation on completion means the tenant has the provider's connection already.
fn already_linked(error: LifecycleError, provider_connection_id: &str) -> LifecycleError {
    match error {
        LifecycleError::Store(StoreError::Conflict(_)) => {
            LifecycleError::AlreadyLinked(provider_connection_id.to_string())
        }
        other => other,
    }
}

/// Fails a connect flow: the connection becomes EXPIRED, since the flow ended without a
/// connection and Meld keeps such a flow out of every working status (a retry is a new flow),
/// and sends CONNECTION_FAILED with `reason` and the provider's `details`, then the STATUS_CHANGE
/// that says so.
pub async fn fail(
    ctx: &Context,
    account_id: AccountId,
    id: ConnectionId,
    reason: &str,
    details: &Map<String, Value>,
) -> Result<Connection, LifecycleError> {
    let request_id = RequestId::generate();
    let mut conn = store::connect(ctx.pool()).await?;
    let failed = conn
        .transaction::<_, LifecycleError, _>(async |conn| {
            // Another tenant's connection is NOT_FOUND before anything is locked.
            tenant_connection(conn, account_id, id).await?;
            let row = connections::lock_aggregation(conn, id).await?;
            require_in_progress(row.state.status, "failed")?;
            flows::end_flow(conn, id, ConnectionStatus::Expired).await?;
            let failed = connections::get(conn, account_id, id).await?;
            let new_events =
                lifecycle_events::flow_failed(&failed.facts(), &request_id, reason, details);
            events::append(conn, account_id, &new_events).await?;
            Ok(failed)
        })
        .await?;
    ctx.hub().wake();
    Ok(failed)
}

/// Completing and failing apply only to a connection whose connect flow still runs.
fn require_in_progress(
    status: ConnectionStatus,
    action: &'static str,
) -> Result<(), LifecycleError> {
    if status == ConnectionStatus::InProgress {
        return Ok(());
    }
    Err(LifecycleError::NotInProgress { status, action })
}

/// Deletes a connection from any status but DELETED: severs the provider link first (Plaid
/// `/item/remove`, Akoya's `/revoke`), then marks it DELETED without credentials, its accounts INACTIVE, and sends
/// CONNECTION_DELETED and ACCOUNTS_REMOVED. Its data stays readable.
pub async fn delete(
    ctx: &Context,
    account_id: AccountId,
    id: ConnectionId,
) -> Result<Connection, LifecycleError> {
    let (connection, credentials) = {
        let mut conn = store::connect(ctx.pool()).await?;
        let connection = tenant_connection(&mut conn, account_id, id).await?;
        if connection.status == ConnectionStatus::Deleted {
            return Err(LifecycleError::AlreadyDeleted);
        }
        refuse_with_duplicates(&mut conn, id).await?;
        let credentials = stored_credentials(&mut conn, ctx, id).await?;
        (connection, credentials)
    };
    match &credentials {
        Some(ProviderCredentials::Plaid { access_token }) => {
            remove_plaid_item(ctx, access_token).await?;
        }
        Some(ProviderCredentials::Akoya { .. }) => revoke_akoya_consent(ctx, id).await?,
        None => {}
    }
    let mut conn = store::connect(ctx.pool()).await?;
    let deleted = conn
        .transaction::<_, LifecycleError, _>(async |conn| {
            let row = connections::lock_aggregation(conn, id).await?;
            if row.state.status == ConnectionStatus::Deleted {
                return Err(LifecycleError::AlreadyDeleted);
            }
            if connection.status == ConnectionStatus::InProgress
                && row.state.status != ConnectionStatus::InProgress
            {
                return Err(LifecycleError::CompletedMeanwhile);
            }
            refuse_with_duplicates(conn, id).await?;
            connections::mark_deleted(conn, id).await?;
            let accounts = financial_accounts::deactivate_all(conn, id).await?;
            let deleted = connections::get(conn, account_id, id).await?;
            let new_events = lifecycle_events::deletion(&deleted.facts(), &accounts);
            events::append(conn, account_id, &new_events).await?;
            Ok(deleted)
        })
        .await?;
    ctx.hub().wake();
    Ok(deleted)
}

/// Meld's rule: an active connection goes after its inactive duplicates.
async fn refuse_with_duplicates(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
) -> Result<(), LifecycleError> {
    let inactive = duplicates::inactive_duplicates(conn, id).await?;
    if inactive.is_empty() {
        return Ok(());
    }
    Err(LifecycleError::HasInactiveDuplicates(inactive))
}

/// The connection's credentials, if it has any (a flow that never completed has none).
async fn stored_credentials(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    id: ConnectionId,
) -> Result<Option<ProviderCredentials>, StoreError> {
    match credentials::get(conn, ctx.cipher(), id).await {
        Ok(credentials) => Ok(Some(credentials)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Revokes the consent at Akoya, with the newest token (read now: an aggregation may have just
/// rotated it). A token Akoya no longer takes is a consent already ended, which is what a
/// delete wants.
async fn revoke_akoya_consent(ctx: &Context, id: ConnectionId) -> Result<(), LifecycleError> {
    let tokens = {
        let mut conn = store::connect(ctx.pool()).await?;
        credentials::akoya_tokens(&mut conn, ctx.cipher(), id).await?
    };
    match akoya_retrying(|| ctx.akoya().revoke(&tokens.refresh_token)).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == AkoyaErrorKind::ConsentRefused => Ok(()),
        Err(error) => Err(LifecycleError::Akoya(error)),
    }
}

/// Removes the item at Plaid. An item Plaid no longer knows is already what a delete wants.
async fn remove_plaid_item(ctx: &Context, access_token: &Secret) -> Result<(), LifecycleError> {
    let error = match ctx.plaid().item_remove(access_token).await {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    match error.error_code() {
        Some("ITEM_NOT_FOUND" | "INVALID_ACCESS_TOKEN") => Ok(()),
        _ => Err(plaid_failure(error, LifecycleError::ProviderRefused)),
    }
}
