//! Real `linkstate serve` processes sharing one database: events cross replicas by
//! LISTEN/NOTIFY, a dead replica's claimed work is finished by another, SIGTERM ends streams
//! with UNAVAILABLE and gives unfinished jobs back, and a slow stream holds back only itself.

mod common;

use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};
use linkstate::domain::event::{EventPayload, EventType, NewEvent};
use linkstate::domain::ids::{AccountId, ConnectionId, CustomerId};
use linkstate::proto::{self, event::Type, stream_events_response::Message};
use linkstate::store::{self, DbPool, StoreError, events};
use linkstate_testing::authed;
use tokio_stream::StreamExt;
use tonic::Streaming;

use common::process::{Service, Setup};

impl Setup {
    /// Rows of `from_where` ("jobs WHERE ...").
    async fn count(&self, from_where: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = store::connect(&self.pool).await.unwrap();
        diesel::sql_query(format!("SELECT count(*) AS n FROM {from_where}"))
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n
    }

    /// Waits until `from_where` has `n` rows (`limit` at most).
    async fn wait_count(&self, from_where: &str, n: i64, limit: Duration) {
        let started = Instant::now();
        while self.count(from_where).await != n {
            assert!(
                started.elapsed() < limit,
                "{from_where}: not {n} in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Imports one simulator item through `service` and waits until it is aggregated.
    async fn import(&self, service: &Service, key: &str) -> String {
        let item = self.sim.create_item("ins_109508");
        let mut client =
            proto::connection_service_client::ConnectionServiceClient::new(service.channel().await);
        let response = client
            .import_connections(authed(
                key,
                proto::ImportConnectionsRequest {
                    connections: vec![common::plaid_item("customer-1", item.access_token.expose())],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(proto::import_result::Result::Connection(connection)) =
            response.results.into_iter().next().unwrap().result
        else {
            panic!("import failed");
        };
        self.wait_count(
            "events WHERE event_type = 'BANK_LINKING_TRANSACTIONS_AGGREGATED'",
            1,
            Duration::from_secs(10),
        )
        .await;
        // Plaid's acknowledgement of the webhook URL is processed too.
        self.wait_count("jobs WHERE dead_at IS NULL", 0, Duration::from_secs(10))
            .await;
        connection.id
    }
}

/// A live stream on `service`, open once its first heartbeat arrived: from then on, every
/// event committed is on it. (Before it, a live stream may also carry events that committed
/// while a transaction older than the stream was still open; they are skipped here.)
async fn live_stream(service: &Service, key: &str) -> Streaming<proto::StreamEventsResponse> {
    let mut client = proto::event_service_client::EventServiceClient::new(service.channel().await);
    let mut stream = client
        .stream_events(authed(
            key,
            proto::StreamEventsRequest {
                heartbeat_seconds: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    loop {
        match stream.next().await {
            Some(Ok(proto::StreamEventsResponse {
                message: Some(Message::Heartbeat(_)),
            })) => return stream,
            Some(Ok(_)) => {}
            other => panic!("stream ended before its first heartbeat: {other:?}"),
        }
    }
}

/// The next event of type `wanted` on `stream`, skipping others (`limit` at most).
async fn next_of(
    stream: &mut Streaming<proto::StreamEventsResponse>,
    wanted: Type,
    limit: Duration,
) -> proto::Event {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} in {limit:?}"));
        if let Some(Ok(proto::StreamEventsResponse {
            message: Some(Message::Event(event)),
        })) = message
        {
            if event.event_type == wanted as i32 {
                return event;
            }
        } else if !matches!(message, Some(Ok(_))) {
            panic!("stream ended before {wanted:?}: {message:?}");
        }
    }
}

/// Posts an ITEM webhook with `code` (and, for ERROR, `error_code`) for the connection's item,
/// signed as Plaid signs.
async fn item_webhook(
    setup: &Setup,
    service: &Service,
    connection_id: &str,
    code: &str,
    error_code: Option<&str>,
) {
    #[derive(QueryableByName)]
    struct Item {
        #[diesel(sql_type = diesel::sql_types::Text)]
        item_id: String,
    }
    let mut conn = store::connect(&setup.pool).await.unwrap();
    let item = diesel::sql_query(
        "SELECT provider_connection_id AS item_id FROM connections WHERE id = $1::uuid",
    )
    .bind::<diesel::sql_types::Text, _>(connection_id)
    .get_result::<Item>(&mut conn)
    .await
    .unwrap();
    let mut body = serde_json::json!({
        "webhook_type": "ITEM",
        "webhook_code": code,
        "item_id": item.item_id,
        "environment": "sandbox",
    });
    if let Some(error_code) = error_code {
        body["error"] = serde_json::json!({"error_type": "ITEM_ERROR", "error_code": error_code,
                                           "error_message": "simulated", "status": 400});
    }
    let body = serde_json::to_vec(&body).unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/webhooks/plaid", service.http))
        .header("Plaid-Verification", setup.sim.sign_webhook(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
}

/// Refreshes `products` (all with none given); answers the refresh's request id. A
/// balances-only refresh queues its aggregation without calling Plaid first.
async fn refresh(
    service: &Service,
    key: &str,
    connection_id: &str,
    products: &[proto::product::Value],
) -> String {
    let mut client =
        proto::connection_service_client::ConnectionServiceClient::new(service.channel().await);
    client
        .refresh_connection(authed(
            key,
            proto::RefreshConnectionRequest {
                connection_id: connection_id.into(),
                products: products.iter().map(|p| *p as i32).collect(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request_id
}

/// The same STATUS_CHANGE on both streams, within 5 s of `sent`: well before any poll.
async fn status_change_on_both(
    on_a: &mut Streaming<proto::StreamEventsResponse>,
    on_b: &mut Streaming<proto::StreamEventsResponse>,
    sent: Instant,
) {
    let limit = Duration::from_secs(5);
    let on_b = next_of(on_b, Type::BankLinkingConnectionStatusChange, limit).await;
    let on_a = next_of(on_a, Type::BankLinkingConnectionStatusChange, limit).await;
    assert_eq!(on_a.event_id, on_b.event_id);
    assert!(sent.elapsed() < limit, "took {:?}", sent.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_events_and_finish_the_work_of_one_that_died() {
    let setup = Setup::new().await;
    // The hubs poll once a minute: within this test only LISTEN/NOTIFY carries a write from one
    // replica to a stream on the other.
    let settings = [
        ("LINKSTATE_EVENT_POLL_INTERVAL", "60s"),
        ("LINKSTATE_JOB_LEASE", "2s"),
    ];
    let mut a = setup.start(&settings).await;
    let b = setup.start(&settings).await;
    let (_, key) = setup.api_key().await;
    let connection_id = setup.import(&a, &key).await;

    // A webhook into A. Either replica's worker may apply it; streams on both see the change,
    // so the one that did not apply it learned of it from the other's NOTIFY.
    let mut on_a = live_stream(&a, &key).await;
    let mut on_b = live_stream(&b, &key).await;
    let sent = Instant::now();
    // (The institution is down: DEGRADED, from which a refresh is still allowed.)
    item_webhook(
        &setup,
        &a,
        &connection_id,
        "ERROR",
        Some("INSTITUTION_DOWN"),
    )
    .await;
    status_change_on_both(&mut on_a, &mut on_b, sent).await;

    // Every listener loses its connection: each reopens it and reads the log, and the next
    // change again reaches both streams by notification.
    let terminated = setup
        .count(
            "pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %' \
             AND pg_terminate_backend(pid)",
        )
        .await;
    assert_eq!(terminated, 2, "one listener per replica");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    item_webhook(&setup, &a, &connection_id, "LOGIN_REPAIRED", None).await;
    status_change_on_both(&mut on_a, &mut on_b, sent).await;

    // A claims an aggregation (B is frozen meanwhile, so the claim can only be A's), and dies in
    // the middle of its slow provider calls.
    setup.sim.set_latency(Duration::from_secs(2));
    b.signal("STOP");
    let request_id = refresh(&a, &key, &connection_id, &[]).await;
    setup
        .wait_count(
            "jobs WHERE kind = 'aggregate' AND locked_until IS NOT NULL",
            1,
            Duration::from_secs(5),
        )
        .await;
    a.kill();
    setup.sim.set_latency(Duration::ZERO);
    b.signal("CONT");

    // B takes the job over once A's lease has run out, and finishes it; its stream says so.
    let updated = next_of(
        &mut on_b,
        Type::BankLinkingAccountsUpdated,
        Duration::from_secs(20),
    )
    .await;
    let payload = updated.payload.unwrap();
    assert_eq!(payload.request_id.as_deref(), Some(request_id.as_str()));
    setup
        .wait_count("jobs WHERE dead_at IS NULL", 0, Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_with_unavailable_and_gives_unfinished_jobs_back() {
    let setup = Setup::new().await;
    // A long lease: only being given back can free the job soon.
    let settings = [
        ("LINKSTATE_SHUTDOWN_GRACE", "5s"),
        ("LINKSTATE_JOB_LEASE", "10m"),
    ];
    let mut service = setup.start(&settings).await;
    let (_, key) = setup.api_key().await;
    let connection_id = setup.import(&service, &key).await;
    let mut stream = live_stream(&service, &key).await;

    // An aggregation stuck in a provider call far longer than the grace period (balances
    // only, so that the refresh call itself does not ask Plaid for anything).
    setup.sim.set_latency(Duration::from_secs(60));
    refresh(
        &service,
        &key,
        &connection_id,
        &[proto::product::Value::Balances],
    )
    .await;
    setup
        .wait_count(
            "jobs WHERE kind = 'aggregate' AND locked_until IS NOT NULL",
            1,
            Duration::from_secs(5),
        )
        .await;
    let terminated = Instant::now();
    service.signal("TERM");

    // The stream ends at once, with UNAVAILABLE and a message that says what to do.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends within 2 s of SIGTERM");
    let status = match ended {
        Some(Err(status)) => status,
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.message(),
        "the server is shutting down; reconnect and resume after your last cursor"
    );
    // It no longer accepts connections, while its job still has time to finish. The accept
    // loop stops on the same signal that ends the streams, so under load it may stop a moment
    // after the stream did: within a second.
    let mut refused = false;
    for _ in 0..20 {
        let connected =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", service.grpc))
                .unwrap()
                .connect()
                .await;
        if connected.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections are refused while draining");

    // It exits within the grace period, having given the unfinished job back: unclaimed, due
    // now, and the interrupted attempt not counted; the connection's lease is free too.
    let exited = service.wait_exit(Duration::from_secs(8)).expect("exits");
    assert!(
        terminated.elapsed() < Duration::from_secs(6),
        "exited {exited:?} after SIGTERM with a 5 s grace period"
    );
    assert_eq!(
        setup
            .count(
                "jobs WHERE kind = 'aggregate' AND locked_by IS NULL AND locked_until IS NULL \
                 AND attempts = 0 AND run_at <= now()"
            )
            .await,
        1
    );
    assert_eq!(
        setup
            .count("connections WHERE lease_owner IS NOT NULL")
            .await,
        0
    );

    // A job that can finish within the grace period does, before the process exits.
    setup.sim.set_latency(Duration::from_millis(300));
    let service = setup.start(&settings).await;
    setup
        .wait_count("jobs WHERE dead_at IS NULL", 0, Duration::from_secs(20))
        .await;
    let updated_before = setup
        .count("events WHERE event_type = 'BANK_LINKING_ACCOUNTS_UPDATED'")
        .await;
    let request_id = refresh(&service, &key, &connection_id, &[]).await;
    setup
        .wait_count(
            "jobs WHERE kind = 'aggregate' AND locked_until IS NOT NULL",
            1,
            Duration::from_secs(5),
        )
        .await;
    service.signal("TERM");
    let mut service = service;
    service.wait_exit(Duration::from_secs(8)).expect("exits");
    // (A webhook the refresh made Plaid send may have queued more work: it waits, unclaimed.)
    assert_eq!(
        setup
            .count("jobs WHERE locked_by IS NOT NULL AND dead_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        setup
            .count(&format!(
                "events WHERE event_type = 'BANK_LINKING_ACCOUNTS_UPDATED' \
                 AND payload->>'requestId' = '{request_id}'"
            ))
            .await,
        1
    );
    assert!(
        setup
            .count("events WHERE event_type = 'BANK_LINKING_ACCOUNTS_UPDATED'")
            .await
            > updated_before
    );
}

/// Events written straight to the log in transactions of `per_transaction`, as a replica's
/// writers would, each followed by the NOTIFY a replica's hub sends.
async fn write_events(pool: &DbPool, account: AccountId, total: usize, per_transaction: usize) {
    let connection = ConnectionId::generate();
    let customer = CustomerId::generate();
    let batch: Vec<NewEvent> = (0..per_transaction)
        .map(|_| NewEvent {
            event_type: EventType::BankLinkingAccountsUpdated,
            payload: EventPayload {
                customer_id: Some(customer),
                connection_id: Some(connection),
                ..EventPayload::default()
            },
        })
        .collect();
    let mut conn = store::connect(pool).await.unwrap();
    for _ in 0..total / per_transaction {
        conn.transaction::<_, StoreError, _>(async |conn| {
            events::append(conn, account, &batch).await?;
            Ok(())
        })
        .await
        .unwrap();
        events::notify_peers(&mut conn, "test-writer")
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_holds_back_only_itself_and_its_memory_stays_bounded() {
    const EVENTS: usize = 100_000;
    let setup = Setup::new().await;
    let service = setup.start(&[]).await;
    let (account, key) = setup.api_key().await;

    // One consumer reads five messages a second; another reads as fast as it can.
    let mut slow = live_stream(&service, &key).await;
    let mut fast = live_stream(&service, &key).await;
    let slow_reader = tokio::spawn(async move {
        let mut read = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match slow.next().await {
                Some(Ok(_)) => read += 1,
                other => panic!("slow stream ended: {other:?}"),
            }
        }
        (slow, read)
    });
    let fast_reader = tokio::spawn(async move {
        let mut events = 0;
        while events < EVENTS {
            match tokio::time::timeout(Duration::from_secs(30), fast.next()).await {
                Ok(Some(Ok(proto::StreamEventsResponse {
                    message: Some(Message::Event(_)),
                }))) => events += 1,
                Ok(Some(Ok(_))) => {}
                other => panic!("fast stream stopped after {events} events: {other:?}"),
            }
        }
        events
    });

    // The server's resident memory, sampled while the events are written and read.
    let before = service.rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = {
        let (service_pid, peak) = (service.pid(), peak.clone());
        tokio::spawn(async move {
            loop {
                let rss = common::process::rss_kib(service_pid);
                peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    write_events(&setup.pool, account, EVENTS, 100).await;
    let fast_got = fast_reader.await.unwrap();
    assert_eq!(
        fast_got, EVENTS,
        "the fast reader got every event while the slow one lagged"
    );
    let (slow, slow_read) = slow_reader.await.unwrap();
    sampling.abort();
    let peak = std::sync::atomic::AtomicU64::load(&peak, std::sync::atomic::Ordering::Relaxed);
    println!(
        "server RSS: {before} KiB before, {peak} KiB at most while {EVENTS} events were written \
         and one stream read 5 messages a second ({slow_read} read)"
    );
    // Were the slow stream's backlog buffered, 100,000 events would be well over 100 MiB.
    assert!(
        peak < before + 48 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );

    // The slow client goes away: its producer stops at once and its place is given back.
    drop(slow);
    let metrics = format!("http://127.0.0.1:{}/metrics", service.http);
    let started = Instant::now();
    loop {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if text.contains("linkstate_event_streams 0\n") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
