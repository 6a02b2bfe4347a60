//! `linkstate.v1.EventService`.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{auth, convert, request, status};
use crate::context::Context;
use crate::domain::cursor::Cursor;
use crate::domain::event_filter::EventFilter;
use crate::domain::ids::EventId;
use crate::events::stream::{self, StartAt, StreamError, StreamItem, StreamRequest};
use crate::proto;
use crate::proto::event_service_server::EventService;
use crate::store;
use crate::store::events::{self as event_store, PageLimit};

/// Heartbeat interval when the request does not say.
const DEFAULT_HEARTBEAT_SECONDS: i32 = 15;

/// Most events one ListEvents page may hold.
const MAX_EVENTS_PAGE: i32 = 1000;

/// Payload bytes one ListEvents page holds at most: fewer events when they are large, so that
/// a page stays well under a client's default 4 MiB message limit.
const LIST_PAGE_BYTES: usize = 1024 * 1024;

/// Serves the event log.
pub struct Events {
    ctx: Context,
}

impl Events {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

/// The filter fields StreamEvents and ListEvents share.
trait FilterFields {
    fn fields(&self) -> (&[i32], &str, &str, &str);
}

/// Both requests name their filter fields alike.
macro_rules! filter_fields {
    ($($request:ty),*) => {$(
        impl FilterFields for $request {
            fn fields(&self) -> (&[i32], &str, &str, &str) {
                (&self.event_types, &self.customer_id, &self.external_customer_id, &self.connection_id)
            }
        }
    )*};
}

filter_fields!(proto::StreamEventsRequest, proto::ListEventsRequest);

/// The event filter a request asks for.
fn filter(request: &impl FilterFields) -> Result<EventFilter, Status> {
    let (event_types, customer_id, external_customer_id, connection_id) = request.fields();
    Ok(EventFilter {
        event_types: request::event_types("eventTypes", event_types)?,
        customer_id: request::optional_id("customerId", customer_id)?,
        external_customer_id: request::optional_text("externalCustomerId", external_customer_id)?,
        connection_id: request::optional_id("connectionId", connection_id)?,
    })
}

fn cursor(text: &str) -> Result<Cursor, Status> {
    Cursor::decode(text).map_err(|e| Status::invalid_argument(format!("afterCursor: {e}")))
}

/// OUT_OF_RANGE when events after `after` were already pruned: resuming there would skip them.
/// The error's details name the oldest cursor a client can resume after, once it re-lists.
async fn still_retained(ctx: &Context, after: Cursor) -> Result<(), Status> {
    let mut conn = store::connect(ctx.pool()).await.map_err(Status::from)?;
    let pruned = event_store::pruned_through(&mut conn)
        .await
        .map_err(Status::from)?;
    if after >= pruned {
        return Ok(());
    }
    let oldest = pruned.encode();
    let details = ErrorDetails::with_error_info(
        "CURSOR_PRUNED",
        "linkstate.v1.EventService",
        [("oldestCursor".to_string(), oldest.clone())],
    );
    Err(Status::with_error_details(
        tonic::Code::OutOfRange,
        format!("afterCursor is older than the retained log; the oldest cursor is {oldest}"),
        details,
    ))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for Events {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<proto::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let start = match (request.after_cursor.is_empty(), request.from_earliest) {
            (false, true) => {
                return Err(Status::invalid_argument(
                    "give afterCursor or fromEarliest, not both",
                ));
            }
            (false, false) => {
                let after = cursor(&request.after_cursor)?;
                still_retained(&self.ctx, after).await?;
                StartAt::After(after)
            }
            (true, true) => StartAt::Earliest,
            (true, false) => StartAt::Live,
        };
        let heartbeat_seconds = match request.heartbeat_seconds {
            0 => DEFAULT_HEARTBEAT_SECONDS,
            n if (1..=3600).contains(&n) => n,
            _ => {
                return Err(Status::invalid_argument(
                    "heartbeatSeconds must be between 1 and 3600",
                ));
            }
        };
        let filter = filter(&request)?;
        let account_slot = self.ctx.tenants().stream_slot(account_id)?;
        let server_slot = self.ctx.stream_slot().ok_or_else(|| {
            Status::resource_exhausted("too many event streams on this server; retry later")
        })?;
        let items = stream::open(
            (account_slot, server_slot),
            self.ctx.pool().clone(),
            self.ctx.hub().clone(),
            StreamRequest {
                account_id,
                start,
                filter,
                heartbeat: Duration::from_secs(heartbeat_seconds as u64),
            },
        );
        let messages = items.map(|item| {
            let message = match item.map_err(|error| match error {
                StreamError::ShuttingDown => Status::unavailable(error.to_string()),
                StreamError::Store(error) => error.into(),
            })? {
                StreamItem::Event(logged) => {
                    proto::stream_events_response::Message::Event(convert::event(&logged))
                }
                StreamItem::Heartbeat(cursor) => {
                    proto::stream_events_response::Message::Heartbeat(proto::Heartbeat {
                        cursor: cursor.encode(),
                    })
                }
            };
            Ok(proto::StreamEventsResponse {
                message: Some(message),
            })
        });
        Ok(Response::new(Box::pin(messages)))
    }

    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Result<Response<proto::ListEventsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let after = if request.after_cursor.is_empty() {
            Cursor::START
        } else {
            let after = cursor(&request.after_cursor)?;
            still_retained(&self.ctx, after).await?;
            after
        };
        let limit = match request.page_size {
            0 => 100,
            n if n < 0 => return Err(Status::invalid_argument("pageSize must not be negative")),
            n => n.min(MAX_EVENTS_PAGE),
        };
        let filter = filter(&request)?;
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        let limit = PageLimit {
            events: limit as i64,
            bytes: LIST_PAGE_BYTES,
        };
        let page = event_store::read_after(&mut conn, Some(account_id), after, &filter, limit)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(proto::ListEventsResponse {
            events: page.events.iter().map(convert::event).collect(),
            next_cursor: page.scanned_to.encode(),
        }))
    }

    async fn get_event(
        &self,
        request: Request<proto::GetEventRequest>,
    ) -> Result<Response<proto::Event>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let raw_id = request.into_inner().event_id;
        if raw_id.is_empty() {
            return Err(Status::invalid_argument("eventId is required"));
        }
        let not_found = || status::not_found("event", &raw_id);
        let id: EventId = raw_id.parse().map_err(|_| not_found())?;
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        match event_store::get(&mut conn, account_id, id).await {
            Ok(logged) => Ok(Response::new(convert::event(&logged))),
            Err(store::StoreError::NotFound) => Err(not_found()),
            Err(error) => Err(error.into()),
        }
    }
}
