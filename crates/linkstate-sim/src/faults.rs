//! Injected trouble: a delay before every Plaid answer, and error answers on chosen endpoints.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An error to answer instead of the real response.
///
/// Over HTTP (`POST /sim/errors`) it is JSON in snake_case, `access_token` and `times` optional:
/// `{"endpoint": "/accounts/get", "http_status": 400, "error_type": "ITEM_ERROR",
///   "error_code": "ITEM_LOGIN_REQUIRED", "error_message": "the login details of this item have changed",
///   "access_token": "access-sandbox-...", "times": 1}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRule {
    /// The endpoint, e.g. `/accounts/get`.
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

/// The injected latency and error rules.
#[derive(Debug, Default)]
pub struct Faults {
    /// The delay before every Plaid answer.
    pub latency: Duration,
    rules: Vec<ErrorRule>,
}

impl Faults {
    /// Adds a rule; earlier rules win when several match.
    pub fn add(&mut self, mut rule: ErrorRule) {
        if !rule.endpoint.starts_with('/') {
            rule.endpoint.insert(0, '/');
        }
        self.rules.push(rule);
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
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
}

fn matches(rule: &ErrorRule, endpoint: &str, access_token: Option<&str>) -> bool {
    rule.endpoint == endpoint
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
    fn rules_read_snake_case_json() {
        let json = r#"{"endpoint":"/item/get","http_status":429,"error_type":"RATE_LIMIT_EXCEEDED",
            "error_code":"RATE_LIMIT","error_message":"rate limit exceeded"}"#;
        let rule: ErrorRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.access_token, None);
        assert_eq!(rule.times, None);
    }
}
