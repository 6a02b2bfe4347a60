//! The event log: append inside the caller's transaction, read in commit-safe order.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::prepared::prepared;
use super::schema::events;
use crate::domain::cursor::Cursor;
use crate::domain::event::{EVENT_VERSION, Event, EventPayload, EventType, NewEvent};
use crate::domain::event_filter::EventFilter;
use crate::domain::ids::{AccountId, EventId};

/// An event with its position in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// Where it sits.
    pub cursor: Cursor,
    /// The event.
    pub event: Event,
    /// About how many bytes it takes (its payload's JSON and the envelope): what buffers of
    /// events count to stay bounded in bytes.
    pub size: usize,
}

/// What the envelope of an event adds to its payload's size, roughly.
const ENVELOPE_BYTES: usize = 256;

/// How much one read of the log may return: at most `events`, and no more events once their
/// payloads reach `bytes` (one event is always returned, however large).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimit {
    /// Events at most.
    pub events: i64,
    /// Payload bytes at most.
    pub bytes: usize,
}

/// One read of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    /// Matching events in log order.
    pub events: Vec<LoggedEvent>,
    /// Everything up to here was scanned (matching or not): resuming after it skips nothing.
    pub scanned_to: Cursor,
    /// Whether the page stopped at its limit, so more may follow at once.
    pub full: bool,
    /// The first transaction id not yet handed out when the page was read: whatever committed
    /// before the read is settled once a later page's `scanned_to` reaches it.
    pub next_transaction: u64,
}

/// Appends events; call inside the transaction that makes the change they describe.
pub async fn append(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    new_events: &[NewEvent],
) -> Result<Vec<EventId>, StoreError> {
    let mut ids = Vec::with_capacity(new_events.len());
    let mut rows = Vec::with_capacity(new_events.len());
    for new in new_events {
        let id = EventId::generate();
        let payload = serde_json::to_value(&new.payload)
            .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?;
        rows.push((
            events::event_id.eq(id.0),
            events::account_id.eq(account_id.0),
            events::event_type.eq(new.event_type.as_str()),
            events::customer_id.eq(new.payload.customer_id.map(|c| c.0)),
            events::external_customer_id.eq(new.payload.external_customer_id.clone()),
            events::connection_id.eq(new.payload.connection_id.map(|c| c.0)),
            events::version.eq(EVENT_VERSION),
            events::payload.eq(payload),
        ));
        ids.push(id);
    }
    if !rows.is_empty() {
        // One statement, so the events' sequence numbers follow the order given.
        diesel::insert_into(events::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(ids)
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    transaction_id: i64,
    #[diesel(sql_type = BigInt)]
    sequence: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    version: String,
    /// As text, parsed straight into the payload type: through a `serde_json::Value` first,
    /// catching up over a long log spent a good part of its time allocating.
    #[diesel(sql_type = Text)]
    payload: String,
    /// The payload bytes of this row and every row before it in the page: the page stops at
    /// its byte budget in the database, so a large event is never read into memory by the
    /// hundred.
    #[diesel(sql_type = BigInt)]
    running_bytes: i64,
}

impl TryFrom<EventRow> for LoggedEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let size = row.payload.len() + ENVELOPE_BYTES;
        let cursor = Cursor {
            transaction: row.transaction_id as u64,
            sequence: row.sequence,
        };
        let event = StoredEvent {
            event_id: row.event_id,
            account_id: row.account_id,
            event_type: row.event_type,
            created_at: row.created_at,
            version: row.version,
            payload: row.payload,
        }
        .into_event()?;
        Ok(LoggedEvent {
            size,
            cursor,
            event,
        })
    }
}

/// An event's columns as read, its payload still text.
pub(super) struct StoredEvent {
    pub event_id: Uuid,
    pub account_id: Uuid,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub version: String,
    pub payload: String,
}

impl StoredEvent {
    /// The event, or Corrupt when a column does not read.
    pub fn into_event(self) -> Result<Event, StoreError> {
        let event_type: EventType = self
            .event_type
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("event type {:?}", self.event_type)))?;
        let payload: EventPayload = serde_json::from_str(&self.payload)
            .map_err(|e| StoreError::Corrupt(format!("event {} payload: {e}", self.event_id)))?;
        Ok(Event {
            event_id: EventId(self.event_id),
            event_type,
            timestamp: self.created_at,
            account_id: AccountId(self.account_id),
            version: self.version,
            payload,
        })
    }
}

