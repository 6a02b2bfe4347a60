//! The data providers a connection can go through.

meld_name_enum! {
    /// A data provider, named as Meld names it (`PLAID`, `AKOYA`, `FINICITY`, `MX`).
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
