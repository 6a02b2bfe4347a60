//! Plaid: the HTTP client and the shapes of Plaid's API.

mod client;
mod error;
pub mod mapping;
mod types;

#[cfg(test)]
mod tests;

pub use client::{PlaidClient, PlaidConfig};
pub use error::{PlaidApiError, PlaidError};
pub use types::*;
