//! Builds the events that describe a connection, each with the fields of its seed example.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::connection_state::Effect;
use super::connection_status::{ConnectionStatus, StatusReason};
use super::event::{EventFinancialAccount, EventPayload, EventType, NewEvent};
use super::financial_account::ProviderAccount;
use super::ids::{ConnectionId, CustomerId, FinancialAccountId, InstitutionId, RequestId};
use super::product::Product;
use super::service_provider::ServiceProvider;

/// What every connection event says about its connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionFacts {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// The tenant's id for the customer.
    pub external_customer_id: Option<String>,
    /// The institution.
    pub institution_id: InstitutionId,
    /// The institution's name.
    pub institution_name: String,
    /// The provider.
    pub service_provider: ServiceProvider,
    /// The provider's id for the connection (Plaid `item_id`), once known.
    pub provider_connection_id: Option<String>,
}

/// One account as ACCOUNTS_UPDATING announces it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSummary {
    /// The account.
    pub id: FinancialAccountId,
    /// The institution's name for it.
    pub name: String,
    /// The last digits of its number, if the institution gives them.
    pub mask: Option<String>,
    /// Whether this aggregation found it for the first time.
    pub is_new: bool,
}

/// The accounts as ACCOUNTS_UPDATING lists them: as the provider names them, with the id and
/// newness each got when stored (`stored`, in the same order).
pub fn summaries(
    accounts: &[ProviderAccount],
    stored: impl IntoIterator<Item = (FinancialAccountId, bool)>,
) -> Vec<AccountSummary> {
    accounts
        .iter()
        .zip(stored)
        .map(|(account, (id, is_new))| AccountSummary {
            id,
            name: account.name.clone(),
            mask: account.mask.clone(),
            is_new,
        })
        .collect()
}

impl ConnectionFacts {
    /// `serviceProviderDetails` when no provider webhook caused the event.
    pub fn provider_details(&self) -> Map<String, Value> {
        let mut details = Map::new();
        details.insert(
            "serviceProvider".into(),
            self.service_provider.as_str().into(),
        );
        if let Some(id) = &self.provider_connection_id {
            details.insert("serviceProviderConnectionId".into(), id.clone().into());
        }
        details
    }

    /// The fields that every connection and account event carries.
    pub(crate) fn base(&self) -> EventPayload {
        EventPayload {
            customer_id: Some(self.customer_id),
            external_customer_id: self.external_customer_id.clone(),
            connection_id: Some(self.connection_id),
            institution_id: Some(self.institution_id),
            service_provider_details: self.provider_details(),
            ..EventPayload::default()
        }
    }
}

/// BANK_LINKING_ACCOUNTS_UPDATING: aggregation started, with basic account info.
pub fn accounts_updating(
    connection: &ConnectionFacts,
    request_id: &RequestId,
    accounts: &[AccountSummary],
) -> NewEvent {
    let financial_accounts = accounts
        .iter()
        .map(|account| EventFinancialAccount {
            id: Some(account.id),
            name: Some(account.name.clone()),
            truncated_account_number: account.mask.clone(),
            new_account: Some(account.is_new),
            ..EventFinancialAccount::default()
        })
        .collect();
    NewEvent {
        event_type: EventType::BankLinkingAccountsUpdating,
        payload: EventPayload {
            request_id: Some(request_id.to_string()),
            financial_accounts: Some(financial_accounts),
            ..connection.base()
        },
    }
}

/// BANK_LINKING_ACCOUNTS_UPDATED: aggregation finished; the products fetched per account.
///
/// TRANSACTIONS is never listed (it has its own events), and accounts with nothing updated are
/// left out, so an aggregation that updated nothing sends an empty list.
pub fn accounts_updated(
    connection: &ConnectionFacts,
    request_id: &RequestId,
    aggregated_at: DateTime<Utc>,
    updated: &[(FinancialAccountId, Vec<Product>)],
) -> NewEvent {
    let financial_accounts = updated
        .iter()
        .filter_map(|(id, products)| {
            let products: Vec<Product> = products
                .iter()
                .copied()
                .filter(|product| *product != Product::Transactions)
                .collect();
            (!products.is_empty()).then(|| EventFinancialAccount {
                id: Some(*id),
                products: Some(products),
                ..EventFinancialAccount::default()
            })
        })
        .collect();
    NewEvent {
        event_type: EventType::BankLinkingAccountsUpdated,
        payload: EventPayload {
            request_id: Some(request_id.to_string()),
            successfully_aggregated_at: Some(aggregated_at),
            financial_accounts: Some(financial_accounts),
            ..connection.base()
        },
    }
}

/// One account's line in a TRANSACTIONS_AGGREGATED event.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionCounts {
    /// The account.
    pub id: FinancialAccountId,
    /// Transactions added.
    pub added: i64,
    /// Transactions updated.
    pub updated: i64,
    /// Ids of transactions removed.
    pub removed: Vec<String>,
}

/// BANK_LINKING_TRANSACTIONS_AGGREGATED (or, with `historical`, its one-time historical twin):
/// the net effect of one aggregation per account.
pub fn transactions_aggregated(
    connection: &ConnectionFacts,
    request_id: &RequestId,
    aggregated_at: DateTime<Utc>,
    counts: &[TransactionCounts],
    historical: bool,
) -> NewEvent {
    let financial_accounts = counts
        .iter()
        .map(|account| EventFinancialAccount {
            financial_account_id: Some(account.id),
            num_transactions_added: Some(account.added),
            num_investment_transactions_added: Some(0),
            num_transactions_updated: Some(account.updated),
            num_investment_transactions_updated: Some(0),
            transaction_ids_removed: Some(account.removed.clone()),
            investment_transaction_ids_removed: Some(Vec::new()),
            ..EventFinancialAccount::default()
        })
        .collect();
    NewEvent {
        event_type: if historical {
            EventType::BankLinkingHistoricalTransactionsAggregated
        } else {
            EventType::BankLinkingTransactionsAggregated
        },
        payload: EventPayload {
            // The seed's transaction events name no institution.
            institution_id: None,
            request_id: Some(request_id.to_string()),
            successfully_aggregated_at: Some(aggregated_at),
            is_partial: Some(false),
            financial_accounts: Some(financial_accounts),
            ..connection.base()
        },
    }
}

