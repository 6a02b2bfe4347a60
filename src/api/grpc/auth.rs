//! Who is calling: `authorization: Bearer <apiKey>` names one account, and the key's request
//! rate is within its share.

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::context::Context;
use crate::domain::api_key;
use crate::domain::ids::AccountId;
use crate::store::{self, accounts};

/// The account whose API key the request carries; UNAUTHENTICATED when there is none or it is
/// unknown (the two answers are the same, so a caller learns nothing about which keys exist),
/// RESOURCE_EXHAUSTED with a RetryInfo when the key is over its rate.
pub async fn account(ctx: &Context, metadata: &MetadataMap) -> Result<AccountId, Status> {
    let key = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or(value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(unauthenticated)?;
    let key_hash = api_key::hash(key);
    let mut conn = store::connect(ctx.pool()).await.map_err(Status::from)?;
    let account = accounts::authenticate(&mut conn, &key_hash)
        .await
        .map_err(Status::from)?
        .ok_or_else(unauthenticated)?;
    // The call's span names the tenant, never the key.
    tracing::Span::current().record("account_id", tracing::field::display(account));
    // Limited only once known, so that made-up keys cannot fill the limiter's map.
    ctx.tenants().admit_request(&key_hash)?;
    Ok(account)
}

fn unauthenticated() -> Status {
    Status::unauthenticated("missing or unknown API key: send `authorization: Bearer <apiKey>`")
}
