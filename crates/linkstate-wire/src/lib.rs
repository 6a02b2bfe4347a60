//! The providers' HTTP APIs as Rust types: what linkstate's clients send and read, and what the
//! provider simulator serves. No I/O, so the service and the simulator share one definition of
//! each provider's wire format.

#![warn(missing_docs)]

pub mod akoya;
pub mod plaid;
mod secret;

pub use secret::Secret;