/// The events a state transition's effects call for; `details` is `serviceProviderDetails`
/// (the raw provider webhook or error when one caused it) and `accounts` the connection's
/// accounts, which ACCOUNTS_REMOVED lists.
pub fn transition_events(
    connection: &ConnectionFacts,
    effects: &[Effect],
    details: &Map<String, Value>,
    accounts: &[FinancialAccountId],
) -> Vec<NewEvent> {
    effects
        .iter()
        .map(|effect| match *effect {
            Effect::NewAccountsAvailable => about_connection(
                EventType::BankLinkingNewAccountsAvailable,
                connection,
                details,
            ),
            Effect::ConnectionDeleted => connection_deleted(connection, details),
            Effect::AccountsRemoved => accounts_removed(connection, accounts, details),
            Effect::StatusChanged { old, new, reason } => NewEvent {
                event_type: EventType::BankLinkingConnectionStatusChange,
                payload: EventPayload {
                    old_status: Some(old),
                    new_status: Some(new),
                    new_status_reason: Some(reason),
                    active_duplicate_connection_id: Some(None),
                    service_provider_details: details.clone(),
                    ..connection.base()
                },
            },
            Effect::CustomerActionRequired(reason) => NewEvent {
                event_type: EventType::BankLinkingCustomerActionRequired,
                payload: EventPayload {
                    reason: Some(reason.as_str().to_string()),
                    service_provider_details: details.clone(),
                    ..connection.base()
                },
            },
        })
        .collect()
}

/// The STATUS_CHANGE of a connection that became an inactive duplicate of `active`: the seed's
/// payload names the active one in `activeDuplicateConnectionId`.
pub fn became_duplicate(
    connection: &ConnectionFacts,
    old: ConnectionStatus,
    active: ConnectionId,
) -> NewEvent {
    NewEvent {
        event_type: EventType::BankLinkingConnectionStatusChange,
        payload: EventPayload {
            old_status: Some(old),
            new_status: Some(ConnectionStatus::PartiallyActive),
            new_status_reason: Some(Some(StatusReason::InactiveDuplicate)),
            active_duplicate_connection_id: Some(Some(active)),
            service_provider_details: connection.provider_details(),
            ..connection.base()
        },
    }
}

/// An event whose payload is only the connection and the provider's details.
fn about_connection(
    event_type: EventType,
    connection: &ConnectionFacts,
    details: &Map<String, Value>,
) -> NewEvent {
    NewEvent {
        event_type,
        payload: EventPayload {
            service_provider_details: details.clone(),
            ..connection.base()
        },
    }
}

/// BANK_LINKING_CONNECTION_DELETED: the connection is gone; always followed by
/// ACCOUNTS_REMOVED.
pub fn connection_deleted(connection: &ConnectionFacts, details: &Map<String, Value>) -> NewEvent {
    about_connection(EventType::BankLinkingConnectionDeleted, connection, details)
}

/// BANK_LINKING_ACCOUNTS_REMOVED: these accounts are gone (revoked, closed, or the connection
/// deleted).
pub fn accounts_removed(
    connection: &ConnectionFacts,
    accounts: &[FinancialAccountId],
    details: &Map<String, Value>,
) -> NewEvent {
    let financial_accounts = accounts
        .iter()
        .map(|id| EventFinancialAccount {
            id: Some(*id),
            ..EventFinancialAccount::default()
        })
        .collect();
    NewEvent {
        event_type: EventType::BankLinkingAccountsRemoved,
        payload: EventPayload {
            financial_accounts: Some(financial_accounts),
            service_provider_details: details.clone(),
            ..connection.base()
        },
    }
}

#[cfg(test)]
impl ConnectionFacts {
    /// A Plaid connection's facts, for tests.
    pub(crate) fn example() -> Self {
        Self {
            connection_id: ConnectionId::generate(),
            customer_id: CustomerId::generate(),
            external_customer_id: Some("c-1".into()),
            institution_id: InstitutionId::generate(),
            institution_name: "First Platypus Bank".into(),
            service_provider: ServiceProvider::Plaid,
            provider_connection_id: Some("item-1".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_updated_never_lists_transactions_nor_empty_accounts() {
        let (a, b) = (
            FinancialAccountId::generate(),
            FinancialAccountId::generate(),
        );
        let event = accounts_updated(
            &ConnectionFacts::example(),
            &RequestId::generate(),
            Utc::now(),
            &[
                (a, vec![Product::Balances, Product::Transactions]),
                (b, vec![Product::Transactions]),
            ],
        );
        let accounts = event.payload.financial_accounts.unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].id, Some(a));
        assert_eq!(accounts[0].products, Some(vec![Product::Balances]));
    }

    #[test]
    fn provider_details_name_the_item() {
        let details = ConnectionFacts::example().provider_details();
        assert_eq!(details["serviceProvider"], "PLAID");
        assert_eq!(details["serviceProviderConnectionId"], "item-1");
    }
}
