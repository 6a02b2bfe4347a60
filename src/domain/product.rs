//! The kinds of data aggregated for a financial account.

/// A product, named as Meld names it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Product {
    /// Current and available balances (Plaid: balance).
    Balances,
    /// Account and routing numbers (Plaid: auth).
    Identifiers,
    /// Account holders (Plaid: identity).
    Owners,
    /// Transactions (Plaid: transactions).
    Transactions,
}

impl Product {
    /// The name as stored and printed.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
