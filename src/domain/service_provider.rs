//! The data providers a connection can go through.

/// A data provider, named as Meld names it (`PLAID`, `AKOYA`, `FINICITY`, `MX`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceProvider {
    /// Plaid.
    Plaid,
    /// Akoya.
    Akoya,
    /// Finicity.
    Finicity,
    /// MX.
    Mx,
}

impl ServiceProvider {
    /// The name as stored and printed.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether existing connections of this provider can be imported (Meld: Plaid and Akoya only).
    pub fn supports_import(self) -> bool {
        matches!(self, Self::Plaid | Self::Akoya)
    }
}
