//! `linkstate.v1.WebhookService`: the HTTP webhook path, for deliveries relayed over gRPC.

use tonic::{Request, Response, Status};

use super::auth;
use crate::context::Context;
use crate::proto;
use crate::proto::webhook_service_server::WebhookService;
use crate::providers::plaid::verify::HEADER;
use crate::webhooks;

/// Serves RecordWebhook.
pub struct Webhooks {
    ctx: Context,
}

impl Webhooks {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl WebhookService for Webhooks {
    async fn record_webhook(
        &self,
        request: Request<proto::RecordWebhookRequest>,
    ) -> Result<Response<proto::RecordWebhookResponse>, Status> {
        auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        match proto::service_provider::Value::try_from(request.service_provider) {
            Ok(proto::service_provider::Value::Plaid) => {}
            Ok(proto::service_provider::Value::Akoya) => {
                let recorded = webhooks::record_akoya(&self.ctx, &request.body).await?;
                return Ok(Response::new(proto::RecordWebhookResponse {
                    webhook_id: recorded.webhook_id.to_string(),
                    duplicate: recorded.duplicate,
                }));
            }
            _ => {
                return Err(Status::invalid_argument(
                    "serviceProvider must be PLAID or AKOYA",
                ));
            }
        }
        let verification = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(HEADER))
            .map(|(_, value)| value.as_str());
        let recorded = webhooks::record_plaid(&self.ctx, verification, &request.body).await?;
        Ok(Response::new(proto::RecordWebhookResponse {
            webhook_id: recorded.webhook_id.to_string(),
            duplicate: recorded.duplicate,
        }))
    }
}
