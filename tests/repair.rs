//! RepairConnection and duplicate connections, through the real gRPC listener, against the
//! simulator's Plaid.

mod common;

use common::*;
use linkstate::proto::{
    self, connection::Status as ConnStatus, connection::StatusReason, event::Type,
};
use linkstate_sim::SandboxItem;
use linkstate_testing::{TestApp, authed};
use tonic::Code;

/// Imports the item and waits until its first aggregation is written.
async fn imported(app: &TestApp, key: &str, item: &SandboxItem) -> proto::Connection {
    let connection = import(app, key, item).await;
    let id = connection.id.clone();
    events_until(app, key, |e| {
        e.iter().any(|e| {
            e.event_type == Type::BankLinkingTransactionsAggregated as i32
                && payload(e).connection_id.as_deref() == Some(id.as_str())
        })
    })
    .await;
    connection
}

async fn status_of(app: &TestApp, key: &str, id: &str) -> (i32, Option<i32>) {
    let connection = common::connection(app, key, id).await;
    (connection.status, connection.status_reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_after_the_login_was_fixed_makes_it_active_with_one_status_change() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = imported(&app, &key, &item).await;
    let plaid = app.app.ctx.plaid();
    plaid
        .sandbox_item_reset_login(&item.access_token)
        .await
        .unwrap();
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingCustomerActionRequired) == 1
    })
    .await;
    assert_eq!(
        status_of(&app, &key, &connection.id).await.0,
        ConnStatus::ReconnectRequired as i32
    );

    // The customer has not finished the update flow: Plaid still says so, nothing changes.
    let before = app.count("events").await;
    let jobs_before = app.count("jobs").await;
    let refused = repair(&app, &key, repair_of(&connection.id))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::FailedPrecondition,
        "Plaid still reports ITEM_LOGIN_REQUIRED for this item: the customer has not finished \
         the update flow; nothing changed",
    );
    assert_eq!(app.count("events").await, before);
    assert_eq!(app.count("jobs").await, jobs_before);
    assert_eq!(
        status_of(&app, &key, &connection.id).await,
        (
            ConnStatus::ReconnectRequired as i32,
            Some(StatusReason::LoginRequired as i32)
        )
    );

    app.sim.fix_login(&item.item_id);
    let repaired = repair(&app, &key, repair_of(&connection.id)).await.unwrap();
    assert_eq!(repaired.status, ConnStatus::Active as i32);
    assert_eq!(repaired.status_reason, None);
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 2
    })
    .await;
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == Type::BankLinkingConnectionStatusChange as i32)
        .map(|e| (payload(e).old_status, payload(e).new_status))
        .collect();
    assert_eq!(
        changes.last().copied(),
        Some((
            Some(ConnStatus::ReconnectRequired as i32),
            Some(ConnStatus::Active as i32)
        ))
    );
    let after_repair: Vec<_> = events
        .iter()
        .skip_while(|e| {
            !(e.event_type == Type::BankLinkingConnectionStatusChange as i32
                && payload(e).new_status == Some(ConnStatus::Active as i32))
        })
        .collect();
    assert_eq!(
        after_repair
            .iter()
            .filter(|e| e.event_type == Type::BankLinkingConnectionStatusChange as i32)
            .count(),
        1,
        "one STATUS_CHANGE"
    );
    let updating = after_repair
        .iter()
        .find(|e| e.event_type == Type::BankLinkingAccountsUpdating as i32)
        .expect("the repair's aggregation announces the accounts");
    assert!(
        payload(updating)
            .financial_accounts
            .iter()
            .all(|a| a.new_account == Some(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_after_new_accounts_available_marks_exactly_the_new_account() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = imported(&app, &key, &item).await;
    let new_account = app.sim.add_account(&item.item_id);
    let plaid = app.app.ctx.plaid();
    plaid
        .sandbox_item_fire_webhook(&item.access_token, "NEW_ACCOUNTS_AVAILABLE")
        .await
        .unwrap();
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingNewAccountsAvailable) == 1
    })
    .await;
    assert_eq!(
        status_of(&app, &key, &connection.id).await,
        (
            ConnStatus::Active as i32,
            Some(StatusReason::NewAccountsAvailable as i32)
        )
    );

    let repaired = repair(&app, &key, repair_of(&connection.id)).await.unwrap();
    assert_eq!(
        (repaired.status, repaired.status_reason),
        (ConnStatus::Active as i32, None)
    );
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdating) == 2
    })
    .await;
    let updating = events
        .iter()
        .rev()
        .find(|e| e.event_type == Type::BankLinkingAccountsUpdating as i32)
        .unwrap();
    let accounts = &payload(updating).financial_accounts;
    assert_eq!(accounts.len(), 6);
    let new: Vec<_> = accounts
        .iter()
        .filter(|a| a.new_account == Some(true))
        .collect();
    assert_eq!(new.len(), 1, "exactly the one account shared since");
    let stored = financial_accounts(&app, &key, &connection.id).await;
    let mask = app
        .sim
        .accounts(&item.item_id)
        .into_iter()
        .find(|a| a.account_id == new_account)
        .unwrap()
        .mask;
    let named = stored
        .iter()
        .find(|a| Some(a.id.as_str()) == new[0].id.as_deref())
        .unwrap();
    assert_eq!(Some(named.truncated_account_number.clone()), mask);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_that_cannot_be_done_are_refused_and_change_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other_key) = app.account("globex").await;
    let item = app.sim.create_item("ins_109508");
    let connection = imported(&app, &key, &item).await;
    let before = app.count("events").await;

    let foreign = repair(
        &app,
        &key,
        proto::RepairConnectionRequest {
            refresh_token: "rt".into(),
            provider_id: "mikomo".into(),
            ..repair_of(&connection.id)
        },
    )
    .await
    .unwrap_err();
    assert_status(
        &foreign,
        Code::InvalidArgument,
        "refreshToken and providerId are not credentials of a PLAID connection",
    );
    let nul = repair(
        &app,
        &key,
        proto::RepairConnectionRequest {
            access_token: "a\0b".into(),
            ..repair_of(&connection.id)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(nul.code(), Code::InvalidArgument);
    assert!(nul.message().contains("accessToken"), "{}", nul.message());
    let another = app.sim.create_item("ins_109508");
    let other_item = repair(
        &app,
        &key,
        proto::RepairConnectionRequest {
            access_token: another.access_token.expose().into(),
            ..repair_of(&connection.id)
        },
    )
    .await
    .unwrap_err();
    assert_status(
        &other_item,
        Code::InvalidArgument,
        "the accessToken belongs to another Plaid item than this connection's",
    );
    let empty = repair(&app, &key, repair_of("")).await.unwrap_err();
    assert_status(&empty, Code::InvalidArgument, "connectionId is required");
    let elsewhere = repair(&app, &other_key, repair_of(&connection.id))
        .await
        .unwrap_err();
    assert_status(
        &elsewhere,
        Code::NotFound,
        &format!("connection {:?} not found", connection.id),
    );
    let flow = app
        .connections()
        .await
        .create_connection(authed(
            &key,
            proto::CreateConnectionRequest {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: "customer-2".into(),
                institution_id: "ins_109508".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let in_progress = repair(&app, &key, repair_of(&flow.id)).await.unwrap_err();
    assert_status(
        &in_progress,
        Code::FailedPrecondition,
        "connection is IN_PROGRESS: only a connection that was linked and is not DELETED can be repaired",
    );
    assert_eq!(app.count("events").await, before, "nothing was written");

    // A flow that failed is EXPIRED: nothing was ever linked to repair.
    app.connections()
        .await
        .fail_connection(authed(
            &key,
            proto::FailConnectionRequest {
                connection_id: flow.id.clone(),
                reason: "UNFORESEEN".into(),
                service_provider_details: None,
            },
        ))
        .await
        .unwrap();
    let before = app.count("events").await;
    let expired = repair(&app, &key, repair_of(&flow.id)).await.unwrap_err();
    assert_status(
        &expired,
        Code::FailedPrecondition,
        "connection is EXPIRED: only a connection that was linked and is not DELETED can be repaired",
    );
    assert_eq!(app.count("events").await, before, "nothing was written");
    assert_eq!(
        app.count(&format!(
            "connections WHERE id = '{}' AND status = 'EXPIRED'",
            flow.id
        ))
        .await,
        1
    );

    app.connections()
        .await
        .delete_connection(authed(
            &key,
            proto::DeleteConnectionRequest {
                connection_id: connection.id.clone(),
            },
        ))
        .await
        .unwrap();
    let after_delete = app.count("events").await;
    let deleted = repair(&app, &key, repair_of(&connection.id))
        .await
        .unwrap_err();
    assert_status(
        &deleted,
        Code::FailedPrecondition,
        "connection is DELETED: only a connection that was linked and is not DELETED can be repaired",
    );
    assert_eq!(
        app.count("events").await,
        after_delete,
        "nothing was written"
    );
    assert_eq!(
        app.count(&format!(
            "connections WHERE id = '{}' AND status = 'DELETED'",
            connection.id
        ))
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_item_of_the_same_login_makes_the_first_an_inactive_duplicate() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let first_item = app.sim.create_item("ins_109508");
    let first = imported(&app, &key, &first_item).await;
    // Another login at the same bank is no duplicate.
    let unrelated = imported(&app, &key, &app.sim.create_item("ins_109508")).await;
    let twin = app.sim.create_twin_item(&first_item.item_id);
    let second = imported(&app, &key, &twin).await;

    let old = common::connection(&app, &key, &first.id).await;
    assert_eq!(
        (old.status, old.status_reason),
        (
            ConnStatus::PartiallyActive as i32,
            Some(StatusReason::InactiveDuplicate as i32)
        )
    );
    assert_eq!(
        old.active_duplicate_connection_id.as_deref(),
        Some(second.id.as_str())
    );
    let new = common::connection(&app, &key, &second.id).await;
    assert_eq!(new.status, ConnStatus::Active as i32);
    assert_eq!(new.duplicate_connection_ids, vec![first.id.clone()]);
    assert_eq!(new.active_duplicate_connection_id, None);
    let other = common::connection(&app, &key, &unrelated.id).await;
    assert_eq!(
        (other.status, other.duplicate_connection_ids.len()),
        (ConnStatus::Active as i32, 0)
    );

    let events = all_events(&app, &key).await;
    let change = events
        .iter()
        .find(|e| {
            e.event_type == Type::BankLinkingConnectionStatusChange as i32
                && payload(e).connection_id.as_deref() == Some(first.id.as_str())
        })
        .expect("one STATUS_CHANGE for the old connection");
    let change = payload(change);
    assert_eq!(change.old_status, Some(ConnStatus::Active as i32));
    assert_eq!(change.new_status, Some(ConnStatus::PartiallyActive as i32));
    assert_eq!(
        change.new_status_reason,
        Some(StatusReason::InactiveDuplicate as i32)
    );
    assert_eq!(
        change.active_duplicate_connection_id.as_deref(),
        Some(second.id.as_str())
    );

    // Not refreshed: not on request, and not when Plaid says it has new data.
    let refused = app
        .connections()
        .await
        .refresh_connection(authed(
            &key,
            proto::RefreshConnectionRequest {
                connection_id: first.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::FailedPrecondition,
        &format!(
            "connection is an INACTIVE_DUPLICATE of {}: refresh that connection instead",
            second.id
        ),
    );
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let syncs = app.sim.calls("/transactions/sync");
    let processed = app
        .count("webhook_deliveries WHERE processed_at IS NOT NULL")
        .await;
    app.sim.mutate(
        &first_item.item_id,
        linkstate_sim::Mutation {
            add: 2,
            modify: 0,
            remove: 0,
        },
    );
    wait_processed(&app, processed + 1).await;
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    assert_eq!(
        app.sim.calls("/transactions/sync"),
        syncs,
        "the simulator saw no call for it"
    );

    // Meld's delete order: the active one only after its inactive duplicates.
    let mut client = app.connections().await;
    let delete = |id: &str| {
        authed(
            &key,
            proto::DeleteConnectionRequest {
                connection_id: id.into(),
            },
        )
    };
    let before = app.count("events").await;
    let refused = client
        .delete_connection(delete(&second.id))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::FailedPrecondition,
        &format!(
            "connection has inactive duplicates ({}): delete its inactive duplicates first",
            first.id
        ),
    );
    assert_eq!(app.count("events").await, before);
    assert!(
        !app.sim.accounts(&twin.item_id).is_empty(),
        "the item is still at Plaid"
    );
    client.delete_connection(delete(&first.id)).await.unwrap();
    assert!(
        common::connection(&app, &key, &second.id)
            .await
            .duplicate_connection_ids
            .is_empty()
    );
    client.delete_connection(delete(&second.id)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_connect_flow_of_the_same_login_replaces_the_imported_connection() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let first = imported(&app, &key, &item).await;
    let twin = app.sim.create_twin_item(&item.item_id);
    let mut client = app.connections().await;
    let flow = client
        .create_connection(authed(
            &key,
            proto::CreateConnectionRequest {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: "customer-1".into(),
                institution_id: "ins_109508".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    client
        .complete_connection(authed(
            &key,
            proto::CompleteConnectionRequest {
                connection_id: flow.id.clone(),
                access_token: twin.access_token.expose().into(),
                service_provider_connection_id: twin.item_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let first_id = first.id.clone();
    events_until(&app, &key, |e| {
        e.iter().any(|e| {
            payload(e).connection_id.as_deref() == Some(first_id.as_str())
                && payload(e).new_status_reason == Some(StatusReason::InactiveDuplicate as i32)
        })
    })
    .await;
    let old = common::connection(&app, &key, &first.id).await;
    assert_eq!(
        old.active_duplicate_connection_id.as_deref(),
        Some(flow.id.as_str())
    );
    let new = common::connection(&app, &key, &flow.id).await;
    assert_eq!(new.duplicate_connection_ids, vec![first.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repaired_inactive_duplicate_is_compared_again_and_stays_inactive() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let first = imported(&app, &key, &item).await;
    let second = imported(&app, &key, &app.sim.create_twin_item(&item.item_id)).await;
    let old = common::connection(&app, &key, &first.id).await;
    assert_eq!(
        old.active_duplicate_connection_id.as_deref(),
        Some(second.id.as_str())
    );

    let repaired = repair(&app, &key, repair_of(&first.id)).await.unwrap();
    assert_eq!(repaired.status, ConnStatus::Active as i32);
    let first_id = first.id.clone();
    let changes_of_first = |events: &[proto::Event]| -> Vec<(Option<i32>, Option<String>)> {
        events
            .iter()
            .filter(|e| {
                e.event_type == Type::BankLinkingConnectionStatusChange as i32
                    && payload(e).connection_id.as_deref() == Some(first_id.as_str())
            })
            .map(|e| {
                (
                    payload(e).new_status,
                    payload(e).active_duplicate_connection_id.clone(),
                )
            })
            .collect()
    };
    let events = events_until(&app, &key, |e| changes_of_first(e).len() == 3).await;
    assert_eq!(
        changes_of_first(&events),
        [
            (
                Some(ConnStatus::PartiallyActive as i32),
                Some(second.id.clone())
            ),
            (Some(ConnStatus::Active as i32), None),
            (
                Some(ConnStatus::PartiallyActive as i32),
                Some(second.id.clone())
            ),
        ],
        "the repair's aggregation finds the newer twin again"
    );
    let old = common::connection(&app, &key, &first.id).await;
    assert_eq!(
        old.status_reason,
        Some(StatusReason::InactiveDuplicate as i32)
    );
    assert_eq!(
        common::connection(&app, &key, &second.id)
            .await
            .duplicate_connection_ids,
        vec![first.id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_whose_check_plaid_refuses_is_a_failed_precondition_with_its_code() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = imported(&app, &key, &item).await;
    let before = app.count("events").await;
    app.sim.inject_error(linkstate_testing::plaid::rule(
        "/item/get",
        400,
        "INVALID_INPUT",
        "INVALID_ACCESS_TOKEN",
    ));
    for request in [
        repair_of(&connection.id),
        proto::RepairConnectionRequest {
            access_token: "access-sandbox-refused".into(),
            ..repair_of(&connection.id)
        },
    ] {
        let refused = repair(&app, &key, request).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().starts_with(
                "the provider still refuses this connection: Plaid refused the accessToken: \
                 Plaid answered HTTP 400 INVALID_ACCESS_TOKEN"
            ),
            "{}",
            refused.message()
        );
        assert!(refused.message().ends_with("; nothing changed"));
    }
    assert_eq!(app.count("events").await, before, "nothing was written");
    let stored = app
        .count(&format!(
            "connections WHERE id = '{}' AND status = 'ACTIVE'",
            connection.id
        ))
        .await;
    assert_eq!(stored, 1);
}
