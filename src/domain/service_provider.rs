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
    /// Whether existing connections of this provider can be imported (Meld: Plaid and Akoya only).
    pub fn supports_import(self) -> bool {
        matches!(self, Self::Plaid | Self::Akoya)
    }
}
