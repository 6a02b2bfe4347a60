//! Credentials that must never reach a log line, a response or an event.
//!
//! The type lives with the providers' wire types, whose token fields carry it, so that a token
//! read from the database goes to a provider without a conversion.

pub use linkstate_wire::Secret;
