//! The event log's readers: the per-process hub that tails the log, and the client streams.

pub mod hub;
pub mod stream;
