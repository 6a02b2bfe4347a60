//! Institutions: shared ones, named by a provider linkstate can ask, and tenants' own.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::institutions;
use crate::domain::ids::{AccountId, InstitutionId};
use crate::domain::service_provider::ServiceProvider;

/// Who sees an institution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstitutionOwner {
    /// Every tenant: a provider linkstate can ask named it.
    Shared,
    /// Only this tenant, which named it for a provider linkstate cannot ask.
    Tenant(AccountId),
}

impl InstitutionOwner {
    fn account(self) -> Option<Uuid> {
        match self {
            Self::Shared => None,
            Self::Tenant(account) => Some(account.0),
        }
    }
}

/// The institution a provider names `provider_institution_id`, made on first use (without
/// locking an existing row, for the same reason as customers).
pub async fn upsert_institution(
    conn: &mut AsyncPgConnection,
    provider: ServiceProvider,
    owner: InstitutionOwner,
    provider_institution_id: &str,
    name: &str,
) -> Result<InstitutionId, StoreError> {
    let inserted = diesel::insert_into(institutions::table)
        .values((
            institutions::id.eq(InstitutionId::generate().0),
            institutions::service_provider.eq(provider.as_str()),
            institutions::provider_institution_id.eq(provider_institution_id),
            institutions::name.eq(name),
            institutions::owner_account_id.eq(owner.account()),
        ))
        .on_conflict_do_nothing()
        .returning(institutions::id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
    match inserted {
        Some(id) => Ok(InstitutionId(id)),
        None => find_institution(conn, provider, owner, provider_institution_id)
            .await?
            .ok_or(StoreError::NotFound),
    }
}

/// The institution a provider names `provider_institution_id`, if linkstate has it.
pub async fn find_institution(
    conn: &mut AsyncPgConnection,
    provider: ServiceProvider,
    owner: InstitutionOwner,
    provider_institution_id: &str,
) -> Result<Option<InstitutionId>, StoreError> {
    Ok(institutions::table
        .filter(institutions::service_provider.eq(provider.as_str()))
        .filter(institutions::provider_institution_id.eq(provider_institution_id))
        .filter(institutions::owner_account_id.is_not_distinct_from(owner.account()))
        .select(institutions::id)
        .first::<Uuid>(conn)
        .await
        .optional()?
        .map(InstitutionId))
}

/// The provider of our institution `id`, if there is one that `account_id` may see (a shared
/// one, or its own).
pub async fn institution_provider(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    id: InstitutionId,
) -> Result<Option<ServiceProvider>, StoreError> {
    let provider = institutions::table
        .find(id.0)
        .filter(
            institutions::owner_account_id
                .is_null()
                .or(institutions::owner_account_id.eq(account_id.0)),
        )
        .select(institutions::service_provider)
        .first::<String>(conn)
        .await
        .optional()?;
    provider
        .map(|p| {
            p.parse()
                .map_err(|_| StoreError::Corrupt(format!("service provider {p:?}")))
        })
        .transpose()
}

/// Gives an institution the provider's name for it, where it still carries its provider id as
/// a placeholder (a connect flow named it before the provider did).
pub async fn name_institution(
    conn: &mut AsyncPgConnection,
    id: InstitutionId,
    name: &str,
) -> Result<(), StoreError> {
    diesel::update(institutions::table.find(id.0))
        .filter(institutions::name.eq(institutions::provider_institution_id))
        .set(institutions::name.eq(name))
        .execute(conn)
        .await?;
    Ok(())
}