const EVENT_SELECT: &str = "SELECT transaction_id, sequence, event_id, account_id, event_type, \
     created_at, version, payload::text AS payload, 0::bigint AS running_bytes FROM events";

/// The columns of a page read, with the running size of its payloads.
const PAGE_SELECT: &str = "SELECT transaction_id, sequence, event_id, account_id, event_type, \
     created_at, version, payload::text AS payload, \
     sum(octet_length(payload::text)) OVER (ORDER BY transaction_id, sequence)::bigint \
         AS running_bytes FROM events";

/// Where the log stands for a reader right now.
#[derive(QueryableByName)]
struct Snapshot {
    /// The oldest transaction still running: every event of an older one is settled.
    #[diesel(sql_type = BigInt)]
    xmin: i64,
    /// The first transaction id not yet handed out: every transaction that committed before
    /// now is older.
    #[diesel(sql_type = BigInt)]
    xmax: i64,
}

async fn snapshot(conn: &mut AsyncPgConnection) -> Result<Snapshot, StoreError> {
    Ok(prepared(diesel::sql_query(
        "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, \
         pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_current_snapshot() s",
    ))
    .get_result::<Snapshot>(conn)
    .await?)
}

/// Reads events after `after` that match `filter`, for one tenant or (with `None`) for all,
/// within `limit`. Only settled events are returned, so no later commit can land before them.
pub async fn read_after(
    conn: &mut AsyncPgConnection,
    account_id: Option<AccountId>,
    after: Cursor,
    filter: &EventFilter,
    limit: PageLimit,
) -> Result<EventPage, StoreError> {
    // Taken before the read: every transaction below it had finished, so the read sees all of
    // their events.
    let snapshot = snapshot(conn).await?;
    let horizon = snapshot.xmin;
    let mut query = diesel::sql_query("SELECT * FROM (")
        .into_boxed()
        .sql(PAGE_SELECT)
        .sql(" WHERE (transaction_id, sequence) > ($1, $2) AND transaction_id < $3")
        .bind::<BigInt, _>(after.transaction as i64)
        .bind::<BigInt, _>(after.sequence)
        .bind::<BigInt, _>(horizon);
    let mut next = 4;
    let mut placeholder = || {
        next += 1;
        format!("${}", next - 1)
    };
    if let Some(account_id) = account_id {
        query = query
            .sql(format!(" AND account_id = {}", placeholder()))
            .bind::<diesel::sql_types::Uuid, _>(account_id.0);
    }
    if !filter.event_types.is_empty() {
        let types: Vec<String> = filter
            .event_types
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        query = query
            .sql(format!(" AND event_type = ANY({})", placeholder()))
            .bind::<Array<Text>, _>(types);
    }
    if let Some(customer_id) = filter.customer_id {
        query = query
            .sql(format!(" AND customer_id = {}", placeholder()))
            .bind::<diesel::sql_types::Uuid, _>(customer_id.0);
    }
    if let Some(external) = &filter.external_customer_id {
        query = query
            .sql(format!(" AND external_customer_id = {}", placeholder()))
            .bind::<Text, _>(external.clone());
    }
    if let Some(connection_id) = filter.connection_id {
        query = query
            .sql(format!(" AND connection_id = {}", placeholder()))
            .bind::<diesel::sql_types::Uuid, _>(connection_id.0);
    }
    // A row is in the page when the payloads before it are within the budget: the first row
    // always is. One text per combination of filters: few enough to keep each prepared.
    let query = query
        .sql(format!(
            " ORDER BY transaction_id, sequence LIMIT {}) page \
             WHERE running_bytes - octet_length(payload) < {}",
            placeholder(),
            placeholder()
        ))
        .bind::<BigInt, _>(limit.events)
        .bind::<BigInt, _>(limit.bytes as i64);
    let rows = prepared(query).load::<EventRow>(conn).await?;
    let full = rows.len() as i64 == limit.events
        || rows
            .last()
            .is_some_and(|row| row.running_bytes >= limit.bytes as i64);
    let events: Vec<LoggedEvent> = rows
        .into_iter()
        .map(LoggedEvent::try_from)
        .collect::<Result<_, _>>()?;
    // A full page stops at its last event; a short one scanned everything settled.
    let scanned_to = match events.last() {
        Some(last) if full => last.cursor,
        _ => Cursor::before_transaction(horizon as u64).max(after),
    };
    Ok(EventPage {
        events,
        scanned_to,
        full,
        next_transaction: snapshot.xmax as u64,
    })
}

