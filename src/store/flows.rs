//! Connect flows another service runs with the customer: the IN_PROGRESS connection, and its
//! end (the provider's link stored, or the flow failed).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;
use super::schema::connections;
use crate::cipher::Cipher;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::{AccountId, ConnectionId, CustomerId, InstitutionId};
use crate::domain::import::ProviderCredentials;
use crate::domain::service_provider::ServiceProvider;

/// What [`insert_flow`] writes.
#[derive(Clone, Debug)]
pub struct FlowConnection {
    /// The tenant.
    pub account_id: AccountId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The institution.
    pub institution_id: InstitutionId,
    /// The provider the customer connects through.
    pub service_provider: ServiceProvider,
    /// When the flow expires if nobody completes it.
    pub expires_at: DateTime<Utc>,
}

/// Inserts the connection of a connect flow that began: IN_PROGRESS, with no provider id and no
/// credentials yet.
pub async fn insert_flow(
    conn: &mut AsyncPgConnection,
    new: &FlowConnection,
) -> Result<ConnectionId, StoreError> {
    let id = ConnectionId::generate();
    diesel::insert_into(connections::table)
        .values((
            connections::id.eq(id.0),
            connections::account_id.eq(new.account_id.0),
            connections::customer_id.eq(new.customer_id.0),
            connections::institution_id.eq(new.institution_id.0),
            connections::service_provider.eq(new.service_provider.as_str()),
            connections::status.eq(ConnectionStatus::InProgress.as_str()),
            connections::flow_expires_at.eq(new.expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// What [`link_provider`] writes.
#[derive(Debug)]
pub struct ProviderLink<'a> {
    /// The provider's id for the connection.
    pub provider_connection_id: &'a str,
    /// The credentials, sealed before they are written; `None` stores none.
    pub credentials: Option<&'a ProviderCredentials>,
    /// The products the provider has for it.
    pub products: Vec<String>,
    /// The institution, as the provider reports it.
    pub institution_id: InstitutionId,
}

/// Stores on an existing connection the provider's id for it, its credentials, products and
/// institution. A provider id the tenant already has on another connection is a unique
/// violation.
pub async fn link_provider(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
    link: ProviderLink<'_>,
) -> Result<(), StoreError> {
    let sealed = link
        .credentials
        .map(|credentials| super::credentials::seal(cipher, id, credentials));
    diesel::update(connections::table.find(id.0))
        .set((
            connections::provider_connection_id.eq(link.provider_connection_id),
            connections::credentials.eq(sealed),
            connections::products.eq(link.products),
            connections::institution_id.eq(link.institution_id.0),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a connection's connect flow in `status` (ACTIVE or EXPIRED, neither with a reason).
pub async fn end_flow(
    conn: &mut AsyncPgConnection,
    id: ConnectionId,
    status: ConnectionStatus,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::status.eq(status.as_str()),
            connections::status_reason.eq(None::<String>),
            connections::flow_expires_at.eq(None::<DateTime<Utc>>),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
