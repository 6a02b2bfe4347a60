//! `linkstate.v1.ConnectionService`.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::{auth, convert, request, status};
use crate::context::Context;
use crate::domain::connect_flow::{self, RawCompletion, RawNewFlow, RawRepair};
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::ids::ConnectionId;
use crate::domain::import::{self as import_rules, RawImportItem};
use crate::domain::product::Product;
use crate::domain::secret::Secret;
use crate::domain::service_provider::ServiceProvider;
use crate::import;
use crate::lifecycle;
use crate::proto;
use crate::proto::connection_service_server::ConnectionService;
use crate::refresh;
use crate::store::{self, connections};

/// Serves connection imports, reads, connect flows and deletes.
pub struct Connections {
    ctx: Context,
}

impl Connections {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

/// A provider enum value as the domain's provider; `None` when unset or unknown.
fn provider(value: i32) -> Option<ServiceProvider> {
    proto::service_provider::Value::try_from(value)
        .ok()
        .and_then(|v| v.as_str_name().parse().ok())
}

fn raw_item(item: proto::ImportConnection) -> RawImportItem {
    RawImportItem {
        service_provider: provider(item.service_provider),
        external_customer_id: item.external_customer_id,
        access_token: Secret::new(item.access_token),
        refresh_token: Secret::new(item.refresh_token),
        provider_id: item.provider_id,
    }
}

/// Per-item results as the API shows them, each item's connection shown by `shown`.
fn import_results<T>(
    results: &[Result<T, import::ItemFailure>],
    shown: impl Fn(&T) -> (proto::Connection, bool),
) -> Vec<proto::ImportResult> {
    results
        .iter()
        .map(|result| match result {
            Ok(item) => {
                let (connection, already_imported) = shown(item);
                proto::ImportResult {
                    result: Some(proto::import_result::Result::Connection(connection)),
                    already_imported,
                }
            }
            Err(failure) => proto::ImportResult {
                result: Some(proto::import_result::Result::Error(proto::ImportError {
                    code: failure.code.to_string(),
                    message: failure.message.clone(),
                    service_provider_details: Some(convert::json_struct(&failure.provider_details)),
                })),
                already_imported: false,
            },
        })
        .collect()
}

/// The connection a request names: INVALID_ARGUMENT when unset; a malformed id is NOT_FOUND,
/// like any id this tenant has no connection for.
fn connection_id(raw: &str) -> Result<ConnectionId, Status> {
    if raw.is_empty() {
        return Err(Status::invalid_argument("connectionId is required"));
    }
    raw.parse()
        .map_err(|_| status::not_found("connection", raw))
}

/// The time inside a page token, within what the database holds.
fn token_timestamp(at: DateTime<Utc>) -> Result<DateTime<Utc>, Status> {
    request::token_date(at.date_naive()).map(|_| at)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ConnectionPageToken {
    created_at: DateTime<Utc>,
    id: ConnectionId,
}

#[tonic::async_trait]
impl ConnectionService for Connections {
    async fn import_connections(
        &self,
        request: Request<proto::ImportConnectionsRequest>,
    ) -> Result<Response<proto::ImportConnectionsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let raw = request.connections.into_iter().map(raw_item).collect();
        let items = import_rules::validate(raw).map_err(request::invalid)?;
        // Both kinds call the provider for each item: one account's migration holds only its
        // share of this process's provider calls and pool.
        let _running = self.ctx.tenants().import_slot(account_id)?;
        if request.validate_only {
            let outcome = import::validate(&self.ctx, account_id, items).await?;
            return Ok(Response::new(proto::ImportConnectionsResponse {
                request_id: String::new(),
                results: import_results(&outcome.results, |item| {
                    (convert::checked_item(item), false)
                }),
                warnings: outcome.warnings,
            }));
        }
        let outcome = import::import(&self.ctx, account_id, items).await?;
        Ok(Response::new(proto::ImportConnectionsResponse {
            request_id: outcome.request_id.to_string(),
            results: import_results(&outcome.results, |item| {
                (convert::connection(&item.connection), item.already_imported)
            }),
            warnings: outcome.warnings,
        }))
    }

    async fn get_connection(
        &self,
        request: Request<proto::GetConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let raw_id = request.into_inner().connection_id;
        if raw_id.is_empty() {
            return Err(Status::invalid_argument("connectionId is required"));
        }
        let not_found = || status::not_found("connection", &raw_id);
        let id: ConnectionId = raw_id.parse().map_err(|_| not_found())?;
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        match connections::get(&mut conn, account_id, id).await {
            Ok(connection) => Ok(Response::new(convert::connection(&connection))),
            Err(store::StoreError::NotFound) => Err(not_found()),
            Err(error) => Err(error.into()),
        }
    }

    async fn list_connections(
        &self,
        request: Request<proto::ListConnectionsRequest>,
    ) -> Result<Response<proto::ListConnectionsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let limit = request::page_size(request.page_size)?;
        let after = request::decode_token::<ConnectionPageToken>(&request.page_token)?;
        let statuses = request
            .statuses
            .iter()
            .map(|value| {
                let name = proto::connection::Status::try_from(*value)
                    .ok()
                    .filter(|s| *s != proto::connection::Status::Unspecified)
                    .map(|s| s.as_str_name());
                request::known_enum::<ConnectionStatus>("statuses", name)
            })
            .collect::<Result<_, _>>()?;
        let service_providers = request
            .service_providers
            .iter()
            .map(|value| {
                provider(*value).ok_or_else(|| {
                    Status::invalid_argument("serviceProviders has an unknown or unset value")
                })
            })
            .collect::<Result<_, _>>()?;
        let query = connections::ConnectionQuery {
            customer_id: request::optional_id("customerId", &request.customer_id)?,
            external_customer_id: request::optional_text(
                "externalCustomerId",
                &request.external_customer_id,
            )?,
            statuses,
            service_providers,
            after: after
                .map(|token| Ok::<_, Status>((token_timestamp(token.created_at)?, token.id)))
                .transpose()?,
        };
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        let page = connections::list(&mut conn, account_id, &query, limit + 1)
            .await
            .map_err(Status::from)?;
        let has_more = page.len() as i64 > limit;
        let page = &page[..page.len().min(limit as usize)];
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&ConnectionPageToken {
                created_at: last.created_at,
                id: last.id,
            }),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListConnectionsResponse {
            connections: page.iter().map(convert::connection).collect(),
            next_page_token,
        }))
    }

    async fn refresh_connection(
        &self,
        request: Request<proto::RefreshConnectionRequest>,
    ) -> Result<Response<proto::RefreshConnectionResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        if request.connection_id.is_empty() {
            return Err(Status::invalid_argument("connectionId is required"));
        }
        let not_found = || status::not_found("connection", &request.connection_id);
        let id: ConnectionId = request.connection_id.parse().map_err(|_| not_found())?;
        let products = request
            .products
            .iter()
            .map(|value| {
                let name = proto::product::Value::try_from(*value)
                    .ok()
                    .filter(|p| *p != proto::product::Value::ProductUnspecified)
                    .map(|p| p.as_str_name());
                request::known_enum::<Product>("products", name)
            })
            .collect::<Result<_, _>>()?;
        let request_id = refresh::refresh(&self.ctx, account_id, id, products).await?;
        Ok(Response::new(proto::RefreshConnectionResponse {
            request_id: request_id.to_string(),
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<proto::DeleteConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let raw_id = request.into_inner().connection_id;
        let id = connection_id(&raw_id)?;
        let deleted = lifecycle::delete(&self.ctx, account_id, id).await?;
        Ok(Response::new(convert::connection(&deleted)))
    }

    async fn create_connection(
        &self,
        request: Request<proto::CreateConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let flow = connect_flow::validate_new(RawNewFlow {
            service_provider: provider(request.service_provider),
            external_customer_id: request.external_customer_id,
            institution_id: request.institution_id,
        })
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let created = lifecycle::create(&self.ctx, account_id, flow).await?;
        Ok(Response::new(convert::connection(&created)))
    }

    async fn complete_connection(
        &self,
        request: Request<proto::CompleteConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = connection_id(&request.connection_id)?;
        let raw = RawCompletion {
            access_token: Secret::new(request.access_token),
            refresh_token: Secret::new(request.refresh_token),
            provider_id: request.provider_id,
            provider_connection_id: request.service_provider_connection_id,
        };
        let completed = lifecycle::complete(&self.ctx, account_id, id, raw).await?;
        Ok(Response::new(convert::connection(&completed)))
    }

    async fn fail_connection(
        &self,
        request: Request<proto::FailConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = connection_id(&request.connection_id)?;
        let reason = connect_flow::validate_reason(&request.reason)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let details = request
            .service_provider_details
            .as_ref()
            .map(convert::struct_json)
            .unwrap_or_default();
        connect_flow::validate_details(&details).map_err(request::invalid)?;
        let failed = lifecycle::fail(&self.ctx, account_id, id, &reason, &details).await?;
        Ok(Response::new(convert::connection(&failed)))
    }

    async fn repair_connection(
        &self,
        request: Request<proto::RepairConnectionRequest>,
    ) -> Result<Response<proto::Connection>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = connection_id(&request.connection_id)?;
        let raw = RawRepair {
            access_token: Secret::new(request.access_token),
            refresh_token: Secret::new(request.refresh_token),
            provider_id: request.provider_id,
        };
        let repaired = lifecycle::repair(&self.ctx, account_id, id, raw).await?;
        Ok(Response::new(convert::connection(&repaired)))
    }
}
