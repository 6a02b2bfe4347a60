//! Provider credentials, sealed at rest: serialized as a tagged JSON object, then sealed with
//! the connection's id as associated data (a sealed token copied to another row does not open).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::schema::connections;
use crate::cipher::Cipher;
use crate::domain::ids::ConnectionId;
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
        .map_err(|e| StoreError::Corrupt(format!("credentials of {id}: {e}")))?;
    let sealed: Sealed = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Corrupt(format!("credentials of {id} do not read: {e}")))?;
    Ok(sealed.into())
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
