//! The service's front doors: gRPC for internal services, HTTP for providers and operators.

pub mod grpc;
pub mod http;
