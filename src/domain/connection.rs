//! A connection as the rest of the service sees it.

use chrono::{DateTime, Utc};

use super::connection_events::ConnectionFacts;
use super::connection_state;
use super::connection_status::{ConnectionStatus, StatusReason};
use super::ids::{AccountId, ConnectionId, CustomerId, InstitutionId};
use super::product::Product;
use super::service_provider::ServiceProvider;

/// A connection with its customer's external id and its institution's name.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    /// Its id.
    pub id: ConnectionId,
    /// The tenant.
    pub account_id: AccountId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The tenant's id for the customer.
    pub external_customer_id: Option<String>,
    /// The institution.
    pub institution_id: InstitutionId,
    /// The institution's name.
    pub institution_name: String,
    /// The provider.
    pub service_provider: ServiceProvider,
    /// The provider's id (Plaid `item_id`), once known.
    pub provider_connection_id: Option<String>,
    /// Where it stands.
    pub status: ConnectionStatus,
    /// Why, where the status takes a reason.
    pub status_reason: Option<StatusReason>,
    /// The products aggregated for it.
    pub products: Vec<Product>,
    /// When an aggregation last succeeded.
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The connection that replaced it, when it is an inactive duplicate.
    pub active_duplicate_connection_id: Option<ConnectionId>,
    /// Its inactive duplicates that are not deleted, oldest first.
    pub duplicate_connection_ids: Vec<ConnectionId>,
}

impl Connection {
    /// Whether it is aggregated (see [`connection_state::is_inactive_duplicate`]).
    pub fn is_refreshable(&self) -> bool {
        self.status.allows_refresh()
            && !connection_state::is_inactive_duplicate(self.status, self.status_reason)
    }

    /// What events say about this connection.
    pub fn facts(&self) -> ConnectionFacts {
        ConnectionFacts {
            connection_id: self.id,
            customer_id: self.customer_id,
            external_customer_id: self.external_customer_id.clone(),
            institution_id: self.institution_id,
            institution_name: self.institution_name.clone(),
            service_provider: self.service_provider,
            provider_connection_id: self.provider_connection_id.clone(),
        }
    }
}
