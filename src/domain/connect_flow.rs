//! The connect flow another service runs with the customer: what a request to start, complete
//! or fail one must carry, and how long it may run.

use chrono::TimeDelta;

use super::ids::InstitutionId;
use super::import::{
    MAX_CREDENTIAL_LEN, MAX_EXTERNAL_CUSTOMER_ID_LEN, MAX_PROVIDER_ID_LEN, ProviderCredentials,
};
use super::input::{self, InputError};
use super::secret::Secret;
use super::service_provider::ServiceProvider;

/// How long a connect flow may run before its connection EXPIRES (Meld: 4 hours).
pub const FLOW_LIFETIME: TimeDelta = TimeDelta::hours(4);

/// Longest institution id accepted.
pub const MAX_INSTITUTION_ID_LEN: usize = 255;

/// Longest provider connection id (Plaid `item_id`) accepted.
pub const MAX_PROVIDER_CONNECTION_ID_LEN: usize = 255;

/// Longest failure reason accepted.
pub const MAX_REASON_LEN: usize = 255;

/// A CreateConnection request as it arrived.
#[derive(Debug, Default)]
pub struct RawNewFlow {
    /// The named provider; `None` when the request left it unset.
    pub service_provider: Option<ServiceProvider>,
    /// The tenant's id for the customer.
    pub external_customer_id: String,
    /// Our institution id, or the provider's.
    pub institution_id: String,
}

/// A CreateConnection request that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFlow {
    /// The provider the customer connects through.
    pub service_provider: ServiceProvider,
    /// The tenant's id for the customer.
    pub external_customer_id: String,
    /// The institution the customer connects to.
    pub institution: InstitutionRef,
}

/// How a request names an institution.
#[derive(Clone, Debug, PartialEq)]
pub enum InstitutionRef {
    /// One of our institution ids, as a Connection shows it.
    Ours(InstitutionId),
    /// The provider's id (Plaid `ins_109508`), named by that id until the provider names it.
    Provider(String),
}

impl InstitutionRef {
    /// Reads an institution id: UUIDs are ours (no provider we know uses them), anything else
    /// is the provider's.
    pub fn parse(id: &str) -> Self {
        match id.parse() {
            Ok(ours) => Self::Ours(ours),
            Err(_) => Self::Provider(id.to_string()),
        }
    }
}

/// The fields of a CompleteConnection request, as they arrived.
#[derive(Debug, Default)]
pub struct RawCompletion {
    /// PLAID's access token.
    pub access_token: Secret,
    /// AKOYA's refresh token.
    pub refresh_token: Secret,
    /// AKOYA's provider (institution) id.
    pub provider_id: String,
    /// The provider's id for the new connection (Plaid `item_id`).
    pub provider_connection_id: String,
}

/// A CompleteConnection request that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The provider's id for the connection.
    pub provider_connection_id: String,
    /// What linkstate keeps to call the provider; none for providers it cannot call yet.
    pub credentials: Option<ProviderCredentials>,
}

/// Why a connect-flow request is refused; nothing of it is written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowRejection {
    /// No provider named.
    #[error("serviceProvider is required: PLAID, AKOYA, FINICITY or MX")]
    MissingProvider,
    /// No external customer id.
    #[error("externalCustomerId is required")]
    MissingExternalCustomerId,
    /// No institution.
    #[error("institutionId is required")]
    MissingInstitutionId,
    /// No provider id for the completed connection.
    #[error("serviceProviderConnectionId is required")]
    MissingProviderConnectionId,
    /// Credentials the provider needs are missing.
    #[error("{what} to complete this {provider} connection")]
    MissingCredentials {
        /// The connection's provider.
        provider: ServiceProvider,
        /// Which ones.
        what: &'static str,
    },
    /// Credentials of another provider than the connection's.
    #[error("{given} are not credentials of a {provider} connection")]
    ForeignCredentials {
        /// The connection's provider.
        provider: ServiceProvider,
        /// What was given.
        given: &'static str,
    },
    /// No failure reason.
    #[error("reason is required")]
    MissingReason,
    /// A field that is too long, too large or holds a NUL byte.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// The new credentials a RepairConnection request carries.
#[derive(Clone, Debug, Default)]
pub struct RawRepair {
    /// PLAID's access token, when Link's update mode issued a new one.
    pub access_token: Secret,
    /// AKOYA's refresh token of the new consent.
    pub refresh_token: Secret,
    /// AKOYA's provider (institution) id.
    pub provider_id: String,
}

