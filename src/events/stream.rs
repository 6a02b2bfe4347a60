//! One client's event stream: catch up from the table, then follow the hub, with heartbeats.

use std::time::Duration;

use futures::{Stream, StreamExt};
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc::error::TrySendError;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::hub::{Batch, EventHub, Route, RouteReceiver};
use crate::domain::cursor::Cursor;
use crate::domain::event_filter::EventFilter;
use crate::domain::ids::AccountId;
use crate::store::events::{self as event_store, EventPage, LoggedEvent, PageLimit};
use crate::store::{self, DbPool, StoreError};

/// Messages buffered per stream; a slow reader holds back only its own producer.
const STREAM_BUFFER: usize = 256;

/// Bytes of events buffered per stream at most, whatever their count: a stalled client of
/// large events holds this much of the server's memory, not 256 large events.
const STREAM_BUFFER_BYTES: usize = 1024 * 1024;

/// Events read per catch-up query: at most 500, and no more once their payloads reach 256 KiB
/// (a page of ordinary events is well under it). A stream catching up holds two pages: the one
/// it sends and the next.
const CATCH_UP_PAGE: PageLimit = PageLimit {
    events: 500,
    bytes: 256 * 1024,
};

/// What the channel to the client carries: the item, and its share of the stream's byte
/// budget, given back when the client takes it.
type Buffered = (
    Result<StreamItem, StreamError>,
    Option<OwnedSemaphorePermit>,
);

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Strictly after this cursor.
    After(Cursor),
    /// At the oldest retained event.
    Earliest,
    /// With events committed from now on.
    Live,
}

/// What a stream sends.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// A matching event.
    Event(Box<LoggedEvent>),
    /// Nothing matched for a while; resuming after this cursor skips nothing.
    Heartbeat(Cursor),
}

/// Why a stream ended before its client left.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The process is stopping; the client resumes on another replica after its last cursor.
    #[error("the server is shutting down; reconnect and resume after your last cursor")]
    ShuttingDown,
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one stream asks for.
#[derive(Clone, Debug)]
pub struct StreamRequest {
    /// The tenant whose events it sees.
    pub account_id: AccountId,
    /// Where it starts.
    pub start: StartAt,
    /// Which events it wants.
    pub filter: EventFilter,
    /// How often to send a heartbeat.
    pub heartbeat: Duration,
}

/// Starts a stream in the place `slot` holds; it ends when the client stops reading, the
/// database fails, or the process shuts down (then at once, with [`StreamError::ShuttingDown`],
/// even if the client has not read what is buffered).
pub fn open(
    slot: impl Send + 'static,
    pool: DbPool,
    hub: EventHub,
    request: StreamRequest,
) -> impl Stream<Item = Result<StreamItem, StreamError>> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let shutdown = hub.clone();
    tokio::spawn(async move {
        // The stream's place under the server's limit, given back when the producer ends.
        let _slot = slot;
        let producer = Producer {
            pool,
            hub,
            request,
            tx: tx.clone(),
            bytes: Arc::new(Semaphore::new(STREAM_BUFFER_BYTES)),
        };
        if let Err(error) = producer.run().await {
            let _ = tx.send((Err(error.into()), None)).await;
        }
    });
    let closed = shutdown.clone();
    ReceiverStream::new(rx)
        .map(|(item, _bytes)| item)
        .take_until(async move { closed.closed().await })
        .chain(
            futures::stream::once(async move { shutdown.is_closed() }).filter_map(
                |closed| async move { closed.then_some(Err(StreamError::ShuttingDown)) },
            ),
        )
}

struct Producer {
    pool: DbPool,
    hub: EventHub,
    request: StreamRequest,
    tx: mpsc::Sender<Buffered>,
    /// The stream's byte budget: an event takes its size from it until the client reads it.
    bytes: Arc<Semaphore>,
}

/// The client went away, or the process is shutting down (the stream says so itself): stop
/// quietly.
struct Gone;

/// What following the route did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taken {
    /// The stream is where the route is.
    Followed,
    /// The stream missed part of the route: the table has it.
    Gap,
    /// The client went away.
    Gone,
}

