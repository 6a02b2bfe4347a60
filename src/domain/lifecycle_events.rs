//! Builds the events of a connection's life outside aggregation: the end of its connect flow
//! (completed, failed, expired) and its deletion, each with the fields of its seed example.

use serde_json::{Map, Value};

use super::connection_events::{ConnectionFacts, transition_events};
use super::connection_state::Effect;
use super::connection_status::ConnectionStatus;
use super::event::{EventPayload, EventType, NewEvent};
use super::ids::{FinancialAccountId, RequestId};

/// BANK_LINKING_CONNECTION_COMPLETED: the customer finished the connect flow.
pub fn connection_completed(connection: &ConnectionFacts, request_id: &RequestId) -> NewEvent {
    NewEvent {
        event_type: EventType::BankLinkingConnectionCompleted,
        payload: EventPayload {
            institution_name: Some(connection.institution_name.clone()),
            request_id: Some(request_id.to_string()),
            ..connection.base()
        },
    }
}

/// BANK_LINKING_CONNECTION_FAILED: the connect flow ended without a connection; `details` is
/// `serviceProviderDetails` (see [`failure_details`]).
pub fn connection_failed(
    connection: &ConnectionFacts,
    request_id: &RequestId,
    reason: &str,
    details: &Map<String, Value>,
) -> NewEvent {
    NewEvent {
        event_type: EventType::BankLinkingConnectionFailed,
        payload: EventPayload {
            request_id: Some(request_id.to_string()),
            reason: Some(reason.to_string()),
            service_provider_details: details.clone(),
            ..connection.base()
        },
    }
}

pub use super::connection_events::{accounts_removed, connection_deleted};

/// `serviceProviderDetails` of a failed flow: the provider's name first (ours wins, it is the
/// connection's), then whatever the caller passed on from the provider.
pub fn failure_details(
    connection: &ConnectionFacts,
    given: &Map<String, Value>,
) -> Map<String, Value> {
    let mut details = connection.provider_details();
    for (key, value) in given {
        details.entry(key.clone()).or_insert_with(|| value.clone());
    }
    details
}

/// A completed flow: CONNECTION_COMPLETED, then the STATUS_CHANGE from IN_PROGRESS to ACTIVE.
pub fn flow_completed(connection: &ConnectionFacts, request_id: &RequestId) -> Vec<NewEvent> {
    let mut events = vec![connection_completed(connection, request_id)];
    events.extend(flow_ended(
        connection,
        ConnectionStatus::Active,
        &connection.provider_details(),
    ));
    events
}

/// A failed flow: CONNECTION_FAILED, then the STATUS_CHANGE from IN_PROGRESS to EXPIRED, both
/// with the provider's details the caller passed on.
pub fn flow_failed(
    connection: &ConnectionFacts,
    request_id: &RequestId,
    reason: &str,
    given_details: &Map<String, Value>,
) -> Vec<NewEvent> {
    let details = failure_details(connection, given_details);
    let mut events = vec![connection_failed(connection, request_id, reason, &details)];
    events.extend(flow_ended(connection, ConnectionStatus::Expired, &details));
    events
}

/// An abandoned flow: the STATUS_CHANGE from IN_PROGRESS to EXPIRED.
pub fn flow_expired(connection: &ConnectionFacts) -> Vec<NewEvent> {
    flow_ended(
        connection,
        ConnectionStatus::Expired,
        &connection.provider_details(),
    )
}

/// A deletion: CONNECTION_DELETED, then ACCOUNTS_REMOVED listing every account (an empty list
/// when there are none: Meld always sends the pair).
pub fn deletion(connection: &ConnectionFacts, accounts: &[FinancialAccountId]) -> Vec<NewEvent> {
    let details = connection.provider_details();
    vec![
        connection_deleted(connection, &details),
        accounts_removed(connection, accounts, &details),
    ]
}

/// The STATUS_CHANGE out of IN_PROGRESS; the statuses a flow ends in take no reason.
fn flow_ended(
    connection: &ConnectionFacts,
    new: ConnectionStatus,
    details: &Map<String, Value>,
) -> Vec<NewEvent> {
    let change = Effect::StatusChanged {
        old: ConnectionStatus::InProgress,
        new,
        reason: None,
    };
    transition_events(connection, &[change], details, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose provider id is not known yet.
    fn facts() -> ConnectionFacts {
        ConnectionFacts {
            provider_connection_id: None,
            ..ConnectionFacts::example()
        }
    }

    #[test]
    fn a_completed_flow_announces_itself_then_its_status() {
        let events = flow_completed(&facts(), &RequestId::generate());
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::BankLinkingConnectionCompleted,
                EventType::BankLinkingConnectionStatusChange
            ]
        );
        assert_eq!(
            events[1].payload.old_status,
            Some(ConnectionStatus::InProgress)
        );
        assert_eq!(events[1].payload.new_status, Some(ConnectionStatus::Active));
        assert_eq!(events[1].payload.new_status_reason, Some(None));
    }

    #[test]
    fn failure_details_keep_our_provider_name_first() {
        let given = serde_json::json!({"serviceProvider": "MX", "payload": {"code": 102}});
        let details = failure_details(&facts(), given.as_object().unwrap());
        let keys: Vec<_> = details.keys().cloned().collect();
        assert_eq!(keys, ["serviceProvider", "payload"]);
        assert_eq!(details["serviceProvider"], "PLAID");
    }

    #[test]
    fn a_deletion_always_sends_the_pair() {
        let events = deletion(&facts(), &[]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].payload.financial_accounts, Some(Vec::new()));
    }
}
