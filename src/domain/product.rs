//! The kinds of data aggregated for a financial account.

meld_name_enum! {
    /// A product, named as Meld names it.
    #[derive(PartialOrd, Ord)]
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
}

/// What an Akoya consent gives: balances (with the accounts), the customer, transactions.
pub const AKOYA_PRODUCTS: [Product; 3] =
    [Product::Balances, Product::Owners, Product::Transactions];
