//! The event log's readers: the per-process hub that tails the log, the listener that wakes it
//! for other replicas' writes, and the client streams.

pub mod hub;
pub mod listener;
pub mod stream;
