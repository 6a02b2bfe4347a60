//! Plaid: the HTTP client and the shapes of Plaid's API.

mod auth;
mod client;
mod error;
mod identity;
mod item;
pub mod mapping;
mod retry;
mod transactions;
mod types;
pub mod verify;
mod webhook;
mod wire;

#[cfg(test)]
mod tests;

pub use auth::*;
pub use client::{PlaidClient, PlaidConfig};
pub use error::{PlaidApiError, PlaidError, PlaidErrorKind};
pub use identity::*;
pub use item::{ItemSummary, describe_item};
pub use retry::retrying;
pub use transactions::*;
pub use types::*;
pub use webhook::{ESSENTIAL_FIELDS as ESSENTIAL_WEBHOOK_FIELDS, PlaidWebhook};
pub use wire::decimal_string;
