//! Clients for the data providers, and the mapping of their answers to domain signals.

pub mod plaid;
