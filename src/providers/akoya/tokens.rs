//! Akoya's rotating tokens. Every refresh answers a new refresh token and kills the old one, so
//! the new one is committed, sealed, in its own short transaction before the id token it came
//! with is used for anything: a crash after that commit loses nothing, and one before it loses
//! only what Akoya would refuse anyway. The id token is shared through the database until
//! shortly before it expires, so no replica refreshes just to read.
//!
//! Refreshing must be serialized per consent (two refreshes with one token kill the consent):
//! callers hold the connection's lease, as aggregation does.

use chrono::{DateTime, Duration, Utc};

use linkstate_wire::akoya::IdTokenClaims;

use super::{AkoyaClient, AkoyaError, retrying};
use crate::cipher::Cipher;
use crate::domain::ids::ConnectionId;
use crate::domain::secret::Secret;
use crate::store::credentials::{self, AkoyaTokens};
use crate::store::{self, DbPool, StoreError};

/// An id token this close to its expiry is refreshed first: a pull must not carry a token that
/// expires on the way.
const EXPIRY_MARGIN: Duration = Duration::minutes(5);

/// How long an id token lives when Akoya's answer says neither `expires_in` nor `exp`: Akoya
/// documents about a day; an hour is safely less.
const ASSUMED_LIFETIME: Duration = Duration::hours(1);

/// What one refresh answered.
#[derive(Clone, Debug)]
pub struct Refreshed {
    /// The next refresh token; the one sent is dead.
    pub refresh_token: Secret,
    /// The bearer of data calls.
    pub id_token: Secret,
    /// When the id token expires.
    pub expires_at: DateTime<Utc>,
    /// The consent (the id token's `grant_id`).
    pub grant_id: String,
}

/// Why no id token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenFailure {
    /// Akoya refused or failed the refresh.
    #[error(transparent)]
    Akoya(#[from] AkoyaError),
    /// The database failed: if it failed after Akoya rotated the token, the consent is lost,
    /// and the next refresh says so.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refreshes with `refresh_token`, retrying outages: a retry after a lost answer either works
/// (Akoya had not rotated) or is refused (the consent was lost with that answer anyway).
pub async fn refresh(
    client: &AkoyaClient,
    refresh_token: &Secret,
) -> Result<Refreshed, AkoyaError> {
    let answer = retrying(|| client.refresh(refresh_token)).await?;
    let claims = claims(&answer.id_token)?;
    let now = Utc::now();
    let expires_at = answer
        .expires_in
        .map(|seconds| now + Duration::seconds(seconds))
        .or_else(|| claims.exp.and_then(|exp| DateTime::from_timestamp(exp, 0)))
        .unwrap_or(now + ASSUMED_LIFETIME);
    let refresh_token = answer.refresh_token.ok_or_else(|| {
        AkoyaError::Decode("the token answer carries no new refresh token".into())
    })?;
    Ok(Refreshed {
        refresh_token: Secret::new(refresh_token),
        id_token: Secret::new(answer.id_token),
        expires_at,
        grant_id: claims.grant_id,
    })
}

/// The claims of an id token. It comes straight from Akoya's token endpoint over TLS, and
/// linkstate only reads which consent it names, so its signature is not checked (Akoya
/// publishes no key for it): the claims are the JWT's middle part, base64url JSON.
fn claims(id_token: &str) -> Result<IdTokenClaims, AkoyaError> {
    use base64::Engine;
    let unreadable = || AkoyaError::Decode("the id token is not a JWT with a grant_id".into());
    let payload = id_token.split('.').nth(1).ok_or_else(unreadable)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| unreadable())?;
    serde_json::from_slice(&json).map_err(|_| unreadable())
}

/// The consent's id token: the stored one while it lives, else a new one, whose rotated
/// refresh token is committed before this returns. The caller holds the connection's lease.
pub async fn id_token(
    client: &AkoyaClient,
    pool: &DbPool,
    cipher: &Cipher,
    id: ConnectionId,
) -> Result<Secret, TokenFailure> {
    let stored = {
        let mut conn = store::connect(pool).await?;
        credentials::akoya_tokens(&mut conn, cipher, id).await?
    };
    if let Some((token, expires_at)) = &stored.id_token
        && *expires_at - EXPIRY_MARGIN > Utc::now()
    {
        return Ok(token.clone());
    }
    refresh_stored(client, pool, cipher, id, stored).await
}

/// A new id token now, whatever the stored one: a consent notice is confirmed at Akoya itself.
pub async fn refresh_now(
    client: &AkoyaClient,
    pool: &DbPool,
    cipher: &Cipher,
    id: ConnectionId,
) -> Result<Secret, TokenFailure> {
    let stored = {
        let mut conn = store::connect(pool).await?;
        credentials::akoya_tokens(&mut conn, cipher, id).await?
    };
    refresh_stored(client, pool, cipher, id, stored).await
}

async fn refresh_stored(
    client: &AkoyaClient,
    pool: &DbPool,
    cipher: &Cipher,
    id: ConnectionId,
    stored: AkoyaTokens,
) -> Result<Secret, TokenFailure> {
    let refreshed = refresh(client, &stored.refresh_token).await?;
    let tokens = AkoyaTokens {
        refresh_token: refreshed.refresh_token,
        provider_id: stored.provider_id,
        id_token: Some((refreshed.id_token.clone(), refreshed.expires_at)),
    };
    // One UPDATE, committed on its own, and tried again while the database is briefly away:
    // the only live refresh token is in hand.
    store::persistently(|| async {
        let mut conn = store::connect(pool).await?;
        credentials::set_akoya_tokens(&mut conn, cipher, id, &tokens).await
    })
    .await?;
    tracing::debug!(connection = %id, "Akoya token rotated and stored");
    Ok(refreshed.id_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_is_read_from_the_id_tokens_claims() {
        use base64::Engine;
        let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let token = format!(
            "{}.{}.sig",
            encode(r#"{"alg":"RS256"}"#),
            encode(r#"{"grant_id":"grant-1","exp":1900000000,"connectorId":"mikomo"}"#)
        );
        let read = claims(&token).unwrap();
        assert_eq!(
            (read.grant_id.as_str(), read.exp),
            ("grant-1", Some(1_900_000_000))
        );
        for bad in ["", "a.b", "a.!!!.c", &format!("x.{}.y", encode("{}"))] {
            assert!(matches!(claims(bad), Err(AkoyaError::Decode(_))), "{bad}");
        }
    }
}
