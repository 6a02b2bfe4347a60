//! Recording provider webhooks: verify on the raw body, record the delivery and the job that
//! will process it in one transaction (with whatever else has gathered: `group_commit`), and
//! answer only then. The HTTP adapter and
//! `WebhookService.RecordWebhook` both come through here. Akoya's notifications are not
//! signed: they are recorded the same way, and only confirmed at Akoya before acting.

pub mod group_commit;

use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use crate::context::Context;
use crate::domain::input;
use crate::jobs::Job;
use crate::providers::akoya::Notification;
use crate::providers::plaid::verify::{UnverifiedWebhook, VerifyError};
use crate::providers::plaid::{self, PlaidWebhook};
use crate::store::{StoreError, webhooks};

/// A recorded delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The delivery's id.
    pub webhook_id: Uuid,
    /// Whether this delivery had been recorded already.
    pub duplicate: bool,
}

/// Why a delivery was not recorded; each maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Over the size limit (413).
    #[error("body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Missing or bad signature (401); nothing is recorded.
    #[error("webhook signature: {0}")]
    Unverified(VerifyError),
    /// Not what the provider sends (400).
    #[error("body is not a Plaid webhook: {0}")]
    Malformed(String),
    /// Not an Akoya notification (400).
    #[error("body is not an Akoya notification: {0}")]
    NotANotification(String),
    /// The database or the provider's key endpoint is unreachable (503): the provider retries.
    /// The detail is for the log; the sender is told only to retry.
    #[error("cannot record the webhook now; retry later")]
    Unavailable(String),
    /// Anything else went wrong on our side (500): a bug or a broken database, logged with its
    /// detail; retrying the same delivery will not help.
    #[error("internal error")]
    Internal(String),
}

/// Reads a verified Plaid body: a webhook whose fields are within bounds.
pub fn parse_plaid(body: &[u8]) -> Result<PlaidWebhook, RecordError> {
    // serde's message may quote the body: only its start is told back.
    let webhook: PlaidWebhook = serde_json::from_slice(body)
        .map_err(|e| RecordError::Malformed(input::clip(&e.to_string())))?;
    plaid::check_webhook(&webhook).map_err(|e| RecordError::Malformed(e.to_string()))?;
    Ok(webhook)
}

/// Reads an Akoya body: a notification whose category, type and subject are within bounds.
pub fn parse_akoya(body: &[u8]) -> Result<Notification, RecordError> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| RecordError::NotANotification(input::clip(&e.to_string())))?;
    let check = |field: &'static str, value: &str| {
        input::text(field, value, MAX_NOTIFICATION_FIELD)
            .map_err(|e| RecordError::NotANotification(e.to_string()))
    };
    check("category", &notification.category)?;
    check("type", &notification.notification_type)?;
    if let Some(subject) = notification.subject_id() {
        check("notificationPayload.id", subject)?;
    }
    Ok(notification)
}

/// Verifies and records one Plaid delivery.
pub async fn record_plaid(
    ctx: &Context,
    verification: Option<&str>,
    body: &[u8],
) -> Result<Recorded, RecordError> {
    let limit = ctx.webhook_max_bytes();
    if body.len() > limit {
        return Err(RecordError::TooLarge { limit });
    }
    let verified = ctx
        .plaid_verifier()
        .verify(
            UnverifiedWebhook {
                jwt: verification,
                body,
            },
            Utc::now(),
        )
        .await
        .map_err(|error| match error {
            VerifyError::KeyUnavailable(reason) => RecordError::Unavailable(reason),
            other => RecordError::Unverified(other),
        })?;
    let webhook = parse_plaid(body)?;
    let id = Uuid::now_v7();
    let delivery = webhooks::NewDelivery {
        id,
        service_provider: "PLAID",
        body_sha256: verified.body_sha256,
        body: Bytes::copy_from_slice(body),
        signed_at: verified.signed_at,
        webhook_type: webhook.webhook_type,
        webhook_code: webhook.webhook_code,
        provider_connection_id: webhook.item_id,
        job: Job::process_delivery(id).to_new_job(),
    };
    save(ctx, delivery).await
}

/// Records one Akoya notification. Akoya signs nothing, so it is only a hint: it is kept
/// durably (the 200 means that), and its job confirms it at Akoya before anything changes.
pub async fn record_akoya(ctx: &Context, body: &[u8]) -> Result<Recorded, RecordError> {
    let limit = ctx.webhook_max_bytes();
    if body.len() > limit {
        return Err(RecordError::TooLarge { limit });
    }
    let notification = parse_akoya(body)?;
    let subject = notification.subject_id().map(str::to_owned);
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(body));
    let id = Uuid::now_v7();
    let delivery = webhooks::NewDelivery {
        id,
        service_provider: "AKOYA",
        body_sha256: digest,
        body: Bytes::copy_from_slice(body),
        // Nothing signs it: when it came is all that is known.
        signed_at: Utc::now(),
        webhook_type: notification.category,
        webhook_code: notification.notification_type,
        provider_connection_id: subject,
        job: Job::process_delivery(id).to_new_job(),
    };
    save(ctx, delivery).await
}

/// Longest category, type or id an Akoya notification may carry.
const MAX_NOTIFICATION_FIELD: usize = 255;

/// The delivery and, when it is new, its processing job: one statement, so both or neither,
/// committed with whatever other deliveries gathered meanwhile; a new one wakes the workers.
async fn save(ctx: &Context, delivery: webhooks::NewDelivery) -> Result<Recorded, RecordError> {
    let (webhook_id, new) = ctx
        .webhook_writer()
        .record(delivery)
        .await
        .map_err(|e| match e {
            StoreError::Unavailable(reason) => RecordError::Unavailable(reason),
            other => RecordError::Internal(other.to_string()),
        })?;
    if new {
        ctx.wake_workers();
    }
    Ok(Recorded {
        webhook_id,
        duplicate: !new,
    })
}
