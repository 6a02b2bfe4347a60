//! Webhook profiles: the customer's endpoints, their sealed secrets, and where in the event log
//! each one starts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::webhook_profiles;
use crate::cipher::Cipher;
use crate::domain::cursor::Cursor;
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, ProfileId};
use crate::domain::webhook_profile::{DisabledReason, ProfileStatus, WebhookProfile};
use crate::domain::webhook_signature::{Signers, SigningSecret};

/// A profile row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_profiles)]
struct ProfileRow {
    id: Uuid,
    account_id: Uuid,
    name: String,
    url: String,
    event_types: Vec<String>,
    event_version: String,
    status: String,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<ProfileRow> for WebhookProfile {
    type Error = StoreError;

    fn try_from(row: ProfileRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("profile {}: {what}", row.id));
        Ok(WebhookProfile {
            id: ProfileId(row.id),
            account_id: AccountId(row.account_id),
            event_types: row
                .event_types
                .iter()
                .map(|t| t.parse::<EventType>())
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("event type"))?,
            status: row.status.parse().map_err(|_| corrupt("status"))?,
            disabled_reason: row
                .disabled_reason
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("disabled reason"))?,
            name: row.name,
            url: row.url,
            event_version: row.event_version,
            created_at: row.created_at,
        })
    }
}

/// A new profile's fields, checked.
#[derive(Clone, Debug)]
pub struct NewProfile {
    /// The tenant.
    pub account_id: AccountId,
    /// Its name.
    pub name: String,
    /// Its endpoint.
    pub url: String,
    /// Its event types; empty: all.
    pub event_types: Vec<EventType>,
    /// Its event version.
    pub event_version: String,
}

/// The fields an update changes; None leaves one as it is.
#[derive(Clone, Debug, Default)]
pub struct ProfileChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new endpoint.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<EventType>>,
    /// A new event version.
    pub event_version: Option<String>,
    /// A new status, and why when DISABLED.
    pub status: Option<(ProfileStatus, Option<DisabledReason>)>,
}

fn names(types: &[EventType]) -> Vec<String> {
    types.iter().map(|t| t.as_str().to_string()).collect()
}

/// Seals a profile's secret; the profile id is the associated data, so a secret moved to
/// another row does not open.
fn seal(cipher: &Cipher, id: ProfileId, secret: &SigningSecret) -> Vec<u8> {
    cipher.seal(secret.expose().as_bytes(), id.0.as_bytes())
}

fn open(cipher: &Cipher, id: ProfileId, sealed: &[u8]) -> Result<SigningSecret, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("secret of profile {id}: {what}"));
    let plain = cipher.open(sealed, id.0.as_bytes()).map_err(|_| {
        StoreError::Unopenable(format!("the signing secrets of webhook profile {id}"))
    })?;
    let text = String::from_utf8(plain).map_err(|_| corrupt("not text"))?;
    SigningSecret::parse(&text).map_err(|e| corrupt(&e.to_string()))
}

/// Stores a new profile that receives the events after `start`.
pub async fn create(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    new: &NewProfile,
    secret: &SigningSecret,
    start: Cursor,
) -> Result<WebhookProfile, StoreError> {
    let id = ProfileId::generate();
    diesel::insert_into(webhook_profiles::table)
        .values((
            webhook_profiles::id.eq(id.0),
            webhook_profiles::account_id.eq(new.account_id.0),
            webhook_profiles::name.eq(&new.name),
            webhook_profiles::url.eq(&new.url),
            webhook_profiles::event_types.eq(names(&new.event_types)),
            webhook_profiles::event_version.eq(&new.event_version),
            webhook_profiles::status.eq(ProfileStatus::Active.as_str()),
            webhook_profiles::secret.eq(seal(cipher, id, secret)),
            webhook_profiles::start_transaction.eq(start.transaction as i64),
            webhook_profiles::start_sequence.eq(start.sequence),
        ))
        .execute(conn)
        .await?;
    get(conn, new.account_id, id).await
}

/// One of the tenant's profiles.
pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: ProfileId,
) -> Result<WebhookProfile, StoreError> {
    webhook_profiles::table
        .filter(webhook_profiles::id.eq(id.0))
        .filter(webhook_profiles::account_id.eq(account_id.0))
        .select(ProfileRow::as_select())
        .first::<ProfileRow>(conn)
        .await?
        .try_into()
}

