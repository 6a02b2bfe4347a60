//! Plaid's answers in linkstate's terms.

use bigdecimal::BigDecimal;

use super::types::AccountBase;
use super::{PlaidError, decimal_string};
use crate::domain::financial_account::ProviderAccount;
use crate::domain::product::Product;

/// Meld's products for an item's Plaid products: balances always come with `/accounts/get`.
pub fn products(plaid_products: &[String]) -> Vec<Product> {
    let mut products = vec![Product::Balances];
    for plaid in plaid_products {
        let product = match plaid.as_str() {
            "auth" => Product::Identifiers,
            "identity" => Product::Owners,
            "transactions" => Product::Transactions,
            _ => continue,
        };
        if !products.contains(&product) {
            products.push(product);
        }
    }
    products
}

/// A Plaid account as a provider-neutral account.
pub fn account(account: &AccountBase) -> ProviderAccount {
    let amount = |n: &Option<serde_json::Number>| {
        n.as_ref()
            .and_then(|n| decimal_string(n).parse::<BigDecimal>().ok())
    };
    ProviderAccount {
        provider_account_id: account.account_id.clone(),
        name: account.name.clone(),
        official_name: account.official_name.clone(),
        mask: account.mask.clone(),
        account_type: Some(account.r#type.clone()),
        subtype: account.subtype.clone(),
        current_balance: amount(&account.balances.current),
        available_balance: amount(&account.balances.available),
        currency: account
            .balances
            .iso_currency_code
            .clone()
            .or_else(|| account.balances.unofficial_currency_code.clone()),
    }
}

/// Plaid's error as `serviceProviderDetails`: the error body as Plaid sent it, plus our name.
pub fn error_details(error: &PlaidError) -> serde_json::Map<String, serde_json::Value> {
    let mut details = match error {
        PlaidError::Api { error, .. } => error.raw.as_object().cloned().unwrap_or_default(),
        _ => serde_json::Map::new(),
    };
    details.insert("serviceProvider".into(), "PLAID".into());
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_plaid_products_to_meld_products() {
        let plaid = ["transactions", "auth", "identity", "assets"].map(String::from);
        assert_eq!(
            products(&plaid),
            vec![
                Product::Balances,
                Product::Transactions,
                Product::Identifiers,
                Product::Owners
            ]
        );
    }
}
