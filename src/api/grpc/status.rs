//! Errors as gRPC statuses: what the caller may branch on, and nothing that leaks internals.

use tonic::Status;

use crate::domain::input::excerpt;
use crate::import::ImportError;
use crate::lifecycle::LifecycleError;
use crate::store::StoreError;
use crate::webhooks::RecordError;

/// Turns a storage error into the status a caller sees; internal details go to the log only.
pub fn store(error: StoreError) -> Status {
    match error {
        StoreError::NotFound => Status::not_found("not found"),
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "database unavailable");
            Status::unavailable("the database is unavailable; retry later")
        }
        other => {
            tracing::error!(error = %other, "internal error");
            Status::internal("internal error")
        }
    }
}

/// Turns an import failure into a status.
pub fn import(error: ImportError) -> Status {
    match error {
        ImportError::ProviderNotConfigured(_) => Status::failed_precondition(error.to_string()),
    }
}

/// A NOT_FOUND that names what was looked for, and never says whether another tenant has it.
pub fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("{what} {} not found", excerpt(id)))
}

/// Turns a refused lifecycle request into a status; `connection_id` names the connection.
pub fn lifecycle(error: LifecycleError, connection_id: &str) -> Status {
    use LifecycleError as E;
    match error {
        E::NotFound => not_found("connection", connection_id),
        E::Rejected(_)
        | E::UnknownInstitution(_)
        | E::UnknownProviderInstitution { .. }
        | E::InstitutionOfOtherProvider { .. }
        | E::ItemMismatch(_)
        | E::CredentialsRefused(_) => Status::invalid_argument(error.to_string()),
        E::NotInProgress { .. }
        | E::AlreadyDeleted
        | E::ProviderRefused(_)
        | E::ProviderNotConfigured(_) => Status::failed_precondition(error.to_string()),
        E::AlreadyLinked(_) => Status::already_exists(error.to_string()),
        E::NotSupported(_) => Status::unimplemented(error.to_string()),
        E::CompletedMeanwhile => Status::aborted(error.to_string()),
        E::ProviderUnavailable(_) => Status::unavailable(error.to_string()),
        E::Store(error) => store(error),
    }
}

/// The gRPC status of each HTTP answer the webhook path gives; the detail of an internal or
/// unavailable failure goes to the log only.
pub fn webhook(error: RecordError) -> Status {
    let message = error.to_string();
    match error {
        RecordError::TooLarge { .. } => Status::resource_exhausted(message),
        RecordError::Unverified(_) => Status::unauthenticated(message),
        RecordError::Malformed(_) => Status::invalid_argument(message),
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
