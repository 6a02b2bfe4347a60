//! Provider credentials, sealed at rest: serialized as a tagged JSON object, then sealed with
//! the connection's id as associated data (a sealed token copied to another row does not open).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::schema::{connections, consumed_refresh_tokens};
use crate::cipher::Cipher;
use crate::domain::ids::{AccountId, ConnectionId};
use crate::domain::import::ProviderCredentials;
use crate::domain::secret::Secret;

/// The credentials as sealed: `{"plaid": {"accessToken": ...}}` or
/// `{"akoya": {"refreshToken": ..., "providerId": ...}}`. A blob missing a field does not
/// open: it is an error, never an empty token.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum Sealed {
    #[serde(rename_all = "camelCase")]
    Plaid { access_token: String },
    #[serde(rename_all = "camelCase")]
    Akoya {
        refresh_token: String,
        provider_id: String,
        /// The last id token and its expiry (Unix seconds), shared by every replica so that
        /// none refreshes just to read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id_token_expires_at: Option<i64>,
    },
}

impl From<&ProviderCredentials> for Sealed {
    fn from(credentials: &ProviderCredentials) -> Self {
        match credentials {
            ProviderCredentials::Plaid { access_token } => Sealed::Plaid {
                access_token: access_token.expose().to_string(),
            },
            ProviderCredentials::Akoya {
                refresh_token,
                provider_id,
            } => Sealed::Akoya {
                refresh_token: refresh_token.expose().to_string(),
                provider_id: provider_id.clone(),
                id_token: None,
                id_token_expires_at: None,
            },
        }
    }
}

impl From<Sealed> for ProviderCredentials {
    fn from(sealed: Sealed) -> Self {
        match sealed {
            Sealed::Plaid { access_token } => ProviderCredentials::Plaid {
                access_token: Secret::new(access_token),
            },
            Sealed::Akoya {
                refresh_token,
                provider_id,
                ..
            } => ProviderCredentials::Akoya {
                refresh_token: Secret::new(refresh_token),
                provider_id,
            },
        }
    }
}

/// The sealed form of credentials, bound to the connection's id.
pub fn seal(cipher: &Cipher, id: ConnectionId, credentials: &ProviderCredentials) -> Vec<u8> {
    let plain = serde_json::to_vec(&Sealed::from(credentials)).expect("credentials serialize");
    cipher.seal(&plain, id.0.as_bytes())
}

/// Opens sealed credentials of connection `id`.
pub fn open(
    cipher: &Cipher,
    id: ConnectionId,
    sealed: &[u8],
) -> Result<ProviderCredentials, StoreError> {
    let plain = cipher
        .open(sealed, id.0.as_bytes())
        .map_err(|_| unopenable(id))?;
    let sealed: Sealed = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Corrupt(format!("credentials of {id} do not read: {e}")))?;
    Ok(sealed.into())
}

/// Credentials that no configured key opens, named by their connection.
fn unopenable(id: ConnectionId) -> StoreError {
    StoreError::Unopenable(format!("the credentials of connection {id}"))
}

