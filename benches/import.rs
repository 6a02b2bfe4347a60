//! Import throughput: 100 Plaid items against the simulator at 50 ms per Plaid call.
//!
//! Prints a table: one ImportConnections call of 100 items (bounded concurrency), against the
//! same items imported one request at a time, in the same run, on the same database.
//! Run: `cargo bench --bench import` (uses DATABASE_URL if set, else the embedded test cluster).

use std::time::{Duration, Instant};

use linkstate::proto;
use linkstate_testing::{TestApp, authed, imported};

const ITEMS: usize = 100;
const LATENCY: Duration = Duration::from_millis(50);

fn items(app: &TestApp) -> Vec<proto::ImportConnection> {
    (0..ITEMS)
        .map(|i| {
            let item = app.sim.create_item("ins_109508");
            proto::ImportConnection {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: format!("customer-{i}"),
                access_token: item.access_token.expose().into(),
                ..Default::default()
            }
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = TestApp::start_unlimited().await;
        let (_, key) = app.account("bench").await;
        app.sim.set_latency(LATENCY);
        let mut client = app.connections().await;

        let batch = items(&app);
        let started = Instant::now();
        let response = client
            .import_connections(authed(
                &key,
                proto::ImportConnectionsRequest {
                    connections: batch,
                    ..Default::default()
                },
            ))
            .await
            .expect("import")
            .into_inner();
        let concurrent = started.elapsed();
        assert_eq!(imported(&response), ITEMS);

        let one_by_one = items(&app);
        let started = Instant::now();
        for item in one_by_one {
            let response = client
                .import_connections(authed(
                    &key,
                    proto::ImportConnectionsRequest {
                        connections: vec![item],
                        ..Default::default()
                    },
                ))
                .await
                .expect("import")
                .into_inner();
            assert_eq!(imported(&response), 1);
        }
        let sequential = started.elapsed();

        println!(
            "\nImport of {ITEMS} Plaid items, simulator latency {} ms per call\n",
            LATENCY.as_millis()
        );
        println!("| how | wall time | items/s |");
        println!("|---|---:|---:|");
        for (how, took) in [
            (
                "one request of 100 items (linkstate, 16 at a time)",
                concurrent,
            ),
            (
                "baseline: 100 requests of 1 item, one after another",
                sequential,
            ),
        ] {
            println!(
                "| {how} | {:.2} s | {:.0} |",
                took.as_secs_f64(),
                ITEMS as f64 / took.as_secs_f64()
            );
        }
        println!(
            "\nspeed-up: {:.1}x",
            sequential.as_secs_f64() / concurrent.as_secs_f64()
        );
        app.stop().await;
    });
}
