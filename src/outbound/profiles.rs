//! The webhook profile use cases: create, change, rotate, delete, each checked before anything
//! is written.

use chrono::Utc;

use super::address::{self, AddressError};
use crate::context::Context;
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, ProfileId};
use crate::domain::webhook_profile::{
    self as rules, DisabledReason, ProfileInputError, ProfileStatus, WebhookProfile,
};
use crate::domain::webhook_signature::SigningSecret;
use crate::store::webhook_profiles::{self, NewProfile, ProfileChanges};
use crate::store::{self, StoreError, events};

/// How long a rotated-out secret still signs.
pub const OLD_SECRET_SIGNS_FOR: chrono::Duration = chrono::Duration::hours(24);

/// Why a profile operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The tenant has no such profile.
    #[error("webhook profile {0} not found")]
    NotFound(ProfileId),
    /// A field is refused; the message names it.
    #[error(transparent)]
    Invalid(#[from] ProfileInputError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl ProfileError {
    fn from_store(id: ProfileId) -> impl Fn(StoreError) -> ProfileError {
        move |error| match error {
            StoreError::NotFound => ProfileError::NotFound(id),
            other => ProfileError::Store(other),
        }
    }
}

impl From<StoreError> for ProfileError {
    fn from(error: StoreError) -> Self {
        ProfileError::Store(error)
    }
}

/// A profile's fields as asked for, before they are checked.
#[derive(Clone, Debug, Default)]
pub struct ProfileFields {
    /// Its name.
    pub name: String,
    /// Its endpoint.
    pub url: String,
    /// Its event types; empty: all.
    pub event_types: Vec<EventType>,
    /// Its event version; empty: the current one.
    pub event_version: String,
}

/// A profile and the secret shown with it, once.
#[derive(Debug)]
pub struct WithSecret {
    /// The profile.
    pub profile: WebhookProfile,
    /// Its new secret.
    pub secret: SigningSecret,
}

/// Checks a URL: its form, then (for a host name) that DNS does not point it anywhere private.
async fn check_url(ctx: &Context, text: &str) -> Result<String, ProfileInputError> {
    let allow_private = ctx.delivery().allow_private;
    let url = rules::check_url(text, allow_private)?;
    // A name that does not resolve yet is taken (its DNS may still be on the way); every
    // attempt resolves it again and refuses a non-public answer then.
    match address::check_url_host(&url, allow_private).await {
        // As typed, not as the parser writes it back: the Meld signature covers it.
        Ok(()) | Err(AddressError::Unresolved) => Ok(text.to_string()),
        Err(AddressError::NotPublic) => Err(rules::refused_address()),
    }
}

fn new_secret() -> SigningSecret {
    SigningSecret::from_key(rand::random())
}

/// Creates a profile that receives the events written from now on.
pub async fn create(
    ctx: &Context,
    account_id: AccountId,
    fields: ProfileFields,
) -> Result<WithSecret, ProfileError> {
    let new = NewProfile {
        account_id,
        name: rules::check_name(&fields.name)?,
        url: check_url(ctx, &fields.url).await?,
        event_types: fields.event_types,
        event_version: rules::check_version(&fields.event_version)?,
    };
    let secret = new_secret();
    let mut conn = store::connect(ctx.pool()).await?;
    let start = events::head(&mut conn).await?;
    let profile = webhook_profiles::create(&mut conn, ctx.cipher(), &new, &secret, start).await?;
    Ok(WithSecret { profile, secret })
}

/// One of the tenant's profiles.
pub async fn get(
    ctx: &Context,
    account_id: AccountId,
    id: ProfileId,
) -> Result<WebhookProfile, ProfileError> {
    let mut conn = store::connect(ctx.pool()).await?;
    webhook_profiles::get(&mut conn, account_id, id)
        .await
        .map_err(ProfileError::from_store(id))
}

/// Which fields an update changes, by the names of its field mask.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mask {
    /// `name`.
    pub name: bool,
    /// `url`.
    pub url: bool,
    /// `event_types` / `eventTypes`.
    pub event_types: bool,
    /// `event_version` / `eventVersion`.
    pub event_version: bool,
    /// `status`.
    pub status: bool,
}

/// Changes the masked fields of a profile to those of `fields` and `status`.
pub async fn update(
    ctx: &Context,
    account_id: AccountId,
    id: ProfileId,
    mask: Mask,
    fields: ProfileFields,
    status: Option<ProfileStatus>,
) -> Result<WebhookProfile, ProfileError> {
    // The profile first: another tenant's id is NOT_FOUND before any field is judged.
    get(ctx, account_id, id).await?;
    let mut changes = ProfileChanges::default();
    if mask.name {
        changes.name = Some(rules::check_name(&fields.name)?);
    }
    if mask.url {
        changes.url = Some(check_url(ctx, &fields.url).await?);
    }
    if mask.event_types {
        changes.event_types = Some(fields.event_types);
    }
    if mask.event_version {
        changes.event_version = Some(rules::check_version(&fields.event_version)?);
    }
    if mask.status {
        let status = status.ok_or(ProfileInputError::Missing("status"))?;
        let reason = (status == ProfileStatus::Disabled).then_some(DisabledReason::ByRequest);
        changes.status = Some((status, reason));
    }
    let mut conn = store::connect(ctx.pool()).await?;
    webhook_profiles::update(&mut conn, account_id, id, &changes)
        .await
        .map_err(ProfileError::from_store(id))
}

/// Deletes a profile and its deliveries.
pub async fn delete(
    ctx: &Context,
    account_id: AccountId,
    id: ProfileId,
) -> Result<(), ProfileError> {
    let mut conn = store::connect(ctx.pool()).await?;
    webhook_profiles::delete(&mut conn, account_id, id)
        .await
        .map_err(ProfileError::from_store(id))
}

/// A new secret for a profile; the old one signs for [`OLD_SECRET_SIGNS_FOR`] more.
pub async fn rotate(
    ctx: &Context,
    account_id: AccountId,
    id: ProfileId,
) -> Result<WithSecret, ProfileError> {
    let secret = new_secret();
    let mut conn = store::connect(ctx.pool()).await?;
    let until = Utc::now() + OLD_SECRET_SIGNS_FOR;
    let profile = webhook_profiles::rotate(&mut conn, ctx.cipher(), account_id, id, &secret, until)
        .await
        .map_err(ProfileError::from_store(id))?;
    Ok(WithSecret { profile, secret })
}

/// Whether some ACTIVE profile of the account receives events of this type.
pub async fn any_receives(
    ctx: &Context,
    account_id: AccountId,
    event_type: EventType,
) -> Result<bool, StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let active = webhook_profiles::active(&mut conn, account_id).await?;
    Ok(active.iter().any(|profile| profile.receives(event_type)))
}