/// The credentials of a connection, opened; NotFound when it has none (a flow that never
/// completed, or a deleted connection).
pub async fn get(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
) -> Result<ProviderCredentials, StoreError> {
    let sealed = connections::table
        .find(id.0)
        .select(connections::credentials)
        .first::<Option<Vec<u8>>>(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    open(cipher, id, &sealed)
}

/// An Akoya consent's tokens as stored: the newest refresh token, and the last id token while
/// it lives.
#[derive(Clone, Debug, PartialEq)]
pub struct AkoyaTokens {
    /// The refresh token; only the newest one works.
    pub refresh_token: Secret,
    /// Akoya's institution id.
    pub provider_id: String,
    /// The last id token and when it expires.
    pub id_token: Option<(Secret, DateTime<Utc>)>,
}

/// The Akoya tokens of connection `id`; NotFound without credentials, Corrupt when they are
/// not Akoya's.
pub async fn akoya_tokens(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
) -> Result<AkoyaTokens, StoreError> {
    let sealed = connections::table
        .find(id.0)
        .select(connections::credentials)
        .first::<Option<Vec<u8>>>(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let plain = cipher
        .open(&sealed, id.0.as_bytes())
        .map_err(|_| unopenable(id))?;
    match serde_json::from_slice(&plain) {
        Ok(Sealed::Akoya {
            refresh_token,
            provider_id,
            id_token,
            id_token_expires_at,
        }) => Ok(AkoyaTokens {
            refresh_token: Secret::new(refresh_token),
            provider_id,
            id_token: id_token
                .zip(id_token_expires_at.and_then(|at| DateTime::from_timestamp(at, 0)))
                .map(|(token, at)| (Secret::new(token), at)),
        }),
        _ => Err(StoreError::Corrupt(format!(
            "credentials of {id} are not an Akoya consent's"
        ))),
    }
}

/// Stores new credentials, sealed, in place of what connection `id` had.
pub async fn set(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
    credentials: &ProviderCredentials,
) -> Result<(), StoreError> {
    diesel::update(connections::table.find(id.0))
        .set((
            connections::credentials.eq(seal(cipher, id, credentials)),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores an Akoya consent's tokens, sealed, in place of what connection `id` had.
pub async fn set_akoya_tokens(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    id: ConnectionId,
    tokens: &AkoyaTokens,
) -> Result<(), StoreError> {
    let sealed = Sealed::Akoya {
        refresh_token: tokens.refresh_token.expose().to_string(),
        provider_id: tokens.provider_id.clone(),
        id_token: tokens
            .id_token
            .as_ref()
            .map(|(t, _)| t.expose().to_string()),
        id_token_expires_at: tokens.id_token.as_ref().map(|(_, at)| at.timestamp()),
    };
    let plain = serde_json::to_vec(&sealed).expect("credentials serialize");
    diesel::update(connections::table.find(id.0))
        .set((
            connections::credentials.eq(cipher.seal(&plain, id.0.as_bytes())),
            connections::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that an import used (and so killed) this refresh token for connection `id`.
pub async fn record_consumed_token(
    conn: &mut AsyncPgConnection,
    token: &Secret,
    id: ConnectionId,
) -> Result<(), StoreError> {
    diesel::insert_into(consumed_refresh_tokens::table)
        .values((
            consumed_refresh_tokens::token_sha256.eq(token_digest(token)),
            consumed_refresh_tokens::connection_id.eq(id.0),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The connection of the tenant's whose import used this refresh token, if any.
pub async fn consumed_by(
    conn: &mut AsyncPgConnection,
    token: &Secret,
    account_id: AccountId,
) -> Result<Option<ConnectionId>, StoreError> {
    Ok(consumed_refresh_tokens::table
        .inner_join(connections::table)
        .filter(consumed_refresh_tokens::token_sha256.eq(token_digest(token)))
        .filter(connections::account_id.eq(account_id.0))
        .select(connections::id)
        .first::<uuid::Uuid>(conn)
        .await
        .optional()?
        .map(ConnectionId))
}

/// A token's SHA-256: enough to recognise it, nothing to use it with (it is dead anyway).
fn token_digest(token: &Secret) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.expose().as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_base64(&Cipher::generate_key()).unwrap()
    }

    #[test]
    fn sealed_credentials_open_as_they_were() {
        let cipher = cipher();
        let id = ConnectionId::generate();
        for credentials in [
            ProviderCredentials::Plaid {
                access_token: Secret::new("access-1"),
            },
            ProviderCredentials::Akoya {
                refresh_token: Secret::new("refresh-1"),
                provider_id: "mikomo".into(),
            },
        ] {
            let sealed = seal(&cipher, id, &credentials);
            assert_eq!(open(&cipher, id, &sealed).unwrap(), credentials);
        }
    }

    #[test]
    fn a_blob_missing_a_field_is_an_error_not_an_empty_token() {
        let cipher = cipher();
        let id = ConnectionId::generate();
        let sealed = cipher.seal(br#"{"akoya": {"refreshToken": "r"}}"#, id.0.as_bytes());
        assert!(matches!(
            open(&cipher, id, &sealed),
            Err(StoreError::Corrupt(_))
        ));
        let sealed = cipher.seal(br#"{"plaid": {}}"#, id.0.as_bytes());
        assert!(matches!(
            open(&cipher, id, &sealed),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn the_stored_shape_is_kept() {
        let sealed = Sealed::from(&ProviderCredentials::Plaid {
            access_token: Secret::new("a"),
        });
        assert_eq!(
            serde_json::to_string(&sealed).unwrap(),
            r#"{"plaid":{"accessToken":"a"}}"#
        );
    }
}
