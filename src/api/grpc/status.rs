//! Errors as gRPC statuses, in one place: one `From` per error of the layers below, saying what
//! the caller may branch on and nothing that leaks internals (the detail of an internal or
//! unavailable failure goes to the log only).

use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::customers::CustomerError;
use crate::domain::input::excerpt;
use crate::events::stream::StreamError;
use crate::import::ImportError;
use crate::lifecycle::LifecycleError;
use crate::outbound::profiles::ProfileError;
use crate::providers::akoya::AkoyaErrorKind;
use crate::refresh::RefreshError;
use crate::store::StoreError;
use crate::tenant_limits::Refused;
use crate::webhooks::RecordError;

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Status::not_found("not found"),
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            StoreError::Unopenable(_) => {
                tracing::error!(%error, "a sealed value opens with no configured key");
                Status::failed_precondition(error.to_string())
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

impl From<ProfileError> for Status {
    fn from(error: ProfileError) -> Self {
        match error {
            ProfileError::NotFound(_) => Status::not_found(error.to_string()),
            ProfileError::Invalid(_) => Status::invalid_argument(error.to_string()),
            ProfileError::Store(error) => error.into(),
        }
    }
}

impl From<ImportError> for Status {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::ProviderNotConfigured(_) => Status::failed_precondition(error.to_string()),
        }
    }
}

impl From<RefreshError> for Status {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::NotFound(_) => Status::not_found(error.to_string()),
            RefreshError::NotRefreshable(_)
            | RefreshError::InactiveDuplicate(_)
            | RefreshError::ProviderNotConfigured(_) => {
                Status::failed_precondition(error.to_string())
            }
            RefreshError::RateLimited => Status::resource_exhausted(error.to_string()),
            RefreshError::Store(error) => error.into(),
        }
    }
}

impl From<LifecycleError> for Status {
    fn from(error: LifecycleError) -> Self {
        use LifecycleError as E;
        match error {
            E::NotFound(_) => Status::not_found(error.to_string()),
            E::Rejected(_)
            | E::UnknownInstitution(_)
            | E::UnknownProviderInstitution { .. }
            | E::InstitutionOfOtherProvider { .. }
            | E::ItemMismatch(_)
            | E::TokenOfOtherItem
            | E::CredentialsRefused(_) => Status::invalid_argument(error.to_string()),
            E::NotInProgress { .. }
            | E::AlreadyDeleted
            | E::HasInactiveDuplicates(_)
            | E::NotRepairable(_)
            | E::StillBroken { .. }
            | E::StillRefused(_)
            | E::ProviderRefused(_)
            | E::ProviderNotConfigured(_) => Status::failed_precondition(error.to_string()),
            E::AlreadyLinked(_) => Status::already_exists(error.to_string()),
            E::NotSupported(_) => Status::unimplemented(error.to_string()),
            E::CompletedMeanwhile => Status::aborted(error.to_string()),
            E::ProviderUnavailable(_) => Status::unavailable(error.to_string()),
            E::Akoya(ref akoya) => match akoya.kind() {
                AkoyaErrorKind::NotConfigured | AkoyaErrorKind::ClientRefused => {
                    Status::failed_precondition(error.to_string())
                }
                AkoyaErrorKind::ConsentRefused | AkoyaErrorKind::Refused => {
                    Status::invalid_argument(error.to_string())
                }
                AkoyaErrorKind::RateLimited => Status::resource_exhausted(error.to_string()),
                AkoyaErrorKind::Unavailable => Status::unavailable(error.to_string()),
                AkoyaErrorKind::Unexpected => Status::internal(error.to_string()),
            },
            E::Store(error) => error.into(),
        }
    }
}

impl From<CustomerError> for Status {
    fn from(error: CustomerError) -> Self {
        let message = error.to_string();
        match error {
            CustomerError::NotFound(_) => Status::not_found(message),
            CustomerError::AlreadyDeleted => Status::failed_precondition(message),
            // The first failure's code: UNAVAILABLE only when a provider could not be reached,
            // so that a caller retries blindly only what a retry can finish.
            CustomerError::Unfinished { cause, .. } => {
                Status::new(Status::from(*cause).code(), message)
            }
            CustomerError::Store(error) => error.into(),
        }
    }
}

impl From<RecordError> for Status {
    fn from(error: RecordError) -> Self {
        let message = error.to_string();
        match error {
            RecordError::TooLarge { .. } => Status::resource_exhausted(message),
            RecordError::Unverified(_) => Status::unauthenticated(message),
            RecordError::Malformed(_) | RecordError::NotANotification(_) => {
                Status::invalid_argument(message)
            }
            RecordError::Unavailable(detail) => {
                tracing::warn!(%detail, "webhook not recorded; the sender should retry");
                Status::unavailable(message)
            }
            RecordError::Internal(detail) => {
                tracing::error!(%detail, "webhook not recorded: internal error");
                Status::internal(message)
            }
        }
    }
}

impl From<StreamError> for Status {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::ShuttingDown => Status::unavailable(error.to_string()),
            StreamError::Store(error) => error.into(),
        }
    }
}

impl From<Refused> for Status {
    fn from(refused: Refused) -> Self {
        Status::with_error_details(
            tonic::Code::ResourceExhausted,
            refused.to_string(),
            ErrorDetails::with_retry_info(Some(refused.retry_after())),
        )
    }
}

/// A NOT_FOUND that names what was looked for, and never says whether another tenant has it.
pub fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("{what} {} not found", excerpt(id)))
}

/// A code as gRPC writes its name.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}