impl Producer {
    async fn run(self) -> Result<(), StoreError> {
        // Subscribe before the first read, so nothing committed in between is missed.
        let mut batches = self.hub.subscribe_route(Route {
            account_id: self.request.account_id,
            customer_id: self.request.filter.customer_id,
        });
        let mut position = self.start_position().await?;
        let mut heartbeat = tokio::time::interval(self.request.heartbeat);
        heartbeat.tick().await;
        // Made once: a stream passes through the loop below for every batch of its route.
        let client_gone = self.tx.closed();
        let shutting_down = self.hub.closed();
        tokio::pin!(client_gone, shutting_down);
        'catch_up: loop {
            match self.catch_up(&mut position).await? {
                Ok(()) => {}
                Err(Gone) => return Ok(()),
            }
            loop {
                let taken = tokio::select! {
                    _ = &mut client_gone => return Ok(()),
                    _ = &mut shutting_down => return Ok(()),
                    _ = heartbeat.tick() => self.heartbeat(&mut batches, &mut position).await,
                    received = batches.recv() => match received {
                        Ok(batch) => self.take(&batch, &mut position).await,
                        Err(RecvError::Lagged(_)) => Taken::Gap,
                        Err(RecvError::Closed) => return Ok(()),
                    },
                };
                match taken {
                    Taken::Followed => {}
                    // The table knows what the broadcast skipped.
                    Taken::Gap => continue 'catch_up,
                    Taken::Gone => return Ok(()),
                }
            }
        }
    }

    /// Sends the batch's events that the stream wants and moves past it; a batch that starts
    /// past the stream's position leaves a gap to read from the table.
    async fn take(&self, batch: &Batch, position: &mut Cursor) -> Taken {
        if batch.from > *position {
            return Taken::Gap;
        }
        for logged in &batch.events {
            if logged.cursor <= *position {
                continue;
            }
            if self.wants(logged)
                && self
                    .send(StreamItem::Event(Box::new(logged.clone())))
                    .await
                    .is_err()
            {
                return Taken::Gone;
            }
            *position = logged.cursor;
        }
        *position = (*position).max(batch.to);
        Taken::Followed
    }

    /// Sends a heartbeat at the hub's position when the stream has taken in everything sent to
    /// it up to there: a quiet route sees no batches, and its cursor must still move on.
    async fn heartbeat(&self, batches: &mut RouteReceiver, position: &mut Cursor) -> Taken {
        // Read before looking at what is waiting: whatever the hub sent up to it is waiting.
        let published = self.hub.published();
        loop {
            let taken = match batches.try_recv() {
                Ok(batch) => self.take(&batch, position).await,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => Taken::Gap,
                Err(TryRecvError::Closed) => Taken::Gone,
            };
            if taken != Taken::Followed {
                return taken;
            }
        }
        if let Some(published) = published {
            *position = (*position).max(published);
        }
        match self.send(StreamItem::Heartbeat(*position)).await {
            Ok(()) => Taken::Followed,
            Err(Gone) => Taken::Gone,
        }
    }

    async fn start_position(&self) -> Result<Cursor, StoreError> {
        match self.request.start {
            StartAt::After(cursor) => Ok(cursor),
            StartAt::Earliest => Ok(Cursor::START),
            StartAt::Live => {
                let mut conn = store::connect(&self.pool).await?;
                event_store::head(&mut conn).await
            }
        }
    }

    /// Reads the table from `position` until it has sent everything settled. The next page is
    /// read while the current one is sent: a stream far behind then waits on the database or
    /// on its client, not on both in turn, and holds at most two pages.
    async fn catch_up(&self, position: &mut Cursor) -> Result<Result<(), Gone>, StoreError> {
        let mut page = self.read_page(*position).await?;
        loop {
            let end = page.scanned_to.max(*position);
            if !page.full {
                let sent = self.send_page(page.events, position).await;
                *position = end;
                return Ok(sent);
            }
            let (sent, next) =
                tokio::join!(self.send_page(page.events, position), self.read_page(end));
            if sent.is_err() {
                return Ok(Err(Gone));
            }
            *position = end;
            page = next?;
        }
    }

    /// One page of the stream's events after `from`, on a connection of its own that is given
    /// back before the page is sent: never held while a slow client reads.
    async fn read_page(&self, from: Cursor) -> Result<EventPage, StoreError> {
        let mut conn = store::connect(&self.pool).await?;
        event_store::read_after(
            &mut conn,
            Some(self.request.account_id),
            from,
            &self.request.filter,
            CATCH_UP_PAGE,
        )
        .await
    }

    /// Sends a page's events in order, moving `position` with each.
    async fn send_page(&self, events: Vec<LoggedEvent>, position: &mut Cursor) -> Result<(), Gone> {
        for logged in events {
            let cursor = logged.cursor;
            self.send(StreamItem::Event(Box::new(logged))).await?;
            *position = cursor;
        }
        Ok(())
    }

    fn wants(&self, logged: &LoggedEvent) -> bool {
        logged.event.account_id == self.request.account_id
            && self.request.filter.matches(&logged.event)
    }

    async fn send(&self, item: StreamItem) -> Result<(), Gone> {
        let permit = self.reserve(&item).await?;
        // Without waiting while there is room, which is nearly always.
        let buffered = match self.tx.try_send((Ok(item), permit)) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(Gone),
            Err(TrySendError::Full(buffered)) => buffered,
        };
        tokio::select! {
            sent = self.tx.send(buffered) => sent.map_err(|_| Gone),
            _ = self.hub.closed() => Err(Gone),
        }
    }

    /// The item's share of the byte budget, waited for while the client has not read enough
    /// of what is buffered; heartbeats take none.
    async fn reserve(&self, item: &StreamItem) -> Result<Option<OwnedSemaphorePermit>, Gone> {
        let StreamItem::Event(logged) = item else {
            return Ok(None);
        };
        let share = logged.size.min(STREAM_BUFFER_BYTES) as u32;
        if let Ok(permit) = self.bytes.clone().try_acquire_many_owned(share) {
            return Ok(Some(permit));
        }
        tokio::select! {
            permit = self.bytes.clone().acquire_many_owned(share) => permit.map(Some).map_err(|_| Gone),
            _ = self.tx.closed() => Err(Gone),
            _ = self.hub.closed() => Err(Gone),
        }
    }
}
