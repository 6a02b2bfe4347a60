//! The shapes of Plaid's Auth product (`/auth/get`). Account and routing numbers are [`Secret`]s,
//! so `Debug` never prints them.

use serde::{Deserialize, Serialize};

use super::types::{AccountBase, Item};
use super::wire::{optional_secret_string, secret_string};
use crate::Secret;

/// `/auth/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthGetRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/auth/get` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthGetResponse {
    /// The Item's accounts.
    pub accounts: Vec<AccountBase>,
    /// The numbers of the accounts that have them, per payment network.
    pub numbers: AuthGetNumbers,
    /// The Item.
    pub item: Item,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `AuthGetNumbers`: one list per payment network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthGetNumbers {
    /// US accounts (ACH and wire).
    #[serde(default)]
    pub ach: Vec<NumbersAch>,
    /// Canadian accounts.
    #[serde(default)]
    pub eft: Vec<NumbersEft>,
    /// IBAN and BIC.
    #[serde(default)]
    pub international: Vec<NumbersInternational>,
    /// UK accounts.
    #[serde(default)]
    pub bacs: Vec<NumbersBacs>,
}

/// `NumbersACH`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumbersAch {
    /// The account these numbers belong to.
    pub account_id: String,
    /// The ACH account number.
    #[serde(with = "secret_string")]
    pub account: Secret,
    /// The ACH routing number.
    #[serde(with = "secret_string")]
    pub routing: Secret,
    /// The wire routing number, when it differs from `routing`.
    #[serde(default, with = "optional_secret_string")]
    pub wire_routing: Option<Secret>,
    /// Whether the institution gave a tokenized account number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_tokenized_account_number: Option<bool>,
}

/// `NumbersEFT`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumbersEft {
    /// The account these numbers belong to.
    pub account_id: String,
    /// The EFT account number.
    #[serde(with = "secret_string")]
    pub account: Secret,
    /// The institution number.
    #[serde(with = "secret_string")]
    pub institution: Secret,
    /// The branch (transit) number.
    #[serde(with = "secret_string")]
    pub branch: Secret,
}

/// `NumbersInternational`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumbersInternational {
    /// The account these numbers belong to.
    pub account_id: String,
    /// The IBAN.
    #[serde(with = "secret_string")]
    pub iban: Secret,
    /// The BIC.
    #[serde(with = "secret_string")]
    pub bic: Secret,
}

/// `NumbersBACS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumbersBacs {
    /// The account these numbers belong to.
    pub account_id: String,
    /// The BACS account number.
    #[serde(with = "secret_string")]
    pub account: Secret,
    /// The sort code.
    #[serde(with = "secret_string")]
    pub sort_code: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_never_reach_debug_output() {
        let numbers: AuthGetNumbers = serde_json::from_str(
            r#"{"ach": [{"account_id": "a1", "account": "1111222233330000", "routing": "011401533",
                "wire_routing": "021000021"}, {"account_id": "a2", "account": "9900009606",
                "routing": "011401533", "wire_routing": null}],
              "eft": [{"account_id": "a3", "account": "111122223333", "institution": "021", "branch": "01140"}],
              "international": [{"account_id": "a4", "iban": "GB33BUKB20201555555555", "bic": "BUKBGB22"}],
              "bacs": [{"account_id": "a5", "account": "31926819", "sort_code": "601613"}]}"#,
        )
        .unwrap();
        let printed = format!("{numbers:?}");
        for secret in [
            "1111222233330000",
            "011401533",
            "021000021",
            "9900009606",
            "111122223333",
            "GB33BUKB20201555555555",
            "BUKBGB22",
            "31926819",
            "601613",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("a1"), "ids are not secret");
        assert_eq!(numbers.ach[0].routing.expose(), "011401533");
        assert!(numbers.ach[1].wire_routing.is_none());
        let json = serde_json::to_value(&numbers).unwrap();
        assert_eq!(json["ach"][0]["account"], "1111222233330000");
        assert_eq!(json["ach"][1]["wire_routing"], serde_json::Value::Null);
    }
}
