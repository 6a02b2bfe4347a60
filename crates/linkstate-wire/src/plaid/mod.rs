//! Plaid's HTTP API: the requests and answers linkstate's client sends and reads, the webhook
//! bodies Plaid posts, and its error body.

mod auth;
mod error;
mod identity;
mod transactions;
mod types;
mod webhook;
mod wire;

pub use auth::*;
pub use error::PlaidApiError;
pub use identity::*;
pub use transactions::*;
pub use types::*;
pub use webhook::PlaidWebhook;
pub use wire::decimal_string;
