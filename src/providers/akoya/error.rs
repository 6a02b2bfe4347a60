//! What can go wrong calling Akoya, and how callers should react to it.

use linkstate_wire::akoya::{FdxError, TokenError};

/// FDX's code for "Customer not authorized": the id token no longer opens the consent.
pub const CUSTOMER_NOT_AUTHORIZED: i64 = 602;

/// FDX's code for "Too many requests".
pub const TOO_MANY_REQUESTS: i64 = 1207;

/// A failed Akoya call.
#[derive(Debug, thiserror::Error)]
pub enum AkoyaError {
    /// linkstate has no Akoya app credentials.
    #[error("Akoya is not configured: set AKOYA_CLIENT_ID and AKOYA_CLIENT_SECRET")]
    NotConfigured,
    /// The token endpoint answered an OAuth error.
    #[error("Akoya's token endpoint answered HTTP {http_status} {}: {}", .error.error, .error.error_description.as_deref().unwrap_or(""))]
    Token {
        /// The HTTP status.
        http_status: u16,
        /// The error body.
        error: TokenError,
    },
    /// The data API answered an FDX error.
    #[error("Akoya answered HTTP {http_status} {}: {}", .error.code, .error.message.as_deref().unwrap_or(""))]
    Api {
        /// The HTTP status.
        http_status: u16,
        /// The error body.
        error: FdxError,
    },
    /// A non-2xx answer without an error body linkstate knows (a proxy's page, a bare 403).
    #[error("Akoya answered HTTP {http_status} without an Akoya error body")]
    UnexpectedResponse {
        /// The HTTP status.
        http_status: u16,
    },
    /// No complete answer within the configured timeout.
    #[error("Akoya did not answer in time")]
    Timeout,
    /// Akoya could not be reached, or the connection broke.
    #[error("could not reach Akoya: {0}")]
    Transport(String),
    /// A 2xx answer that does not have the expected shape, or a link that leaves Akoya's host.
    #[error("could not decode Akoya's answer: {0}")]
    Decode(String),
}

/// What a failed Akoya call means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AkoyaErrorKind {
    /// linkstate has no app credentials for Akoya: nothing was asked.
    NotConfigured,
    /// Akoya refused the refresh token (rotated away, expired or revoked) or the id token
    /// (401/602): only a new consent helps.
    ConsentRefused,
    /// Akoya refused linkstate's app credentials (401 `invalid_client`).
    ClientRefused,
    /// Akoya is throttling (429, FDX 1207).
    RateLimited,
    /// Akoya or the institution is down, slow or unreachable: the same call may work later.
    Unavailable,
    /// Akoya refused the request itself (another 4xx): retrying it will not help.
    Refused,
    /// Akoya answered something linkstate cannot read.
    Unexpected,
}

impl AkoyaError {
    /// What this failure means for the caller.
    pub fn kind(&self) -> AkoyaErrorKind {
        match self {
            Self::NotConfigured => AkoyaErrorKind::NotConfigured,
            Self::Token { http_status, error } => match (*http_status, error.error.as_str()) {
                (401, _) | (_, "invalid_client" | "unauthorized_client") => {
                    AkoyaErrorKind::ClientRefused
                }
                (400, "invalid_request" | "invalid_grant") => AkoyaErrorKind::ConsentRefused,
                (429, _) | (_, "slow_down") => AkoyaErrorKind::RateLimited,
                (status, _) if status >= 500 => AkoyaErrorKind::Unavailable,
                (_, "temporarily_unavailable" | "server_error") => AkoyaErrorKind::Unavailable,
                _ => AkoyaErrorKind::Refused,
            },
            Self::Api { http_status, error } => match (*http_status, error.code) {
                (429, _) | (_, TOO_MANY_REQUESTS) => AkoyaErrorKind::RateLimited,
                (401, _) | (_, CUSTOMER_NOT_AUTHORIZED) => AkoyaErrorKind::ConsentRefused,
                (status, _) if status >= 500 => AkoyaErrorKind::Unavailable,
                _ => AkoyaErrorKind::Refused,
            },
            Self::UnexpectedResponse { http_status } => match *http_status {
                429 => AkoyaErrorKind::RateLimited,
                401 => AkoyaErrorKind::ConsentRefused,
                status if status >= 500 => AkoyaErrorKind::Unavailable,
                _ => AkoyaErrorKind::Refused,
            },
            Self::Timeout | Self::Transport(_) => AkoyaErrorKind::Unavailable,
            Self::Decode(_) => AkoyaErrorKind::Unexpected,
        }
    }

    /// Whether the same call may succeed later (Akoya recommends retrying 5xx; 429 too).
    /// A refused refresh token is never retried: it will not come back.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            AkoyaErrorKind::Unavailable | AkoyaErrorKind::RateLimited
        )
    }

    /// The HTTP status Akoya answered, if it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Token { http_status, .. }
            | Self::Api { http_status, .. }
            | Self::UnexpectedResponse { http_status } => Some(*http_status),
            _ => None,
        }
    }

    /// Akoya's error as `serviceProviderDetails`: its error body, plus our name for Akoya.
    pub fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let body = match self {
            Self::Token { error, .. } => serde_json::to_value(error).ok(),
            Self::Api { error, .. } => serde_json::to_value(error).ok(),
            _ => None,
        };
        let mut details = match body {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        if let Some(status) = self.http_status() {
            details.insert("httpStatus".into(), status.into());
        }
        details.insert("serviceProvider".into(), "AKOYA".into());
        details
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(status: u16, error: &str) -> AkoyaError {
        AkoyaError::Token {
            http_status: status,
            error: TokenError {
                error: error.into(),
                error_description: None,
            },
        }
    }

    fn api(status: u16, code: i64) -> AkoyaError {
        AkoyaError::Api {
            http_status: status,
            error: FdxError {
                code,
                message: None,
                debug_message: None,
            },
        }
    }

    #[test]
    fn a_refused_refresh_token_is_the_consents_end_and_never_retried() {
        for error in [token(400, "invalid_request"), token(400, "invalid_grant")] {
            assert_eq!(error.kind(), AkoyaErrorKind::ConsentRefused);
            assert!(!error.is_retryable());
        }
        assert_eq!(
            token(401, "invalid_client").kind(),
            AkoyaErrorKind::ClientRefused
        );
        assert_eq!(api(401, 602).kind(), AkoyaErrorKind::ConsentRefused);
    }

    #[test]
    fn outages_and_throttling_are_retried() {
        assert!(api(429, 1207).is_retryable());
        assert!(api(503, 503).is_retryable());
        assert!(token(503, "temporarily_unavailable").is_retryable());
        assert!(AkoyaError::Timeout.is_retryable());
        assert!(!api(404, 701).is_retryable());
    }

    #[test]
    fn details_carry_akoyas_body_and_name() {
        let details = api(404, 701).details();
        assert_eq!(details["code"], 701);
        assert_eq!(details["serviceProvider"], "AKOYA");
    }
}