/// The edge checks of the credential fields a completion or a repair carries.
fn check_credentials(
    access_token: &Secret,
    refresh_token: &Secret,
    provider_id: &str,
) -> Result<(), InputError> {
    input::text("accessToken", access_token.expose(), MAX_CREDENTIAL_LEN)?;
    input::text("refreshToken", refresh_token.expose(), MAX_CREDENTIAL_LEN)?;
    input::text("providerId", provider_id, MAX_PROVIDER_ID_LEN)
}

/// Validates a RepairConnection request for a connection of `provider`: the new credentials,
/// if any. A PLAID connection may keep its access token (update mode keeps it); an AKOYA
/// connection is repaired by a new consent, whose refresh token is the only way back in.
pub fn validate_repair(
    provider: ServiceProvider,
    raw: RawRepair,
) -> Result<Option<ProviderCredentials>, FlowRejection> {
    check_credentials(&raw.access_token, &raw.refresh_token, &raw.provider_id)?;
    let access = !raw.access_token.expose().trim().is_empty();
    let akoya = !raw.refresh_token.expose().trim().is_empty() || !raw.provider_id.trim().is_empty();
    match provider {
        ServiceProvider::Plaid if akoya => Err(FlowRejection::ForeignCredentials {
            provider,
            given: "refreshToken and providerId",
        }),
        ServiceProvider::Plaid => Ok(access.then_some(ProviderCredentials::Plaid {
            access_token: raw.access_token,
        })),
        ServiceProvider::Akoya if access => Err(FlowRejection::ForeignCredentials {
            provider,
            given: "accessToken",
        }),
        ServiceProvider::Akoya => {
            if raw.refresh_token.expose().trim().is_empty() || raw.provider_id.trim().is_empty() {
                return Err(FlowRejection::MissingCredentials {
                    provider,
                    what: "the new consent's refreshToken and providerId are required",
                });
            }
            Ok(Some(ProviderCredentials::Akoya {
                refresh_token: raw.refresh_token,
                provider_id: raw.provider_id,
            }))
        }
        ServiceProvider::Finicity | ServiceProvider::Mx => Ok(None),
    }
}

/// Validates a CreateConnection request.
pub fn validate_new(raw: RawNewFlow) -> Result<NewFlow, FlowRejection> {
    let service_provider = raw.service_provider.ok_or(FlowRejection::MissingProvider)?;
    let external_customer_id = raw.external_customer_id.trim();
    input::text(
        "externalCustomerId",
        external_customer_id,
        MAX_EXTERNAL_CUSTOMER_ID_LEN,
    )?;
    if external_customer_id.is_empty() {
        return Err(FlowRejection::MissingExternalCustomerId);
    }
    let institution_id = raw.institution_id.trim();
    input::text("institutionId", institution_id, MAX_INSTITUTION_ID_LEN)?;
    if institution_id.is_empty() {
        return Err(FlowRejection::MissingInstitutionId);
    }
    Ok(NewFlow {
        service_provider,
        external_customer_id: external_customer_id.to_string(),
        institution: InstitutionRef::parse(institution_id),
    })
}

/// Validates a CompleteConnection request for a connection of `provider`: PLAID needs the
/// access token, AKOYA the refresh token and provider id; FINICITY and MX need none, since
/// linkstate cannot call them yet.
pub fn validate_completion(
    provider: ServiceProvider,
    raw: RawCompletion,
) -> Result<Completion, FlowRejection> {
    let provider_connection_id = raw.provider_connection_id.trim().to_string();
    input::text(
        "serviceProviderConnectionId",
        &provider_connection_id,
        MAX_PROVIDER_CONNECTION_ID_LEN,
    )?;
    check_credentials(&raw.access_token, &raw.refresh_token, &raw.provider_id)?;
    if provider_connection_id.is_empty() {
        return Err(FlowRejection::MissingProviderConnectionId);
    }
    let missing = |what| FlowRejection::MissingCredentials { provider, what };
    let credentials = match provider {
        ServiceProvider::Plaid => {
            if raw.access_token.expose().trim().is_empty() {
                return Err(missing("accessToken is required"));
            }
            Some(ProviderCredentials::Plaid {
                access_token: raw.access_token,
            })
        }
        ServiceProvider::Akoya => {
            if raw.refresh_token.expose().trim().is_empty() || raw.provider_id.trim().is_empty() {
                return Err(missing("refreshToken and providerId are required"));
            }
            Some(ProviderCredentials::Akoya {
                refresh_token: raw.refresh_token,
                provider_id: raw.provider_id,
            })
        }
        ServiceProvider::Finicity | ServiceProvider::Mx => None,
    };
    Ok(Completion {
        provider_connection_id,
        credentials,
    })
}

