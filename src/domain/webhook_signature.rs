//! How an outbound webhook is signed: the profile's secret, Meld's `meld-signature` and the
//! Standard Webhooks `webhook-signature`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::secret::Secret;

/// What every profile secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// A profile's signing secret: `whsec_` and the base64 of 32 key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningSecret(Secret);

/// A stored secret that is not `whsec_` and the base64 of some bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret is whsec_ followed by base64")]
pub struct MalformedSecret;

impl SigningSecret {
    /// The secret of these 32 random bytes.
    pub fn from_key(key: [u8; 32]) -> Self {
        Self(Secret::new(format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(key)
        )))
    }

    /// A secret as stored or shown.
    pub fn parse(text: &str) -> Result<Self, MalformedSecret> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(MalformedSecret)?;
        match STANDARD.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(Self(Secret::new(text))),
            _ => Err(MalformedSecret),
        }
    }

    /// The secret as the customer sees it once, and as it is sealed.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The Standard Webhooks key: the bytes after `whsec_`.
    fn key(&self) -> Vec<u8> {
        let encoded = &self.expose()[SECRET_PREFIX.len()..];
        STANDARD.decode(encoded).expect("checked when made")
    }
}

/// HMAC-SHA256 of `parts`, one after the other, under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Meld's `meld-signature`: base64url with padding of HMAC-SHA256 under the secret's text, of
/// `<timestamp>.<url>.<body>`.
pub fn meld_signature(secret: &str, timestamp: &str, url: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        &[timestamp.as_bytes(), b".", url.as_bytes(), b".", body],
    );
    URL_SAFE.encode(mac)
}

/// One Standard Webhooks signature, `v1,<base64 of HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
pub fn standard_signature(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        &secret.key(),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The secrets that sign a request: the current one, and for a while after a rotation the
/// previous one too.
#[derive(Clone, Debug)]
pub struct Signers {
    /// The newest secret; Meld's signature uses only this one.
    pub current: SigningSecret,
    /// The secret before the last rotation, while it still signs.
    pub previous: Option<SigningSecret>,
}

/// The signature headers of one attempt, as (name, value) pairs.
pub fn signature_headers(
    signers: &Signers,
    event_id: &str,
    url: &str,
    body: &[u8],
    at: DateTime<Utc>,
) -> [(&'static str, String); 5] {
    let meld_timestamp = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let unix = at.timestamp();
    let standard = std::iter::once(&signers.current)
        .chain(&signers.previous)
        .map(|secret| standard_signature(secret, event_id, unix, body))
        .collect::<Vec<_>>()
        .join(" ");
    [
        (
            "meld-signature",
            meld_signature(signers.current.expose(), &meld_timestamp, url, body),
        ),
        ("meld-signature-timestamp", meld_timestamp),
        ("webhook-id", event_id.to_string()),
        ("webhook-timestamp", unix.to_string()),
        ("webhook-signature", standard),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meld_test_vector() {
        let body = r#"{"eventType":"WEBHOOK_TEST","eventId":"GDtv8pQgwzc9HuFFBQFrww","timestamp":"2022-05-26T20:23:45.908400Z","accountId":"W9jpQc1HKvwscqMPcLmzUS","profileId":null,"version":"2021-10-27","payload":{"requestId":"7aWW1GXTjWCCtNubzvVX7V"}}"#;
        let signature = meld_signature(
            "42m4NMLS34WQ6BbMfo1KFKqMv4hy",
            "2022-05-26T20:25:17.682818Z",
            "https://example.meld.io/webhooks",
            body.as_bytes(),
        );
        assert_eq!(signature, "O4bN5E0U9s88l2DFc0kjt-0w3LLA3Zkv8hXhafc22Hg=");
    }

    #[test]
    fn standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = standard_signature(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn a_secret_is_whsec_and_base64_of_32_bytes() {
        let secret = SigningSecret::from_key([7; 32]);
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key(), [7; 32]);
        assert_eq!(SigningSecret::parse(secret.expose()), Ok(secret));
        assert_eq!(SigningSecret::parse("whsec_"), Err(MalformedSecret));
        assert_eq!(SigningSecret::parse("sk_abc"), Err(MalformedSecret));
    }

    #[test]
    fn after_a_rotation_both_secrets_sign_and_meld_uses_the_new_one() {
        let signers = Signers {
            current: SigningSecret::from_key([1; 32]),
            previous: Some(SigningSecret::from_key([2; 32])),
        };
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let headers = signature_headers(&signers, "evt", "https://x.example/h", b"{}", at);
        let value = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(
            value("meld-signature-timestamp"),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(value("webhook-timestamp"), "1700000000");
        let standard = value("webhook-signature");
        let listed: Vec<_> = standard.split(' ').collect();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed[0],
            standard_signature(&signers.current, "evt", 1_700_000_000, b"{}")
        );
        assert_eq!(
            value("meld-signature"),
            meld_signature(
                signers.current.expose(),
                "2023-11-14T22:13:20.123456Z",
                "https://x.example/h",
                b"{}"
            )
        );
    }
}
