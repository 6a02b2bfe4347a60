//! A real `linkstate serve` under what production clients do to it: large events and stalled
//! streams (memory bounded in bytes and returned), slow HTTP clients (cut off), many gRPC calls
//! on one connection (bounded), and what it logs and exports meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::process::{Service, Setup, free_port};
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures::StreamExt;
use linkstate::domain::event::{EventPayload, EventType, NewEvent};
use linkstate::domain::ids::{AccountId, ConnectionId, CustomerId};
use linkstate::proto;
use linkstate::store::{self, DbPool, StoreError, events};
use linkstate_testing::authed;

/// `n` CONNECTION_FAILED events of about `bytes` each, written as a replica's writer would.
async fn write_large_events(pool: &DbPool, account: AccountId, n: usize, bytes: usize) {
    let details: serde_json::Map<String, serde_json::Value> =
        [("payload".to_string(), "x".repeat(bytes).into())]
            .into_iter()
            .collect();
    let event = NewEvent {
        event_type: EventType::BankLinkingConnectionFailed,
        payload: EventPayload {
            customer_id: Some(CustomerId::generate()),
            connection_id: Some(ConnectionId::generate()),
            reason: Some("UNFORESEEN".into()),
            service_provider_details: details,
            ..EventPayload::default()
        },
    };
    let mut conn = store::connect(pool).await.unwrap();
    for _ in 0..n {
        conn.transaction::<_, StoreError, _>(async |conn| {
            events::append(conn, account, std::slice::from_ref(&event)).await?;
            Ok(())
        })
        .await
        .unwrap();
        events::notify_peers(&mut conn, "test-writer")
            .await
            .unwrap();
    }
}

