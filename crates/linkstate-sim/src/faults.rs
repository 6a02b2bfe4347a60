//! Injected trouble: a delay before every Plaid and Akoya answer, connections broken off
//! before the answer, and error answers on chosen endpoints (Plaid, `*` for all) or paths
//! (Akoya).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// An error to answer instead of the real response.
///
/// Over HTTP (`POST /sim/errors`) it is JSON in snake_case, `access_token` and `times` optional:
/// `{"endpoint": "/accounts/get", "http_status": 400, "error_type": "ITEM_ERROR",
///   "error_code": "ITEM_LOGIN_REQUIRED", "error_message": "the login details of this item have changed",
///   "access_token": "access-sandbox-...", "times": 1}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRule {
    /// The endpoint, e.g. `/accounts/get`; `*` for every endpoint.
    pub endpoint: String,
    /// Only requests with this access token; `None` for any request.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The HTTP status of the error answer.
    pub http_status: u16,
    /// Plaid's `error_type`.
    pub error_type: String,
    /// Plaid's `error_code`.
    pub error_code: String,
    /// Plaid's `error_message`.
    pub error_message: String,
    /// How many requests it applies to; `None` until the rules are cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// An error to answer instead of Akoya's real response: `http_status` with `body` as JSON.
///
/// Over HTTP (`POST /sim/akoya/errors`) it is JSON in camelCase, `times` optional:
/// `{"pathPrefix": "/transactions/v2", "httpStatus": 429,
///   "body": {"code": 1207, "message": "Too many requests"}, "times": 1}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AkoyaErrorRule {
    /// The start of the paths it applies to, e.g. `/token` or `/transactions/v2`.
    pub path_prefix: String,
    /// The HTTP status of the error answer.
    pub http_status: u16,
    /// The body of the error answer.
    pub body: serde_json::Value,
    /// How many requests it applies to; `None` until the rules are cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// The injected latency and error rules.
#[derive(Debug, Default)]
pub struct Faults {
    /// The delay before every Plaid and Akoya answer.
    pub latency: Duration,
    /// Whether every Plaid and Akoya answer is broken off (the connection closes mid-answer).
    pub resets: bool,
    rules: Vec<ErrorRule>,
    akoya_rules: Vec<AkoyaErrorRule>,
}

impl Faults {
    /// Adds a rule; earlier rules win when several match.
    pub fn add(&mut self, mut rule: ErrorRule) {
        if !rule.endpoint.starts_with('/') && rule.endpoint != "*" {
            rule.endpoint.insert(0, '/');
        }
        self.rules.push(rule);
    }

    /// Removes every rule, Plaid's and Akoya's.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.akoya_rules.clear();
    }

    /// The rule for this request, if any, counting it as used.
    pub fn take(&mut self, endpoint: &str, access_token: Option<&str>) -> Option<ErrorRule> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.times != Some(0) && matches(rule, endpoint, access_token))?;
        let rule = &mut self.rules[index];
        let taken = rule.clone();
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
            if *times == 0 {
                self.rules.remove(index);
            }
        }
        Some(taken)
    }

    /// Adds an Akoya rule; earlier rules win when several match.
    pub fn add_akoya(&mut self, mut rule: AkoyaErrorRule) {
        if !rule.path_prefix.starts_with('/') {
            rule.path_prefix.insert(0, '/');
        }
        self.akoya_rules.push(rule);
    }

    /// The Akoya rule for a request to `path`, if any, counting it as used.
    pub fn take_akoya(&mut self, path: &str) -> Option<AkoyaErrorRule> {
        let index = self
            .akoya_rules
            .iter()
            .position(|rule| rule.times != Some(0) && path.starts_with(&rule.path_prefix))?;
        let rule = &mut self.akoya_rules[index];
        let taken = rule.clone();
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
            if *times == 0 {
                self.akoya_rules.remove(index);
            }
        }
        Some(taken)
    }
}

