//! What can go wrong calling Plaid, and how callers should react to it.

pub use linkstate_wire::plaid::PlaidApiError;

/// Error codes that mean the keys or the access token are no longer accepted.
const CREDENTIAL_CODES: &[&str] = &[
    "INVALID_ACCESS_TOKEN",
    "INVALID_API_KEYS",
    "ITEM_NOT_FOUND",
    "ACCESS_NOT_GRANTED",
    "UNAUTHORIZED_ENVIRONMENT",
    "UNAUTHORIZED_ROUTE_ACCESS",
];

/// Error codes of passing trouble on Plaid's or the institution's side: try again later.
const TRANSIENT_CODES: &[&str] = &[
    "INTERNAL_SERVER_ERROR",
    "PLANNED_MAINTENANCE",
    "INSTITUTION_DOWN",
    "INSTITUTION_NOT_RESPONDING",
    "INSTITUTION_NOT_AVAILABLE",
    "INSTITUTION_RATE_LIMIT",
    "PRODUCT_NOT_READY",
    "RATE_LIMIT_EXCEEDED",
];

/// A failed Plaid call.
#[derive(Debug, thiserror::Error)]
pub enum PlaidError {
    /// The client has no API keys.
    #[error("Plaid is not configured: set PLAID_CLIENT_ID and PLAID_SECRET")]
    NotConfigured,
    /// Plaid answered with an error body.
    #[error("Plaid answered HTTP {http_status} {}: {}", .error.error_code, .error.error_message)]
    Api {
        /// The HTTP status of the answer.
        http_status: u16,
        /// The error body, boxed: it is large and `Result`s carrying it should stay small.
        error: Box<PlaidApiError>,
    },
    /// A non-2xx answer whose body is not a Plaid error (a proxy's error page, say).
    #[error("Plaid answered HTTP {http_status} without a Plaid error body")]
    UnexpectedResponse {
        /// The HTTP status of the answer.
        http_status: u16,
    },
    /// No complete answer within the configured timeout.
    #[error("Plaid did not answer in time")]
    Timeout,
    /// Plaid could not be reached, or the connection broke.
    #[error("could not reach Plaid: {0}")]
    Transport(String),
    /// A 2xx answer that does not have the expected shape.
    #[error("could not decode Plaid's answer: {0}")]
    Decode(String),
}

/// What a failed Plaid call means for the caller: the one classification every use case
/// branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaidErrorKind {
    /// linkstate has no API keys for Plaid: nothing was asked.
    NotConfigured,
    /// Plaid refused our keys or the Item's access token (401, 403 or a credentials code).
    CredentialsRefused,
    /// Plaid is throttling (429).
    RateLimited,
    /// Plaid or the institution is down, slow or unreachable: the same call may work later.
    Unavailable,
    /// Plaid refused the request itself (another 4xx): retrying it will not help.
    Refused,
    /// Plaid answered something we cannot read.
    Unexpected,
}

impl PlaidError {
    /// What this failure means for the caller.
    pub fn kind(&self) -> PlaidErrorKind {
        match self {
            Self::NotConfigured => PlaidErrorKind::NotConfigured,
            _ if self.http_status() == Some(429) => PlaidErrorKind::RateLimited,
            _ if self.is_credentials_error() => PlaidErrorKind::CredentialsRefused,
            _ if self.is_retryable() => PlaidErrorKind::Unavailable,
            _ if self.http_status().is_some_and(|s| (400..500).contains(&s)) => {
                PlaidErrorKind::Refused
            }
            _ => PlaidErrorKind::Unexpected,
        }
    }

    /// Whether our keys or the Item's access token were refused (codes as above, or HTTP 401/403).
    /// `NotConfigured` is not one: no request was made.
    pub fn is_credentials_error(&self) -> bool {
        matches!(self.http_status(), Some(401 | 403))
            || self
                .error_code()
                .is_some_and(|code| CREDENTIAL_CODES.contains(&code))
    }

    /// Whether the same call may succeed later: timeouts, transport failures, 5xx, 429,
    /// rate limits and institution outages.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Transport(_) => true,
            Self::NotConfigured | Self::Decode(_) => false,
            Self::UnexpectedResponse { http_status } => retryable_status(*http_status),
            Self::Api { http_status, error } => {
                retryable_status(*http_status)
                    || error.error_type == "RATE_LIMIT_EXCEEDED"
                    || TRANSIENT_CODES.contains(&error.error_code.as_str())
            }
        }
    }

    /// Plaid's `error_code`, when Plaid answered one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.error_code),
            _ => None,
        }
    }

    /// The HTTP status of Plaid's answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api { http_status, .. } | Self::UnexpectedResponse { http_status } => {
                Some(*http_status)
            }
            _ => None,
        }
    }
}

/// 5xx and 429 are worth another try.
fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(http_status: u16, error_type: &str, error_code: &str) -> PlaidError {
        let raw = serde_json::json!({
            "error_type": error_type, "error_code": error_code,
            "error_message": "m", "display_message": null,
        });
        PlaidError::Api {
            http_status,
            error: Box::new(PlaidApiError::from_value(raw).unwrap()),
        }
    }

    #[test]
    fn credential_errors() {
        assert!(api(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN").is_credentials_error());
        assert!(api(400, "INVALID_INPUT", "INVALID_API_KEYS").is_credentials_error());
        assert!(api(403, "API_ERROR", "SOMETHING").is_credentials_error());
        assert!(!api(400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED").is_credentials_error());
        assert!(!PlaidError::NotConfigured.is_credentials_error());
        assert!(!PlaidError::Timeout.is_credentials_error());
    }

    #[test]
    fn retryable_errors() {
        assert!(PlaidError::Timeout.is_retryable());
        assert!(PlaidError::Transport("refused".into()).is_retryable());
        assert!(api(500, "API_ERROR", "INTERNAL_SERVER_ERROR").is_retryable());
        assert!(api(429, "RATE_LIMIT_EXCEEDED", "ACCOUNTS_LIMIT").is_retryable());
        assert!(api(400, "INSTITUTION_ERROR", "INSTITUTION_DOWN").is_retryable());
        assert!(PlaidError::UnexpectedResponse { http_status: 502 }.is_retryable());
        assert!(!api(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN").is_retryable());
        assert!(!PlaidError::Decode("bad".into()).is_retryable());
        assert!(!PlaidError::NotConfigured.is_retryable());
    }

    #[test]
    fn code_and_status() {
        let error = api(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN");
        assert_eq!(error.error_code(), Some("INVALID_ACCESS_TOKEN"));
        assert_eq!(error.http_status(), Some(400));
        assert_eq!(PlaidError::Timeout.error_code(), None);
        assert_eq!(PlaidError::Timeout.http_status(), None);
    }
}
