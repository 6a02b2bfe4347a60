//! One tail reader per process that fans new events out to every live stream.
//!
//! Streams do not each poll the database: the hub reads the log once and broadcasts batches, so
//! database load does not grow with the number of subscribers. The table stays the truth: a
//! stream that falls behind the broadcast, or starts from an old cursor, reads the table itself.
//!
//! Routing: a stream follows one route, its tenant's events or one customer's of them, and the
//! hub sends each route only the events on it. Ten thousand streams of one customer each are
//! then not all woken for every event, only the one whose customer it is; a stream's heartbeat
//! takes the hub's position instead, once it has taken in what was sent to it.
//!
//! Wake-ups: a writer in this process wakes the hub directly; once the hub has read what such a
//! writer committed it tells the other replicas with one NOTIFY (see [`super::listener`]), and a
//! poll catches whatever no wake-up announced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::domain::cursor::Cursor;
use crate::domain::event::Event;
use crate::domain::event_filter::EventFilter;
use crate::domain::ids::{AccountId, CustomerId};
use crate::store::events::{self as event_store, LoggedEvent, PageLimit};
use crate::store::{self, DbPool};

/// How many batches the dispatcher may fall behind the whole log's broadcast before it misses
/// a wake-up (it reads the table itself, so a miss costs nothing but a poll's delay).
const BROADCAST_CAPACITY: usize = 32;

/// How many of its route's batches a slow stream may fall behind before it reads the table
/// instead. Each route keeps its own unread batches, so with [`TAIL_PAGE`] this bounds what a
/// stalled stream's route holds to 8 batches of at most 256 KiB of payloads: 2 MiB, besides the
/// stream's own 1 MiB buffer, however many routes are stalled.
const ROUTE_CAPACITY: usize = 8;

/// Events read per query while tailing: at most 500, and no more once their payloads reach
/// 256 KiB.
const TAIL_PAGE: PageLimit = PageLimit {
    events: 500,
    bytes: 256 * 1024,
};

/// How soon the hub first looks again for a write of this process that was not settled yet;
/// the wait doubles up to [`NOT_YET_MAX`]. What holds a write back is most often another
/// single statement (a job claim, a delivery recorded) that ends within a millisecond; those
/// wake nobody when they commit, so a first look 10 ms later was 10 ms of every such event's
/// latency.
const NOT_YET_RETRY: Duration = Duration::from_millis(1);

/// The longest wait between looks for an unsettled write (the poll interval, when shorter).
/// A transaction open anywhere in the cluster holds the horizon back, be it seconds.
const NOT_YET_MAX: Duration = Duration::from_millis(250);

/// What one read of the tail found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Everything that was announced, or nothing was.
    Done,
    /// This process announced a write that is not settled yet.
    NotYet,
}

/// A contiguous stretch of the log: every event after `from` up to `to`, for all tenants.
#[derive(Debug)]
pub struct Batch {
    /// The position the stretch starts after.
    pub from: Cursor,
    /// The position the stretch ends at (scanned, whether or not an event sits there).
    pub to: Cursor,
    /// The events in the stretch, in log order.
    pub events: Vec<LoggedEvent>,
}

/// What a stream follows: one tenant's events, or one customer's of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The tenant.
    pub account_id: AccountId,
    /// Only this customer's events, when set.
    pub customer_id: Option<CustomerId>,
}

impl Route {
    /// The routes `event` travels on: its tenant's, and its customer's when it has one.
    fn of(event: &Event) -> impl Iterator<Item = Route> {
        let account_id = event.account_id;
        std::iter::once(Route {
            account_id,
            customer_id: None,
        })
        .chain(event.payload.customer_id.map(|customer_id| Route {
            account_id,
            customer_id: Some(customer_id),
        }))
    }
}

/// The routes streams follow now, and how far the hub has sent on them.
#[derive(Default)]
struct Routes {
    /// Every event at or before it has been sent on its routes; None before the first read.
    published: Option<Cursor>,
    channels: HashMap<Route, RouteChannel>,
}

/// One route's channel.
struct RouteChannel {
    sender: broadcast::Sender<Arc<Batch>>,
    /// The end of the last batch sent on it, where its next one starts; None when nothing was
    /// published before it was opened.
    sent_to: Option<Cursor>,
}

/// A stream's receiver on its route; the route's channel is closed with its last receiver.
pub struct RouteReceiver {
    receiver: broadcast::Receiver<Arc<Batch>>,
    route: Route,
    hub: EventHub,
}

impl RouteReceiver {
    /// The next batch of the route, waiting for it.
    pub async fn recv(&mut self) -> Result<Arc<Batch>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }

    /// The next batch of the route if one is waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Batch>, broadcast::error::TryRecvError> {
        self.receiver.try_recv()
    }
}

impl Drop for RouteReceiver {
    fn drop(&mut self) {
        let mut routes = self.hub.routes();
        // This receiver still counts: it is the last one when the count is one.
        if routes
            .channels
            .get(&self.route)
            .is_some_and(|channel| channel.sender.receiver_count() <= 1)
        {
            routes.channels.remove(&self.route);
        }
    }
}

/// The hub's handle, cloned into every stream and writer.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Names this process in its notifications, so that it ignores its own.
    instance: String,
    wake: Notify,
    /// A writer of this process committed events that other replicas have not been told about.
    owe_peers: AtomicBool,
    /// Every batch, for readers of the whole log (the outbound dispatcher).
    batches: broadcast::Sender<Arc<Batch>>,
    routes: Mutex<Routes>,
    poll_interval: Duration,
    shutdown: CancellationToken,
}

