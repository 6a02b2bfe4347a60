//! The pure core: the business rules of connections and their events. No I/O lives here.

#[macro_use]
mod meld_name;

pub mod api_key;
pub mod background_refresh;
pub mod circuit;
pub mod connect_flow;
pub mod connection;
pub mod connection_events;
pub mod connection_state;
pub mod connection_status;
pub mod cursor;
pub mod customer;
pub mod delivery;
pub mod duplicates;
pub mod event;
pub mod event_filter;
pub mod financial_account;
pub mod ids;
pub mod import;
pub mod input;
pub mod lifecycle_events;
pub mod product;
pub mod public_address;
pub mod secret;
pub mod service_provider;
pub mod transaction_window;
pub mod transactions;
pub mod webhook_profile;
pub mod webhook_signature;
