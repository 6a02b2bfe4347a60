//! The rules for an import request: what makes the whole request invalid before anything runs.

use super::input::{self, InputError};
use super::secret::Secret;
use super::service_provider::ServiceProvider;

/// Most connections one import request may carry.
pub const MAX_IMPORT_ITEMS: usize = 100;

/// Longest external customer id accepted.
pub const MAX_EXTERNAL_CUSTOMER_ID_LEN: usize = 255;

/// Longest provider credential (access or refresh token) accepted.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// Longest provider id (Akoya's institution id) accepted.
pub const MAX_PROVIDER_ID_LEN: usize = 255;

/// One requested import, as it arrived.
#[derive(Debug, Default)]
pub struct RawImportItem {
    /// The named provider; `None` when the request left it unset.
    pub service_provider: Option<ServiceProvider>,
    /// The tenant's id for the customer; empty means none.
    pub external_customer_id: String,
    /// PLAID's access token.
    pub access_token: Secret,
    /// AKOYA's refresh token.
    pub refresh_token: Secret,
    /// AKOYA's provider (institution) id.
    pub provider_id: String,
}

/// The credentials of one connection, by provider.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderCredentials {
    /// A Plaid item's access token.
    Plaid {
        /// The access token.
        access_token: Secret,
    },
    /// An Akoya consent's refresh token and the institution it is for.
    Akoya {
        /// The refresh token; it rotates on every use.
        refresh_token: Secret,
        /// Akoya's institution id.
        provider_id: String,
    },
}

impl ProviderCredentials {
    /// The provider these credentials are for.
    pub fn service_provider(&self) -> ServiceProvider {
        match self {
            Self::Plaid { .. } => ServiceProvider::Plaid,
            Self::Akoya { .. } => ServiceProvider::Akoya,
        }
    }
}

/// One import that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportItem {
    /// The tenant's id for the customer, if given.
    pub external_customer_id: Option<String>,
    /// The provider's credentials.
    pub credentials: ProviderCredentials,
}

/// Why a whole import request is refused; nothing of it is written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportRejection {
    /// No connections at all.
    #[error("connections must not be empty")]
    Empty,
    /// Over the per-request limit.
    #[error("at most {MAX_IMPORT_ITEMS} connections per request, got {0}")]
    TooMany(usize),
    /// One item cannot be imported, so none is.
    #[error("connections[{index}]: {rejection}")]
    Item {
        /// Position in the request.
        index: usize,
        /// What is wrong with it.
        rejection: ItemRejection,
    },
}

