//! Financial accounts as providers report them, before linkstate gives them ids.

use bigdecimal::BigDecimal;

/// One account as a provider reports it, normalized across providers.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderAccount {
    /// The provider's id for the account (Plaid `account_id`).
    pub provider_account_id: String,
    /// The institution's name for it.
    pub name: String,
    /// The official name, if any.
    pub official_name: Option<String>,
    /// The last digits of the account number (Plaid `mask`).
    pub mask: Option<String>,
    /// Provider account type (depository, credit, ...).
    pub account_type: Option<String>,
    /// Provider account subtype (checking, savings, ...).
    pub subtype: Option<String>,
    /// The current balance, exact.
    pub current_balance: Option<BigDecimal>,
    /// The available balance, exact.
    pub available_balance: Option<BigDecimal>,
    /// ISO currency code.
    pub currency: Option<String>,
}

meld_name_enum! {
    /// Whether a financial account is still shared with us; Meld knows only these two.
    pub enum FinancialAccountStatus {
        /// Shared and aggregated.
        Active,
        /// Revoked or closed; its data stays readable.
        Inactive,
    }
}

/// Account and routing numbers (IDENTIFIERS). Sealed at rest; `Debug` hides the account number.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountIdentifiers {
    /// The provider's id of the account.
    pub provider_account_id: String,
    /// The full account number.
    pub account_number: super::secret::Secret,
    /// The ACH routing number.
    pub routing_number: String,
    /// The wire routing number, if different.
    pub wire_routing_number: Option<String>,
}

/// A holder of an account (OWNERS).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOwner {
    /// Names as the institution has them.
    pub names: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Phone numbers.
    pub phone_numbers: Vec<String>,
}
