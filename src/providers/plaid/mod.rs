//! Plaid: the HTTP client, and the checks and mappings around Plaid's API; the API's own
//! shapes are in `linkstate_wire::plaid`, shared with the simulator.

mod client;
mod error;
mod item;
pub mod mapping;
mod retry;
pub mod verify;
mod webhook;

pub use client::{PlaidClient, PlaidConfig};
pub use error::{PlaidError, PlaidErrorKind};
pub use item::{ItemSummary, describe_item};
pub use linkstate_wire::plaid::*;
pub use retry::retrying;
pub use webhook::{ESSENTIAL_FIELDS as ESSENTIAL_WEBHOOK_FIELDS, check as check_webhook};
