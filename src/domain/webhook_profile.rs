//! A customer's webhook endpoint: what it is, which events it receives, and the checks a new
//! or changed one passes.

use chrono::{DateTime, Utc};
use url::{Host, Url};

use super::event::{EVENT_VERSION, EventType};
use super::ids::{AccountId, ProfileId};
use super::input::{self, InputError};
use super::public_address::is_public;

meld_name_enum! {
    /// Whether events are sent to a profile.
    pub enum ProfileStatus {
        /// Events are sent.
        Active,
        /// Nothing is sent; see its [`DisabledReason`].
        Disabled,
    }
}

meld_name_enum! {
    /// Why a profile is DISABLED.
    pub enum DisabledReason {
        /// Its owner set it DISABLED.
        ByRequest,
        /// The endpoint answered 410 Gone.
        EndpointGone,
    }
}

/// A webhook profile, without its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookProfile {
    /// Its id.
    pub id: ProfileId,
    /// The tenant.
    pub account_id: AccountId,
    /// The customer's name for it.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives; empty: all.
    pub event_types: Vec<EventType>,
    /// The event version it receives.
    pub event_version: String,
    /// Whether events are sent to it.
    pub status: ProfileStatus,
    /// Why it is DISABLED.
    pub disabled_reason: Option<DisabledReason>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl WebhookProfile {
    /// Whether an event of this type goes to this profile.
    pub fn receives(&self, event_type: EventType) -> bool {
        self.status == ProfileStatus::Active
            && (self.event_types.is_empty() || self.event_types.contains(&event_type))
    }
}

/// The longest name a profile may have.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest URL a profile may have.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a profile's field is refused: the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileInputError {
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A text field failed the edge checks.
    #[error(transparent)]
    Text(#[from] InputError),
    /// The URL cannot be used.
    #[error("url {0}")]
    Url(String),
    /// The event version is not one linkstate sends.
    #[error("eventVersion must be {EVENT_VERSION}")]
    Version,
}

/// Checks a profile's name.
pub fn check_name(name: &str) -> Result<String, ProfileInputError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ProfileInputError::Missing("name"));
    }
    input::text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_string())
}

/// Checks a profile's event version; empty means the current one.
pub fn check_version(version: &str) -> Result<String, ProfileInputError> {
    match version {
        "" | EVENT_VERSION => Ok(EVENT_VERSION.to_string()),
        _ => Err(ProfileInputError::Version),
    }
}

/// Checks a profile's URL as far as it can be without DNS: absolute `https` (or `http` where
/// private addresses are allowed), a host, and, for an address written as such, a public one.
/// A host name is resolved and checked by the caller.
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, ProfileInputError> {
    if text.is_empty() {
        return Err(ProfileInputError::Missing("url"));
    }
    input::text("url", text, MAX_URL_CHARS)?;
    // Stored and signed as typed (Meld signs "the exact url"): whitespace that the parser
    // would quietly drop would make the receiver's own check fail.
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ProfileInputError::Url("must not contain whitespace".into()));
    }
    let url = Url::parse(text)
        .map_err(|_| ProfileInputError::Url("must be an absolute http(s) URL".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(ProfileInputError::Url(
                "must use https (plain http only with LINKSTATE_DELIVERY_ALLOW_PRIVATE)".into(),
            ));
        }
        _ => {
            return Err(ProfileInputError::Url(
                "must be an absolute http(s) URL".into(),
            ));
        }
    }
    let refused = match url.host() {
        None => return Err(ProfileInputError::Url("must name a host".into())),
        Some(Host::Ipv4(ip)) => !is_public(ip.into()),
        Some(Host::Ipv6(ip)) => !is_public(ip.into()),
        Some(Host::Domain(_)) => false,
    };
    if refused && !allow_private {
        return Err(refused_address());
    }
    Ok(url)
}

/// The error for a URL whose address is not globally routable.
pub fn refused_address() -> ProfileInputError {
    ProfileInputError::Url("points at a loopback, private or otherwise non-public address".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.com/meld", false).is_ok());
        for (url, message) in [
            ("", "url is required"),
            ("/relative", "url must be an absolute http(s) URL"),
            ("ftp://example.com/x", "url must be an absolute http(s) URL"),
            (
                "http://example.com/x",
                "url must use https (plain http only with LINKSTATE_DELIVERY_ALLOW_PRIVATE)",
            ),
            (
                "https://127.0.0.1/x",
                "url points at a loopback, private or otherwise non-public address",
            ),
            (
                "https://[::1]/x",
                "url points at a loopback, private or otherwise non-public address",
            ),
            (
                "https://169.254.169.254/latest",
                "url points at a loopback, private or otherwise non-public address",
            ),
        ] {
            assert_eq!(
                check_url(url, false).unwrap_err().to_string(),
                message,
                "{url}"
            );
        }
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    #[test]
    fn names_and_versions() {
        assert_eq!(check_name("  ops  ").unwrap(), "ops");
        assert_eq!(check_name(" ").unwrap_err().to_string(), "name is required");
        assert_eq!(
            check_name("a\0b").unwrap_err().to_string(),
            "name must not contain NUL bytes"
        );
        assert_eq!(check_version("").unwrap(), EVENT_VERSION);
        assert_eq!(
            check_version("2021-10-27").unwrap_err().to_string(),
            format!("eventVersion must be {EVENT_VERSION}")
        );
    }
}
