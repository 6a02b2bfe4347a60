//! linkstate: the aggregation state of bank connections, served over gRPC.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod bulk_import;
pub mod cipher;
pub mod config;
pub mod context;
pub mod customers;
pub mod domain;
pub mod duplicates;
pub mod events;
pub mod import;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod outbound;
pub mod progress;
pub mod providers;
pub mod refresh;
pub mod reseal;
pub mod store;
pub mod tenant_limits;
pub mod webhooks;
pub mod worker;

/// The generated gRPC types of `linkstate.v1`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("linkstate.v1");

    /// The encoded descriptors of every linkstate proto, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("linkstate_descriptor");
}