/// An answer whose body fails before its first byte: the server closes the connection
/// mid-answer, and the client sees the connection break, as with a reset.
pub fn broken_off() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

fn matches(rule: &ErrorRule, endpoint: &str, access_token: Option<&str>) -> bool {
    (rule.endpoint == endpoint || rule.endpoint == "*")
        && rule
            .access_token
            .as_deref()
            .is_none_or(|wanted| Some(wanted) == access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(access_token: Option<&str>, times: Option<u32>) -> ErrorRule {
        ErrorRule {
            endpoint: "accounts/get".into(),
            access_token: access_token.map(str::to_owned),
            http_status: 500,
            error_type: "API_ERROR".into(),
            error_code: "INTERNAL_SERVER_ERROR".into(),
            error_message: "an unexpected error occurred".into(),
            times,
        }
    }

    #[test]
    fn counted_rules_run_out() {
        let mut faults = Faults::default();
        faults.add(rule(None, Some(2)));
        assert!(faults.take("/accounts/get", None).is_some());
        assert!(faults.take("/accounts/get", Some("t")).is_some());
        assert!(faults.take("/accounts/get", None).is_none());
    }

    #[test]
    fn a_star_rule_matches_every_endpoint() {
        let mut faults = Faults::default();
        faults.add(ErrorRule {
            endpoint: "*".into(),
            ..rule(None, None)
        });
        assert!(faults.take("/accounts/get", None).is_some());
        assert!(faults.take("/transactions/sync", Some("t")).is_some());
    }

    #[test]
    fn rules_match_endpoint_and_token() {
        let mut faults = Faults::default();
        faults.add(rule(Some("t1"), None));
        assert!(faults.take("/item/get", Some("t1")).is_none());
        assert!(faults.take("/accounts/get", Some("t2")).is_none());
        assert!(faults.take("/accounts/get", None).is_none());
        assert!(faults.take("/accounts/get", Some("t1")).is_some());
        assert!(
            faults.take("/accounts/get", Some("t1")).is_some(),
            "unlimited"
        );
        faults.clear();
        assert!(faults.take("/accounts/get", Some("t1")).is_none());
    }

    #[test]
    fn akoya_rules_match_path_prefixes_and_run_out() {
        let mut faults = Faults::default();
        faults.add_akoya(AkoyaErrorRule {
            path_prefix: "transactions/v2".into(),
            http_status: 429,
            body: serde_json::json!({"code": 1207, "message": "Too many requests"}),
            times: Some(1),
        });
        assert!(faults.take_akoya("/balances/v2/mikomo").is_none());
        let rule = faults.take_akoya("/transactions/v2/mikomo/acct").unwrap();
        assert_eq!(rule.body["code"], 1207);
        assert!(faults.take_akoya("/transactions/v2/mikomo/acct").is_none());

        faults.add_akoya(AkoyaErrorRule {
            times: None,
            ..rule
        });
        assert!(faults.take_akoya("/transactions/v2/mikomo/acct").is_some());
        faults.clear();
        assert!(faults.take_akoya("/transactions/v2/mikomo/acct").is_none());
    }

    #[test]
    fn akoya_rules_read_camel_case_json() {
        let json = r#"{"pathPrefix": "/token", "httpStatus": 503,
            "body": {"error": "temporarily_unavailable"}}"#;
        let rule: AkoyaErrorRule = serde_json::from_str(json).unwrap();
        assert_eq!(
            (rule.path_prefix.as_str(), rule.http_status),
            ("/token", 503)
        );
        assert_eq!(rule.times, None);
    }

    #[test]
    fn rules_read_snake_case_json() {
        let json = r#"{"endpoint":"/item/get","http_status":429,"error_type":"RATE_LIMIT_EXCEEDED",
            "error_code":"RATE_LIMIT","error_message":"rate limit exceeded"}"#;
        let rule: ErrorRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.access_token, None);
        assert_eq!(rule.times, None);
    }
}