/// Validates FailConnection's reason (Meld's example: `UNFORESEEN`).
pub fn validate_reason(reason: &str) -> Result<String, FlowRejection> {
    let reason = reason.trim();
    input::text("reason", reason, MAX_REASON_LEN)?;
    if reason.is_empty() {
        return Err(FlowRejection::MissingReason);
    }
    Ok(reason.to_string())
}

/// Validates FailConnection's free-form `serviceProviderDetails`: it is copied into an event
/// that every stream may buffer, so its size is bounded.
pub fn validate_details(
    details: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), FlowRejection> {
    Ok(input::details("serviceProviderDetails", details)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_flow(institution_id: &str) -> RawNewFlow {
        RawNewFlow {
            service_provider: Some(ServiceProvider::Plaid),
            external_customer_id: "customer-1".into(),
            institution_id: institution_id.into(),
        }
    }

    #[test]
    fn institutions_are_ours_when_they_are_uuids() {
        let ours = InstitutionId::generate();
        let flow = validate_new(new_flow(&ours.to_string())).unwrap();
        assert_eq!(flow.institution, InstitutionRef::Ours(ours));
        let flow = validate_new(new_flow(" ins_109508 ")).unwrap();
        assert_eq!(
            flow.institution,
            InstitutionRef::Provider("ins_109508".into())
        );
    }

    #[test]
    fn new_flows_need_provider_customer_and_institution() {
        let mut raw = new_flow("ins_1");
        raw.service_provider = None;
        assert_eq!(validate_new(raw), Err(FlowRejection::MissingProvider));
        let mut raw = new_flow("ins_1");
        raw.external_customer_id = " ".into();
        assert_eq!(
            validate_new(raw),
            Err(FlowRejection::MissingExternalCustomerId)
        );
        assert_eq!(
            validate_new(new_flow("")),
            Err(FlowRejection::MissingInstitutionId)
        );
        assert_eq!(
            validate_new(new_flow(&"i".repeat(256)))
                .unwrap_err()
                .to_string(),
            "institutionId is longer than 255 characters"
        );
        assert_eq!(
            validate_new(new_flow("ins\u{0}1")).unwrap_err().to_string(),
            "institutionId must not contain NUL bytes"
        );
    }

    #[test]
    fn completion_needs_each_providers_credentials() {
        let raw = || RawCompletion {
            provider_connection_id: "item-1".into(),
            ..RawCompletion::default()
        };
        let error = validate_completion(ServiceProvider::Plaid, raw()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "accessToken is required to complete this PLAID connection"
        );
        let error = validate_completion(ServiceProvider::Akoya, raw()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "refreshToken and providerId are required to complete this AKOYA connection"
        );
        let finicity = validate_completion(ServiceProvider::Finicity, raw()).unwrap();
        assert_eq!(finicity.credentials, None);
        let plaid = RawCompletion {
            access_token: Secret::new("access-1"),
            ..raw()
        };
        let completion = validate_completion(ServiceProvider::Plaid, plaid).unwrap();
        assert_eq!(completion.provider_connection_id, "item-1");
        assert!(matches!(
            completion.credentials,
            Some(ProviderCredentials::Plaid { .. })
        ));
        assert_eq!(
            validate_completion(ServiceProvider::Mx, RawCompletion::default()),
            Err(FlowRejection::MissingProviderConnectionId)
        );
    }

    #[test]
    fn reasons_are_required_and_short() {
        assert_eq!(validate_reason("UNFORESEEN"), Ok("UNFORESEEN".into()));
        assert_eq!(validate_reason("  "), Err(FlowRejection::MissingReason));
        assert_eq!(
            validate_reason(&"x".repeat(256)).unwrap_err().to_string(),
            "reason is longer than 255 characters"
        );
    }
}
