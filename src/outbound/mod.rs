//! Outbound webhooks: the customers' endpoints (profiles), and the delivery of every event to
//! each of them, signed and retried.

pub mod address;
pub mod deliveries;
pub mod profiles;
pub mod sender;