async fn stream(
    service: &Service,
    key: &str,
    from_earliest: bool,
) -> tonic::Streaming<proto::StreamEventsResponse> {
    proto::event_service_client::EventServiceClient::new(service.channel().await)
        .stream_events(authed(
            key,
            proto::StreamEventsRequest {
                from_earliest,
                heartbeat_seconds: 3600,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Samples the RSS of `pid` every 20 ms into `peak` until aborted.
fn sample_peak(pid: u32, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            peak.fetch_max(common::process::rss_kib(pid), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_past_stalled_and_catching_up_streams_take_bounded_memory_that_returns() {
    const EVENTS: usize = 100;
    const EVENT_BYTES: usize = 60_000;
    let setup = Setup::new().await;
    let service = setup.start(&[]).await;
    let (account, key) = setup.api_key().await;
    // Warm up: one stream opened, read and closed.
    write_large_events(&setup.pool, account, 1, 10).await;
    {
        let mut warm = stream(&service, &key, true).await;
        warm.next().await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = service.rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = sample_peak(service.pid(), peak.clone());

    // Twenty live streams that never read, then 6 MB of events written past them.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stream(&service, &key, false).await);
    }
    write_large_events(&setup.pool, account, EVENTS, EVENT_BYTES).await;
    // A hundred streams that catch up over all of it, at once.
    let readers = (0..100).map(|_| {
        let (service_channel, key) = (service.channel(), key.clone());
        async move {
            let mut stream =
                proto::event_service_client::EventServiceClient::new(service_channel.await)
                    .stream_events(authed(
                        &key,
                        proto::StreamEventsRequest {
                            from_earliest: true,
                            heartbeat_seconds: 3600,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
            let mut read = 0;
            while read < EVENTS + 1 {
                match stream.next().await {
                    Some(Ok(proto::StreamEventsResponse {
                        message: Some(proto::stream_events_response::Message::Event(_)),
                    })) => read += 1,
                    Some(Ok(_)) => {}
                    other => panic!("catch-up stream ended after {read}: {other:?}"),
                }
            }
            read
        }
    });
    let read: Vec<usize> = futures::future::join_all(readers).await;
    assert!(read.iter().all(|&n| n == EVENTS + 1));
    drop(stalled);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.abort();
    let peak = AtomicU64::load(&peak, Ordering::Relaxed);
    let after = service.rss_kib();
    println!(
        "server RSS: {before} KiB before, {peak} KiB at most with 20 stalled and 100 catching-up \
         streams over {EVENTS} events of {EVENT_BYTES} bytes, {after} KiB after they ended"
    );
    assert!(
        peak < before + 96 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    assert!(
        after < before + 16 * 1024,
        "RSS stayed at {after} KiB after the streams ended (from {before} KiB)"
    );
}

/// A raw HTTP/1.1 connection to the service, with a read timeout.
fn raw(service: &Service) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", service.http)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp
}

/// Reads until the server closes; answers what it sent and how long it took.
fn until_closed(mut tcp: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_clients_are_cut_off_and_connections_are_capped() {
    let setup = Setup::new().await;
    let service = setup
        .start(&[
            ("LINKSTATE_HTTP_HEADER_TIMEOUT", "1s"),
            ("LINKSTATE_HTTP_BODY_TIMEOUT", "1s"),
            ("LINKSTATE_HTTP_IDLE_TIMEOUT", "2s"),
            ("LINKSTATE_HTTP_MAX_CONNECTIONS", "4"),
        ])
        .await;
    let (head, body) = tokio::task::spawn_blocking({
        let (first, second) = (raw(&service), raw(&service));
        move || {
            // Headers that never end.
            let mut first = first;
            first
                .write_all(b"POST /webhooks/plaid HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n")
                .unwrap();
            // Headers, then a body that never comes.
            let mut second = second;
            second
                .write_all(
                    b"POST /webhooks/plaid HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{",
                )
                .unwrap();
            let head = std::thread::spawn(move || until_closed(first));
            let body = until_closed(second);
            (head.join().unwrap(), body)
        }
    })
    .await
    .unwrap();
    println!(
        "headers cut off after {:?}, body after {:?}",
        head.1, body.1
    );
    assert!(head.1 < Duration::from_secs(5), "held {:?}", head.1);
    assert!(body.1 < Duration::from_secs(5), "held {:?}", body.1);
    assert!(!body.0.starts_with("HTTP/1.1 200"), "{}", body.0);

    // Four connections that send nothing take every place: a fifth waits until the header
    // timeout frees one.
    let held: Vec<TcpStream> = (0..4).map(|_| raw(&service)).collect();
    let waited = tokio::task::spawn_blocking({
        let port = service.http;
        move || {
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            let mut fifth = TcpStream::connect(("127.0.0.1", port)).unwrap();
            fifth
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            fifth.read_to_string(&mut answer).unwrap();
            (answer, started.elapsed())
        }
    })
    .await
    .unwrap();
    drop(held);
    println!("a fifth connection was answered after {:?}", waited.1);
    assert!(waited.0.starts_with("HTTP/1.1 200"), "{}", waited.0);
    assert!(
        waited.1 >= Duration::from_millis(500),
        "answered at once, {:?}: the cap did not hold",
        waited.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_one_grpc_connection_are_bounded() {
    let setup = Setup::new().await;
    let service = setup
        .start(&[("LINKSTATE_GRPC_MAX_CONCURRENT_STREAMS", "2")])
        .await;
    let (_, key) = setup.api_key().await;
    let channel = service.channel().await;
    let open = || {
        let (channel, key) = (channel.clone(), key.clone());
        async move {
            proto::event_service_client::EventServiceClient::new(channel)
                .stream_events(authed(
                    &key,
                    proto::StreamEventsRequest {
                        heartbeat_seconds: 3600,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = open().await;
    let _second = open().await;
    let third = tokio::spawn(open());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third call ran beside two");
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third).await;
    assert!(third.is_ok(), "the third call ran once one ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_calls_span_and_metrics_are_served_from_memory() {
    let setup = Setup::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("json.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (account, key) = setup.api_key().await;
    let service = setup.replicas.start_logging(
        free_port(),
        free_port(),
        &[("LINKSTATE_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        log,
    );
    service.wait_ready().await;
    let missing = uuid::Uuid::now_v7().to_string();
    let refused =
        proto::connection_service_client::ConnectionServiceClient::new(service.channel().await)
            .get_connection(authed(
                &key,
                proto::GetConnectionRequest {
                    connection_id: missing,
                },
            ))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);

    // gRPC server metrics, under their usual names.
    let metrics_url = format!("http://127.0.0.1:{}/metrics", service.http);
    let metrics = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handled = "grpc_server_handled_total{grpc_service=\"linkstate.v1.ConnectionService\",\
                   grpc_method=\"GetConnection\",grpc_code=\"NOT_FOUND\"} 1";
    assert!(metrics.contains(handled), "{metrics}");
    assert!(
        metrics.contains(
            "grpc_server_handling_seconds_count{grpc_service=\"linkstate.v1.ConnectionService\",\
             grpc_method=\"GetConnection\"} 1"
        ),
        "{metrics}"
    );

    // Scrapes cost the database nothing: 300 of them against the transactions it counted.
    let commits = || async {
        #[derive(diesel::QueryableByName)]
        struct Commits {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut conn = store::connect(&setup.pool).await.unwrap();
        diesel::sql_query(
            "SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()",
        )
        .get_result::<Commits>(&mut conn)
        .await
        .unwrap()
        .n
    };
    let before = commits().await;
    let client = reqwest::Client::new();
    for _ in 0..300 {
        client.get(&metrics_url).send().await.unwrap();
    }
    let during = commits().await - before;
    println!("transactions while /metrics was scraped 300 times: {during}");
    assert!(during < 150, "{during} transactions");

    service.signal("TERM");
    let mut service = service;
    service.wait_exit(Duration::from_secs(15)).unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(&key), "the API key is never logged");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let call = lines
        .iter()
        .find(|line| line["span"]["name"] == "grpc")
        .unwrap_or_else(|| panic!("no gRPC call logged: {text}"));
    assert_eq!(
        call["span"]["method"],
        "/linkstate.v1.ConnectionService/GetConnection"
    );
    assert_eq!(call["span"]["account_id"], account.to_string());
    assert_eq!(call["span"]["code"], "NOT_FOUND");
    assert!(call["span"]["duration_ms"].as_f64().is_some(), "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_written_to_a_file_carry_no_colour_escapes() {
    let setup = Setup::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("text.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut service =
        setup
            .replicas
            .start_logging(free_port(), free_port(), &[("RUST_LOG", "info")], log);
    service.wait_ready().await;
    service.signal("TERM");
    service.wait_exit(Duration::from_secs(15)).unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("linkstate is serving"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in a log file: {text:?}"
    );
}

/// Forwards one TCP connection to `port`; counts the bytes the server sends back.
async fn counting_proxy(port: u16) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let from_server = Arc::new(AtomicU64::new(0));
    let counted = from_server.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        let mut buffer = [0u8; 4096];
        loop {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            counted.fetch_add(n as u64, Ordering::Relaxed);
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    });
    (proxy_port, from_server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_grpc_connections_are_pinged() {
    let setup = Setup::new().await;
    let service = setup.start(&[("LINKSTATE_GRPC_KEEPALIVE", "1s")]).await;
    let (_, key) = setup.api_key().await;
    let (port, from_server) = counting_proxy(service.grpc).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = proto::connection_service_client::ConnectionServiceClient::new(channel);
    let _ = client
        .list_connections(authed(&key, proto::ListConnectionsRequest::default()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_call = AtomicU64::load(&from_server, Ordering::Relaxed);
    // Idle: the only frames the server may send are its keep-alive PINGs (17 bytes each).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let pinged = AtomicU64::load(&from_server, Ordering::Relaxed) - after_call;
    println!("the server sent {pinged} bytes to an idle connection in 3.5 s");
    assert!(pinged >= 2 * 17, "{pinged} bytes: no keep-alive pings");
    drop(client);
}
