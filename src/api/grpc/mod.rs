//! The gRPC server: linkstate's services behind API-key auth, plus reflection and health.

pub mod auth;
pub mod connection_service;
pub mod convert;
pub mod customer_service;
pub mod event_service;
pub mod financial_data_service;
pub mod observe;
pub mod request;
pub mod status;
pub mod webhook_profile_service;
pub mod webhook_service;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::context::Context;
use crate::proto;

/// Reflection over linkstate's services and the health service.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The largest message linkstate decodes or sends, in bytes (gRPC's usual 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The limits of the gRPC listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcLimits {
    /// How often an idle HTTP/2 connection is pinged; one that does not answer within
    /// `keepalive_timeout` is closed.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// Calls one connection may have open at once.
    pub max_concurrent_streams: u32,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 256,
        }
    }
}

/// Serves gRPC on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    ctx: Context,
    listener: TcpListener,
    limits: GrpcLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // grpcurl before 1.8.8 (the one pip installs) speaks only the v1alpha protocol.
    let reflection = reflection_builder()
        .build_v1()
        .expect("embedded descriptors are valid");
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .expect("embedded descriptors are valid");
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<proto::connection_service_server::ConnectionServiceServer<
            connection_service::Connections,
        >>()
        .await;
    Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .layer(observe::ObserveLayer)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(health)
        .add_service(
            proto::connection_service_server::ConnectionServiceServer::new(
                connection_service::Connections::new(ctx.clone()),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            proto::customer_service_server::CustomerServiceServer::new(
                customer_service::Customers::new(ctx.clone()),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            proto::financial_data_service_server::FinancialDataServiceServer::new(
                financial_data_service::FinancialData::new(ctx.clone()),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            proto::event_service_server::EventServiceServer::new(event_service::Events::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            proto::webhook_profile_service_server::WebhookProfileServiceServer::new(
                webhook_profile_service::WebhookProfiles::new(ctx.clone()),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            proto::webhook_service_server::WebhookServiceServer::new(
                webhook_service::Webhooks::new(ctx),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        // Nagle's algorithm would hold a stream's small messages back for the client's delayed
        // ACK (tens of milliseconds); tonic leaves accepted sockets as they are, so say it here.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
