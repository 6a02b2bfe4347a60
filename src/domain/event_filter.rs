//! Which events a subscriber wants: every given criterion must hold.

use super::event::{Event, EventType};
use super::ids::{ConnectionId, CustomerId};

/// Filters of `StreamEvents` and `ListEvents`, combined with AND; empty means everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only these types (any type when empty).
    pub event_types: Vec<EventType>,
    /// Only this customer's events.
    pub customer_id: Option<CustomerId>,
    /// Only events of the customer with this external id.
    pub external_customer_id: Option<String>,
    /// Only this connection's events.
    pub connection_id: Option<ConnectionId>,
}

impl EventFilter {
    /// Whether `event` passes every criterion.
    pub fn matches(&self, event: &Event) -> bool {
        let payload = &event.payload;
        (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && self
                .customer_id
                .is_none_or(|id| payload.customer_id == Some(id))
            && self
                .external_customer_id
                .as_ref()
                .is_none_or(|id| payload.external_customer_id.as_ref() == Some(id))
            && self
                .connection_id
                .is_none_or(|id| payload.connection_id == Some(id))
    }
}
