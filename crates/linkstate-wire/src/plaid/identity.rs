//! The shapes of Plaid's Identity product (`/identity/get`): the owners of each account.

use serde::{Deserialize, Serialize};

use super::types::{AccountBase, Item};
use super::wire::secret_string;
use crate::Secret;

/// `/identity/get` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityGetRequest {
    /// The Item's access token.
    #[serde(with = "secret_string")]
    pub access_token: Secret,
}

/// `/identity/get` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityGetResponse {
    /// The Item's accounts, each with its owners.
    pub accounts: Vec<AccountIdentity>,
    /// The Item.
    pub item: Item,
    /// Plaid's id of this request.
    pub request_id: String,
}

/// `AccountIdentity`: an account and the people who own it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountIdentity {
    /// The account, as `/accounts/get` describes it.
    #[serde(flatten)]
    pub account: AccountBase,
    /// Its owners (several for joint accounts).
    pub owners: Vec<Owner>,
}

/// `Owner`: what the institution knows about one account holder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// Full names, as the institution writes them.
    #[serde(default)]
    pub names: Vec<String>,
    /// Phone numbers.
    #[serde(default)]
    pub phone_numbers: Vec<PhoneNumber>,
    /// Email addresses.
    #[serde(default)]
    pub emails: Vec<Email>,
    /// Postal addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

/// `PhoneNumber`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// The number, e.g. `+1 415-555-0122` or `1112223333`.
    pub data: String,
    /// Whether it is the primary number.
    #[serde(default)]
    pub primary: bool,
    /// `home`, `work`, `office`, `mobile`, `mobile1` or `other`.
    #[serde(default)]
    pub r#type: Option<String>,
}

/// `Email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The address.
    pub data: String,
    /// Whether it is the primary address.
    #[serde(default)]
    pub primary: bool,
    /// `primary`, `secondary` or `other`.
    #[serde(default)]
    pub r#type: Option<String>,
}

/// `Address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The address itself.
    pub data: AddressData,
    /// Whether it is the primary address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// `AddressData`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressData {
    /// Street and number.
    #[serde(default)]
    pub street: String,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State or region.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO-3166-1 alpha-2 country.
    #[serde(default)]
    pub country: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plaid::decimal_string;

    #[test]
    fn reads_an_account_with_its_owners() {
        let body = r#"{"account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", "balances": {
            "available": 100, "current": 110, "iso_currency_code": "USD", "limit": null,
            "unofficial_currency_code": null}, "mask": "0000", "name": "Plaid Checking",
            "official_name": null, "subtype": "checking", "type": "depository",
            "owners": [{"names": ["Alberta Bobbeth Charleson"],
              "phone_numbers": [{"data": "2025550123", "primary": false, "type": "home"}],
              "emails": [{"data": "accountholder0@example.com", "primary": true, "type": "primary"}],
              "addresses": [{"data": {"city": "Malakoff", "country": "US", "postal_code": "14236",
                "region": "NY", "street": "2992 Cameron Road"}, "primary": true}]}]}"#;
        let account: AccountIdentity = serde_json::from_str(body).unwrap();
        assert_eq!(account.account.name, "Plaid Checking");
        assert_eq!(
            decimal_string(account.account.balances.current.as_ref().unwrap()),
            "110"
        );
        let owner = &account.owners[0];
        assert_eq!(owner.names, ["Alberta Bobbeth Charleson"]);
        assert_eq!(owner.emails[0].r#type.as_deref(), Some("primary"));
        assert_eq!(owner.addresses[0].data.city.as_deref(), Some("Malakoff"));

        let json = serde_json::to_value(&account).unwrap();
        assert_eq!(json["mask"], "0000", "the account's fields stay at the top");
        assert_eq!(json["owners"][0]["phone_numbers"][0]["data"], "2025550123");
    }
}