/// Why one item cannot be imported, whatever the provider would say.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ItemRejection {
    /// A provider other than PLAID or AKOYA.
    #[error("importing only works for PLAID and AKOYA, not {0}")]
    UnsupportedProvider(String),
    /// Credentials the provider needs are missing.
    #[error("{0}")]
    MissingCredentials(&'static str),
    /// A field that is too long or holds a NUL byte.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Validates a whole import request: either every item is importable, or nothing is.
pub fn validate(items: Vec<RawImportItem>) -> Result<Vec<ImportItem>, ImportRejection> {
    if items.is_empty() {
        return Err(ImportRejection::Empty);
    }
    if items.len() > MAX_IMPORT_ITEMS {
        return Err(ImportRejection::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            validate_item(item).map_err(|rejection| ImportRejection::Item { index, rejection })
        })
        .collect()
}

/// Validates one item by the rules of a request (the bulk import checks each line by them,
/// so that no batch it sends is refused as a whole).
pub fn validate_item(item: RawImportItem) -> Result<ImportItem, ItemRejection> {
    check_fields(&item)?;
    let credentials = match item.service_provider {
        Some(ServiceProvider::Plaid) => {
            if item.access_token.expose().trim().is_empty() {
                return Err(ItemRejection::MissingCredentials(
                    "accessToken is required for PLAID",
                ));
            }
            ProviderCredentials::Plaid {
                access_token: item.access_token,
            }
        }
        Some(ServiceProvider::Akoya) => {
            if item.refresh_token.expose().trim().is_empty() || item.provider_id.trim().is_empty() {
                return Err(ItemRejection::MissingCredentials(
                    "refreshToken and providerId are required for AKOYA",
                ));
            }
            ProviderCredentials::Akoya {
                refresh_token: item.refresh_token,
                provider_id: item.provider_id,
            }
        }
        other => {
            return Err(ItemRejection::UnsupportedProvider(
                other.map_or("an unset provider".to_string(), |p| p.to_string()),
            ));
        }
    };
    let external_customer_id = item.external_customer_id.trim().to_string();
    Ok(ImportItem {
        external_customer_id: (!external_customer_id.is_empty()).then_some(external_customer_id),
        credentials,
    })
}

/// Every string of an item, checked for NUL bytes and length before anything else reads it.
fn check_fields(item: &RawImportItem) -> Result<(), InputError> {
    input::text(
        "externalCustomerId",
        item.external_customer_id.trim(),
        MAX_EXTERNAL_CUSTOMER_ID_LEN,
    )?;
    input::text(
        "accessToken",
        item.access_token.expose(),
        MAX_CREDENTIAL_LEN,
    )?;
    input::text(
        "refreshToken",
        item.refresh_token.expose(),
        MAX_CREDENTIAL_LEN,
    )?;
    input::text("providerId", &item.provider_id, MAX_PROVIDER_ID_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plaid(token: &str) -> RawImportItem {
        RawImportItem {
            service_provider: Some(ServiceProvider::Plaid),
            external_customer_id: "customer-1".into(),
            access_token: Secret::new(token),
            ..RawImportItem::default()
        }
    }

    #[test]
    fn accepts_plaid_and_akoya() {
        let akoya = RawImportItem {
            service_provider: Some(ServiceProvider::Akoya),
            refresh_token: Secret::new("r"),
            provider_id: "mikomo".into(),
            ..RawImportItem::default()
        };
        let items = validate(vec![plaid("access-1"), akoya]).unwrap();
        assert_eq!(items[0].external_customer_id.as_deref(), Some("customer-1"));
        assert_eq!(items[1].external_customer_id, None);
        assert_eq!(
            items[1].credentials.service_provider(),
            ServiceProvider::Akoya
        );
    }

    #[test]
    fn refuses_empty_and_oversized_requests() {
        assert_eq!(validate(vec![]), Err(ImportRejection::Empty));
        let many = (0..101).map(|i| plaid(&format!("t{i}"))).collect();
        assert_eq!(validate(many), Err(ImportRejection::TooMany(101)));
    }

    #[test]
    fn refuses_other_providers_by_meld_wording() {
        let mut item = plaid("t");
        item.service_provider = Some(ServiceProvider::Mx);
        let error = validate(vec![plaid("t"), item]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("importing only works for PLAID and AKOYA")
        );
        assert!(error.to_string().starts_with("connections[1]"));
    }

    #[test]
    fn refuses_nul_bytes_and_long_ids_by_field() {
        let mut item = plaid("t");
        item.external_customer_id = "cust\u{0}omer".into();
        let error = validate(vec![plaid("t"), item]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "connections[1]: externalCustomerId must not contain NUL bytes"
        );
        let mut item = plaid("t");
        item.external_customer_id = "x".repeat(256);
        let error = validate(vec![item]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "connections[0]: externalCustomerId is longer than 255 characters"
        );
        let error = validate(vec![plaid("tok\u{0}en")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("accessToken must not contain NUL")
        );
    }

    #[test]
    fn refuses_missing_credentials() {
        let error = validate(vec![plaid("  ")]).unwrap_err();
        assert!(matches!(
            error,
            ImportRejection::Item {
                index: 0,
                rejection: ItemRejection::MissingCredentials(_)
            }
        ));
    }
}
