//! `linkstate.v1.WebhookProfileService`: the customer's webhook endpoints and their deliveries.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{auth, convert, request, status};
use crate::context::Context;
use crate::domain::delivery::Redelivery;
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::webhook_profile::ProfileStatus;
use crate::outbound::deliveries;
use crate::outbound::profiles::{self, Mask, ProfileFields};
use crate::proto;
use crate::proto::webhook_profile_service_server::WebhookProfileService;
use crate::store::{self, webhook_profiles};

/// Serves the profile RPCs.
pub struct WebhookProfiles {
    ctx: Context,
}

impl WebhookProfiles {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

/// The profile a request names: INVALID_ARGUMENT when unset; a malformed id is NOT_FOUND, like
/// any id this tenant has no profile for.
fn profile_id(raw: &str) -> Result<ProfileId, Status> {
    if raw.is_empty() {
        return Err(Status::invalid_argument("profileId is required"));
    }
    raw.parse()
        .map_err(|_| status::not_found("webhook profile", raw))
}

/// The fields of an update mask, each one this service knows.
fn mask(mask: Option<&prost_types::FieldMask>) -> Result<Mask, Status> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Err(Status::invalid_argument("updateMask names no field"));
    }
    let mut mask = Mask::default();
    for path in paths {
        match path.as_str() {
            "name" => mask.name = true,
            "url" => mask.url = true,
            "event_types" | "eventTypes" => mask.event_types = true,
            "event_version" | "eventVersion" => mask.event_version = true,
            "status" => mask.status = true,
            other => {
                return Err(Status::invalid_argument(format!(
                    "updateMask: {} is not a field that can be updated",
                    crate::domain::input::excerpt(other)
                )));
            }
        }
    }
    Ok(mask)
}

fn status_of(value: i32) -> Result<Option<ProfileStatus>, Status> {
    match proto::webhook_profile::Status::try_from(value) {
        Ok(proto::webhook_profile::Status::Active) => Ok(Some(ProfileStatus::Active)),
        Ok(proto::webhook_profile::Status::Disabled) => Ok(Some(ProfileStatus::Disabled)),
        Ok(proto::webhook_profile::Status::Unspecified) => Ok(None),
        Err(_) => Err(Status::invalid_argument("status has an unknown value")),
    }
}

/// Most events one redelivery may name.
const MAX_REDELIVER_IDS: usize = 1000;

