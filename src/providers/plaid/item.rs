//! What Plaid says about an Item, as import and the connect flow both need it.

use super::{PlaidClient, PlaidError, mapping};
use crate::domain::product::Product;
use crate::domain::secret::Secret;

/// An Item: its id, its institution, the products linkstate reads from it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSummary {
    /// Plaid's `item_id`.
    pub item_id: String,
    /// Plaid's institution id, when the Item names one.
    pub institution_id: Option<String>,
    /// The institution's name, when Plaid gives it.
    pub institution_name: Option<String>,
    /// The products linkstate reads from the Item.
    pub products: Vec<Product>,
}

/// Reads the Item (`/item/get`) and, when it does not name its institution, asks
/// `/institutions/get_by_id`. A name that cannot be had is no reason to fail: the institution
/// keeps its id as a placeholder name until Plaid names it.
pub async fn describe_item(
    plaid: &PlaidClient,
    access_token: &Secret,
) -> Result<ItemSummary, PlaidError> {
    let item = plaid.item_get(access_token).await?.item;
    let institution_name = match (&item.institution_name, &item.institution_id) {
        (Some(name), _) => Some(name.clone()),
        (None, Some(id)) => match plaid.institutions_get_by_id(id).await {
            Ok(response) => Some(response.institution.name),
            Err(error) => {
                tracing::warn!(%error, institution_id = %id, "could not name the institution");
                None
            }
        },
        (None, None) => None,
    };
    Ok(ItemSummary {
        products: mapping::item_products(&item),
        item_id: item.item_id,
        institution_id: item.institution_id,
        institution_name,
    })
}