impl EventHub {
    /// A hub that also polls every `poll_interval`, for writes that no wake-up announced, and
    /// whose streams end when `shutdown` is cancelled.
    pub fn new(poll_interval: Duration, shutdown: CancellationToken) -> Self {
        let (batches, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                instance: uuid::Uuid::new_v4().simple().to_string(),
                wake: Notify::new(),
                owe_peers: AtomicBool::new(false),
                batches,
                routes: Mutex::new(Routes::default()),
                poll_interval,
                shutdown,
            }),
        }
    }

    /// Says that this process committed events, so the tail reader looks now rather than at
    /// its next poll, and then tells the other replicas.
    pub fn wake(&self) {
        self.inner.owe_peers.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }

    /// The name this process gives in its notifications to the other replicas.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Says that another replica committed events (or may have, while nobody listened).
    pub fn wake_for_peer(&self) {
        self.inner.wake.notify_one();
    }

    /// Receives every batch read from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.inner.batches.subscribe()
    }

    /// Receives the events of `route` read from now on, in batches that each say which stretch
    /// of the log they cover; a gap between two means the receiver lagged.
    pub fn subscribe_route(&self, route: Route) -> RouteReceiver {
        let mut routes = self.routes();
        let published = routes.published;
        let channel = routes
            .channels
            .entry(route)
            .or_insert_with(|| RouteChannel {
                sender: broadcast::channel(ROUTE_CAPACITY).0,
                sent_to: published,
            });
        RouteReceiver {
            receiver: channel.sender.subscribe(),
            route,
            hub: self.clone(),
        }
    }

    /// Where the hub has read to: every event at or before it has been sent on its routes, so
    /// a receiver that then finds nothing waiting has seen all of its route up to it.
    pub fn published(&self) -> Option<Cursor> {
        self.routes().published
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.inner
            .routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends each route that streams follow its part of `batch`, then publishes its end.
    fn route(&self, batch: &Batch) {
        let mut routes = self.routes();
        let mut parts: HashMap<Route, Vec<LoggedEvent>> = HashMap::new();
        for logged in &batch.events {
            for route in Route::of(&logged.event) {
                if routes.channels.contains_key(&route) {
                    parts.entry(route).or_default().push(logged.clone());
                }
            }
        }
        for (route, events) in parts {
            let channel = routes.channels.get_mut(&route).expect("a followed route");
            let part = Batch {
                from: channel.sent_to.unwrap_or(batch.from),
                to: batch.to,
                events,
            };
            channel.sent_to = Some(batch.to);
            // A route without receivers left is removed by its last one.
            let _ = channel.sender.send(Arc::new(part));
        }
        routes.published = Some(batch.to);
    }

    /// Resolves when the process shuts down; streams then end so clients reconnect elsewhere.
    pub async fn closed(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// Whether the process is shutting down.
    pub fn is_closed(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Tails the log until shutdown, broadcasting what it reads.
    pub async fn run(self, pool: DbPool) {
        let shutdown = self.inner.shutdown.clone();
        let mut position = None;
        let mut owed = None;
        let mut retry = NOT_YET_RETRY;
        loop {
            let pending = match self.tail_once(&pool, &mut position, &mut owed).await {
                Ok(read) => read == Read::NotYet,
                Err(error) => {
                    tracing::warn!(%error, "event hub could not read the log");
                    false
                }
            };
            // A write of ours not settled yet (an older transaction is still open somewhere in
            // the cluster) is looked for again soon rather than at the next poll, until it is.
            let pause = if pending {
                let pause = retry.min(self.inner.poll_interval);
                retry = (retry * 2).min(NOT_YET_MAX);
                pause
            } else {
                retry = NOT_YET_RETRY;
                self.inner.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Reads everything settled after `position` and broadcasts it. `owed` is the transaction
    /// id the log must be settled up to before the other replicas are told: writes of this
    /// process committed before it.
    async fn tail_once(
        &self,
        pool: &DbPool,
        position: &mut Option<Cursor>,
        owed: &mut Option<u64>,
    ) -> Result<Read, store::StoreError> {
        let mut conn = store::connect(pool).await?;
        let mut from = match *position {
            Some(cursor) => cursor,
            None => event_store::head(&mut conn).await?,
        };
        // Taken before the first page's snapshot, which then names a transaction id above
        // every write announced so far; a wake that comes later is owed at the next read.
        let mut newly_owed = self.inner.owe_peers.swap(false, Ordering::AcqRel);
        loop {
            let read =
                event_store::read_after(&mut conn, None, from, &EventFilter::default(), TAIL_PAGE)
                    .await;
            if newly_owed {
                newly_owed = false;
                match &read {
                    Ok(page) => {
                        let next = page.next_transaction;
                        *owed = Some(owed.map_or(next, |owed| owed.max(next)));
                    }
                    Err(_) => self.inner.owe_peers.store(true, Ordering::Release),
                }
            }
            let page = read?;
            let full = page.full;
            if page.scanned_to > from {
                let batch = Batch {
                    from,
                    to: page.scanned_to,
                    events: page.events,
                };
                self.route(&batch);
                // No receivers is fine: nobody is streaming right now.
                let _ = self.inner.batches.send(Arc::new(batch));
                from = page.scanned_to;
            }
            *position = Some(from);
            if !full {
                break;
            }
        }
        match *owed {
            Some(next) if from < Cursor::before_transaction(next) => Ok(Read::NotYet),
            Some(_) => {
                // One NOTIFY per batch, not one per writing transaction: NOTIFY serializes
                // commits.
                event_store::notify_peers(&mut conn, &self.inner.instance).await?;
                *owed = None;
                Ok(Read::Done)
            }
            None => Ok(Read::Done),
        }
    }
}