/// Which events a RedeliverEvents names: ids, or a time range, not both and not neither.
fn redelivery(request: &proto::RedeliverEventsRequest) -> Result<Redelivery, Status> {
    let range = (request.since.as_ref(), request.until.as_ref());
    match (request.event_ids.is_empty(), range) {
        (false, (None, None)) => {
            if request.event_ids.len() > MAX_REDELIVER_IDS {
                return Err(Status::invalid_argument(format!(
                    "eventIds names more than {MAX_REDELIVER_IDS} events"
                )));
            }
            let ids = request
                .event_ids
                .iter()
                .map(|raw| {
                    request::optional_id::<EventId>("eventIds", raw)?
                        .ok_or_else(|| Status::invalid_argument("eventIds has an empty id"))
                })
                .collect::<Result<_, _>>()?;
            Ok(Redelivery::Events(ids))
        }
        (true, (Some(since), Some(until))) => {
            let since = request::timestamp("since", since)?;
            let until = request::timestamp("until", until)?;
            if since >= until {
                return Err(Status::invalid_argument("since must be before until"));
            }
            Ok(Redelivery::Range { since, until })
        }
        (true, (None, None)) => Err(Status::invalid_argument(
            "name the events: eventIds, or since and until",
        )),
        _ => Err(Status::invalid_argument(
            "eventIds, or since and until: not both, and both of since and until",
        )),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ProfilePageToken {
    created_at: DateTime<Utc>,
    id: Uuid,
}

#[tonic::async_trait]
impl WebhookProfileService for WebhookProfiles {
    async fn create_webhook_profile(
        &self,
        request: Request<proto::CreateWebhookProfileRequest>,
    ) -> Result<Response<proto::WebhookProfile>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let fields = ProfileFields {
            name: request.name,
            url: request.url,
            event_types: request::event_types("eventTypes", &request.event_types)?,
            event_version: request.event_version,
        };
        let created = profiles::create(&self.ctx, account_id, fields).await?;
        let mut answer = convert::webhook_profile(&created.profile);
        answer.secret = created.secret.expose().to_string();
        Ok(Response::new(answer))
    }

    async fn get_webhook_profile(
        &self,
        request: Request<proto::GetWebhookProfileRequest>,
    ) -> Result<Response<proto::WebhookProfile>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let id = profile_id(&request.get_ref().profile_id)?;
        let profile = profiles::get(&self.ctx, account_id, id).await?;
        Ok(Response::new(convert::webhook_profile(&profile)))
    }

    async fn list_webhook_profiles(
        &self,
        request: Request<proto::ListWebhookProfilesRequest>,
    ) -> Result<Response<proto::ListWebhookProfilesResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let size = request::page_size(request.page_size)?;
        let after = request::decode_token::<ProfilePageToken>(&request.page_token)?
            .map(|t| (t.created_at, t.id));
        let mut conn = store::connect(self.ctx.pool()).await?;
        let mut page = webhook_profiles::list(&mut conn, account_id, after, size + 1).await?;
        let has_more = page.len() as i64 > size;
        page.truncate(size as usize);
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&ProfilePageToken {
                created_at: last.created_at,
                id: last.id.0,
            }),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListWebhookProfilesResponse {
            profiles: page.iter().map(convert::webhook_profile).collect(),
            next_page_token,
        }))
    }

    async fn update_webhook_profile(
        &self,
        request: Request<proto::UpdateWebhookProfileRequest>,
    ) -> Result<Response<proto::WebhookProfile>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let profile = request
            .profile
            .ok_or_else(|| Status::invalid_argument("profile is required"))?;
        let id = profile_id(&profile.id)?;
        let mask = mask(request.update_mask.as_ref())?;
        let status = status_of(profile.status)?;
        let fields = ProfileFields {
            name: profile.name,
            url: profile.url,
            event_types: request::event_types("eventTypes", &profile.event_types)?,
            event_version: profile.event_version,
        };
        let updated = profiles::update(&self.ctx, account_id, id, mask, fields, status).await?;
        Ok(Response::new(convert::webhook_profile(&updated)))
    }

    async fn delete_webhook_profile(
        &self,
        request: Request<proto::DeleteWebhookProfileRequest>,
    ) -> Result<Response<()>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let id = profile_id(&request.get_ref().profile_id)?;
        profiles::delete(&self.ctx, account_id, id).await?;
        Ok(Response::new(()))
    }

    async fn rotate_webhook_profile_secret(
        &self,
        request: Request<proto::RotateWebhookProfileSecretRequest>,
    ) -> Result<Response<proto::WebhookProfile>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let id = profile_id(&request.get_ref().profile_id)?;
        let rotated = profiles::rotate(&self.ctx, account_id, id).await?;
        let mut answer = convert::webhook_profile(&rotated.profile);
        answer.secret = rotated.secret.expose().to_string();
        Ok(Response::new(answer))
    }

    async fn send_test_webhook(
        &self,
        request: Request<proto::SendTestWebhookRequest>,
    ) -> Result<Response<proto::Delivery>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let id = profile_id(&request.get_ref().profile_id)?;
        let delivery = deliveries::send_test(&self.ctx, account_id, id).await?;
        Ok(Response::new(convert::delivery(&delivery)))
    }

    async fn list_deliveries(
        &self,
        request: Request<proto::ListDeliveriesRequest>,
    ) -> Result<Response<proto::ListDeliveriesResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = profile_id(&request.profile_id)?;
        let query = deliveries::ListQuery {
            event_id: request::optional_id("eventId", &request.event_id)?,
            statuses: request
                .statuses
                .iter()
                .map(|value| {
                    let name = proto::delivery::Status::try_from(*value)
                        .ok()
                        .filter(|s| *s != proto::delivery::Status::Unspecified)
                        .map(|s| s.as_str_name());
                    request::known_enum("statuses", name)
                })
                .collect::<Result<_, _>>()?,
            size: request::page_size(request.page_size)?,
            after: request::decode_token(&request.page_token)?,
        };
        let page = deliveries::list(&self.ctx, account_id, id, &query).await?;
        Ok(Response::new(proto::ListDeliveriesResponse {
            next_page_token: page
                .next
                .map(|next| request::encode_token(&next))
                .unwrap_or_default(),
            deliveries: page.deliveries.iter().map(convert::delivery).collect(),
        }))
    }

    async fn redeliver_events(
        &self,
        request: Request<proto::RedeliverEventsRequest>,
    ) -> Result<Response<proto::RedeliverEventsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = profile_id(&request.profile_id)?;
        let which = redelivery(&request)?;
        let queued =
            deliveries::redeliver(&self.ctx, account_id, id, &which, request.only_failed).await?;
        Ok(Response::new(proto::RedeliverEventsResponse { queued }))
    }
}
