//! A tenant's customer: the person whose connections linkstate follows.

use chrono::{DateTime, Utc};

use super::ids::{AccountId, CustomerId};

meld_name_enum! {
    /// Whether a customer is still there.
    pub enum CustomerStatus {
        /// In use: imports and connect flows for its external id land on it.
        Active,
        /// Deleted with all its connections; its external id makes a new customer next time.
        Deleted,
    }
}

/// A customer as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    /// Its id.
    pub id: CustomerId,
    /// The tenant.
    pub account_id: AccountId,
    /// The tenant's id for it, when the tenant gave one.
    pub external_customer_id: Option<String>,
    /// Whether it is still there.
    pub status: CustomerStatus,
    /// Its connections that are not DELETED.
    pub connection_count: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}
