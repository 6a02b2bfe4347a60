//! The pure core: the business rules of connections and their events. No I/O lives here.

pub mod secret;