/// The tenant's profiles after `after` (created_at, id), oldest first, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<WebhookProfile>, StoreError> {
    let mut query = webhook_profiles::table
        .filter(webhook_profiles::account_id.eq(account_id.0))
        .order((webhook_profiles::created_at, webhook_profiles::id))
        .limit(limit)
        .select(ProfileRow::as_select())
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            webhook_profiles::created_at
                .gt(at)
                .or(webhook_profiles::created_at
                    .eq(at)
                    .and(webhook_profiles::id.gt(id))),
        );
    }
    query
        .load::<ProfileRow>(conn)
        .await?
        .into_iter()
        .map(WebhookProfile::try_from)
        .collect()
}

/// The tenant's ACTIVE profiles.
pub async fn active(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
) -> Result<Vec<WebhookProfile>, StoreError> {
    webhook_profiles::table
        .filter(webhook_profiles::account_id.eq(account_id.0))
        .filter(webhook_profiles::status.eq(ProfileStatus::Active.as_str()))
        .select(ProfileRow::as_select())
        .load::<ProfileRow>(conn)
        .await?
        .into_iter()
        .map(WebhookProfile::try_from)
        .collect()
}

/// Applies `changes` to one of the tenant's profiles.
pub async fn update(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: ProfileId,
    changes: &ProfileChanges,
) -> Result<WebhookProfile, StoreError> {
    let current = get(conn, account_id, id).await?;
    let (status, reason) = changes
        .status
        .unwrap_or((current.status, current.disabled_reason));
    let reason = (status == ProfileStatus::Disabled)
        .then_some(reason)
        .flatten();
    diesel::update(webhook_profiles::table.find(id.0))
        .set((
            webhook_profiles::name.eq(changes.name.as_ref().unwrap_or(&current.name)),
            webhook_profiles::url.eq(changes.url.as_ref().unwrap_or(&current.url)),
            webhook_profiles::event_types.eq(names(
                changes.event_types.as_ref().unwrap_or(&current.event_types),
            )),
            webhook_profiles::event_version.eq(changes
                .event_version
                .as_ref()
                .unwrap_or(&current.event_version)),
            webhook_profiles::status.eq(status.as_str()),
            webhook_profiles::disabled_reason.eq(reason.map(|r| r.as_str())),
            webhook_profiles::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    get(conn, account_id, id).await
}

/// Deletes one of the tenant's profiles, and with it its deliveries.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: ProfileId,
) -> Result<(), StoreError> {
    let deleted = diesel::delete(
        webhook_profiles::table
            .filter(webhook_profiles::id.eq(id.0))
            .filter(webhook_profiles::account_id.eq(account_id.0)),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Gives a profile a new secret; the one it had keeps signing until `old_until`.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    account_id: AccountId,
    id: ProfileId,
    secret: &SigningSecret,
    old_until: DateTime<Utc>,
) -> Result<WebhookProfile, StoreError> {
    let updated = diesel::update(
        webhook_profiles::table
            .filter(webhook_profiles::id.eq(id.0))
            .filter(webhook_profiles::account_id.eq(account_id.0)),
    )
    .set((
        webhook_profiles::previous_secret.eq(webhook_profiles::secret.nullable()),
        webhook_profiles::previous_secret_until.eq(old_until),
        webhook_profiles::secret.eq(seal(cipher, id, secret)),
        webhook_profiles::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, account_id, id).await
}

/// A profile's secrets as stored, sealed: a claimed delivery carries them.
#[derive(Clone, Debug)]
pub struct SealedSecrets {
    /// The newest secret.
    pub current: Vec<u8>,
    /// The secret before the last rotation.
    pub previous: Option<Vec<u8>>,
    /// Until when the previous one still signs.
    pub previous_until: Option<DateTime<Utc>>,
}

impl SealedSecrets {
    /// The profile's signers at `now`: the previous secret only while it still signs.
    pub fn open(
        &self,
        cipher: &Cipher,
        id: ProfileId,
        now: DateTime<Utc>,
    ) -> Result<Signers, StoreError> {
        let previous = match (&self.previous, self.previous_until) {
            (Some(sealed), Some(until)) if until > now => Some(open(cipher, id, sealed)?),
            _ => None,
        };
        Ok(Signers {
            current: open(cipher, id, &self.current)?,
            previous,
        })
    }
}

/// Disables a profile (the endpoint is gone).
pub async fn disable(
    conn: &mut AsyncPgConnection,
    id: ProfileId,
    reason: DisabledReason,
) -> Result<(), StoreError> {
    diesel::update(webhook_profiles::table.find(id.0))
        .set((
            webhook_profiles::status.eq(ProfileStatus::Disabled.as_str()),
            webhook_profiles::disabled_reason.eq(reason.as_str()),
            webhook_profiles::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