/// One event of the tenant by id.
pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    event_id: EventId,
) -> Result<LoggedEvent, StoreError> {
    diesel::sql_query(format!(
        "{EVENT_SELECT} WHERE event_id = $1 AND account_id = $2"
    ))
    .bind::<diesel::sql_types::Uuid, _>(event_id.0)
    .bind::<diesel::sql_types::Uuid, _>(account_id.0)
    .get_result::<EventRow>(conn)
    .await?
    .try_into()
}

/// The channel on which replicas tell each other that events were committed.
pub const CHANNEL: &str = "linkstate_events";

/// Tells every replica listening on [`CHANNEL`] to read the log now; `sender` names the
/// replica that tells, so that it can ignore its own notification.
pub async fn notify_peers(conn: &mut AsyncPgConnection, sender: &str) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(CHANNEL)
        .bind::<diesel::sql_types::Text, _>(sender)
        .execute(conn)
        .await?;
    Ok(())
}

/// Subscribes `conn` to [`CHANNEL`]; its notifications then arrive on its notification stream.
pub async fn listen(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// The position after every settled event: where a live stream starts.
pub async fn head(conn: &mut AsyncPgConnection) -> Result<Cursor, StoreError> {
    Ok(Cursor::before_transaction(
        snapshot(conn).await?.xmin as u64,
    ))
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    transaction_id: i64,
    #[diesel(sql_type = BigInt)]
    sequence: i64,
}

impl From<Position> for Cursor {
    fn from(position: Position) -> Self {
        Cursor {
            transaction: position.transaction_id as u64,
            sequence: position.sequence,
        }
    }
}

/// The position up to which the log has been pruned: resuming before it would skip events.
pub async fn pruned_through(conn: &mut AsyncPgConnection) -> Result<Cursor, StoreError> {
    Ok(diesel::sql_query(
        "SELECT pruned_through_transaction AS transaction_id, pruned_through_sequence AS sequence \
         FROM event_log_horizon",
    )
    .get_result::<Position>(conn)
    .await?
    .into())
}

/// Deletes events appended before `cutoff`, at most `limit` of them, keeping the log a clean
/// suffix (everything up to one position goes); answers how many were deleted.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<usize, StoreError> {
    use diesel_async::AsyncConnection;
    conn.transaction::<_, StoreError, _>(async |conn| {
        // The newest old event among the oldest `limit`: the log is cut right after it.
        let boundary = diesel::sql_query(
            "SELECT transaction_id, sequence FROM ( \
                 SELECT transaction_id, sequence, created_at FROM events \
                 ORDER BY transaction_id, sequence LIMIT $2) oldest \
             WHERE created_at < $1 ORDER BY transaction_id DESC, sequence DESC LIMIT 1",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(cutoff)
        .bind::<BigInt, _>(limit)
        .get_result::<Position>(conn)
        .await
        .optional()?;
        let Some(boundary) = boundary else {
            return Ok(0);
        };
        let deleted =
            diesel::sql_query("DELETE FROM events WHERE (transaction_id, sequence) <= ($1, $2)")
                .bind::<BigInt, _>(boundary.transaction_id)
                .bind::<BigInt, _>(boundary.sequence)
                .execute(conn)
                .await?;
        diesel::sql_query(
            "UPDATE event_log_horizon SET pruned_through_transaction = $1, \
             pruned_through_sequence = $2 \
             WHERE (pruned_through_transaction, pruned_through_sequence) < ($1, $2)",
        )
        .bind::<BigInt, _>(boundary.transaction_id)
        .bind::<BigInt, _>(boundary.sequence)
        .execute(conn)
        .await?;
        Ok(deleted)
    })
    .await
}
