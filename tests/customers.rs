//! CustomerService: reading customers, and DeleteCustomer deleting every connection at the
//! provider, finishing on a second call after a provider failure, and erasing data on request.

mod common;

use common::*;
use linkstate::proto::{self, customer::Status as CustomerStatus, event::Type};
use linkstate_sim::SandboxItem;
use linkstate_testing::{TestApp, authed};
use tonic::Code;

/// Imports one simulator item for `customer` and answers its connection.
async fn import_for(
    app: &TestApp,
    key: &str,
    customer: &str,
    item: &SandboxItem,
) -> proto::Connection {
    let response = app
        .connections()
        .await
        .import_connections(authed(
            key,
            import_request(vec![plaid_item(customer, item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    match response.results.into_iter().next().unwrap().result {
        Some(proto::import_result::Result::Connection(connection)) => connection,
        other => panic!("import failed: {other:?}"),
    }
}

async fn get_customer(
    app: &TestApp,
    key: &str,
    id: &str,
) -> Result<proto::Customer, tonic::Status> {
    app.customers()
        .await
        .get_customer(authed(
            key,
            proto::GetCustomerRequest {
                customer_id: id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn list_customers(
    app: &TestApp,
    key: &str,
    request: proto::ListCustomersRequest,
) -> Result<proto::ListCustomersResponse, tonic::Status> {
    app.customers()
        .await
        .list_customers(authed(key, request))
        .await
        .map(|r| r.into_inner())
}

async fn delete_customer(
    app: &TestApp,
    key: &str,
    id: &str,
    erase_data: bool,
) -> Result<proto::Customer, tonic::Status> {
    app.customers()
        .await
        .delete_customer(authed(
            key,
            proto::DeleteCustomerRequest {
                customer_id: id.into(),
                erase_data,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// A customer with three connections (three logins at three institutions), aggregated.
async fn customer_with_three(
    app: &TestApp,
    key: &str,
) -> (Vec<SandboxItem>, Vec<proto::Connection>) {
    let institutions: Vec<String> = app
        .sim
        .institutions()
        .into_iter()
        .map(|(id, _)| id)
        .take(3)
        .collect();
    let mut items = Vec::new();
    let mut connections = Vec::new();
    for institution in &institutions {
        let item = app.sim.create_item(institution);
        connections.push(import_for(app, key, "customer-del", &item).await);
        items.push(item);
    }
    events_until(app, key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) >= 3
    })
    .await;
    (items, connections)
}

async fn scalar(app: &TestApp, query: &str) -> i64 {
    app.count(query).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_customers_with_their_connection_counts() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;
    let (_, connections) = customer_with_three(&app, &key).await;
    let other = app.sim.create_item("ins_109508");
    import_for(&app, &key, "customer-other", &other).await;

    let customer = get_customer(&app, &key, &connections[0].customer_id)
        .await
        .unwrap();
    assert_eq!(customer.id, connections[0].customer_id);
    assert_eq!(customer.account_id, account_id.to_string());
    assert_eq!(customer.external_customer_id, "customer-del");
    assert_eq!(customer.status, CustomerStatus::Active as i32);
    assert_eq!(customer.connection_count, 3);
    assert!(customer.created_at.is_some());

    let mut client = app.customers().await;
    let only = client
        .list_customers(authed(
            &key,
            proto::ListCustomersRequest {
                external_customer_id: "customer-del".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only.customers, vec![customer.clone()]);
    assert!(only.next_page_token.is_empty());

    // Pages of one, newest first, until the end.
    let first = client
        .list_customers(authed(
            &key,
            proto::ListCustomersRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.customers[0].external_customer_id, "customer-other");
    let second = client
        .list_customers(authed(
            &key,
            proto::ListCustomersRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.customers, vec![customer]);
    assert!(second.next_page_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_customer_deletes_every_connection_at_the_provider_then_the_customer() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (items, connections) = customer_with_three(&app, &key).await;
    let customer_id = connections[0].customer_id.clone();

    let deleted = delete_customer(&app, &key, &customer_id, false)
        .await
        .unwrap();
    assert_eq!(deleted.status, CustomerStatus::Deleted as i32);
    assert_eq!(deleted.connection_count, 0);

    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionDeleted) == 3
            && count(e, Type::BankLinkingAccountsRemoved) == 3
    })
    .await;
    for connection in &connections {
        let of_it: Vec<Type> = events
            .iter()
            .filter(|e| payload(e).connection_id.as_deref() == Some(connection.id.as_str()))
            .map(|e| Type::try_from(e.event_type).unwrap())
            .filter(|t| {
                matches!(
                    t,
                    Type::BankLinkingConnectionDeleted | Type::BankLinkingAccountsRemoved
                )
            })
            .collect();
        assert_eq!(
            of_it,
            [
                Type::BankLinkingConnectionDeleted,
                Type::BankLinkingAccountsRemoved
            ],
            "connection {}",
            connection.id
        );
        let now = common::connection(&app, &key, &connection.id).await;
        assert_eq!(now.status, proto::connection::Status::Deleted as i32);
    }
    for item in &items {
        assert!(
            app.sim.accounts(&item.item_id).is_empty(),
            "the item is removed at Plaid"
        );
    }
    // Not erased: the data stays readable.
    assert!(
        scalar(
            &app,
            &format!("transactions WHERE customer_id = '{customer_id}'")
        )
        .await
            > 0
    );

    let events_before = app.count("events").await;
    let again = delete_customer(&app, &key, &customer_id, false)
        .await
        .unwrap_err();
    assert_status(
        &again,
        Code::FailedPrecondition,
        "customer is already DELETED",
    );
    assert_eq!(
        app.count("events").await,
        events_before,
        "nothing was written"
    );

    // The external id makes a new customer now.
    let item = app.sim.create_item("ins_109508");
    let fresh = import_for(&app, &key, "customer-del", &item).await;
    assert_ne!(fresh.customer_id, customer_id);
    let fresh_customer = get_customer(&app, &key, &fresh.customer_id).await.unwrap();
    assert_eq!(fresh_customer.status, CustomerStatus::Active as i32);
    assert_eq!(fresh_customer.connection_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusing_one_connection_is_a_failed_precondition_not_unavailable() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (items, connections) = customer_with_three(&app, &key).await;
    let customer_id = connections[0].customer_id.clone();
    let mut rule =
        linkstate_testing::plaid::rule("/item/remove", 400, "INVALID_INPUT", "INVALID_API_KEYS");
    rule.access_token = Some(items[1].access_token.expose().to_string());
    app.sim.inject_error(rule);

    let refused = delete_customer(&app, &key, &customer_id, false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().starts_with(
            "1 of the customer's connections could not be deleted (Plaid refused to remove the \
             item: Plaid answered HTTP 400 INVALID_API_KEYS"
        ),
        "{}",
        refused.message()
    );
    let customer = get_customer(&app, &key, &customer_id).await.unwrap();
    assert_eq!(customer.status, CustomerStatus::Active as i32);
    assert_eq!(customer.connection_count, 1);
    assert_ne!(
        common::connection(&app, &key, &connections[1].id)
            .await
            .status,
        proto::connection::Status::Deleted as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_for_one_connection_leaves_the_rest_deleted_and_a_second_call_finishes() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (items, connections) = customer_with_three(&app, &key).await;
    let customer_id = connections[0].customer_id.clone();
    let mut rule =
        linkstate_testing::plaid::rule("/item/remove", 500, "API_ERROR", "INTERNAL_SERVER_ERROR");
    rule.access_token = Some(items[1].access_token.expose().to_string());
    app.sim.inject_error(rule);

    let failed = delete_customer(&app, &key, &customer_id, true)
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert!(
        failed.message().starts_with("1 of the customer's connections could not be deleted (Plaid is unavailable, retry later"),
        "{}",
        failed.message()
    );
    assert!(
        failed
            .message()
            .ends_with("the others stay deleted: call DeleteCustomer again to finish")
    );
    let customer = get_customer(&app, &key, &customer_id).await.unwrap();
    assert_eq!(customer.status, CustomerStatus::Active as i32);
    assert_eq!(customer.connection_count, 1);
    let status_of = |i: usize| {
        let app = &app;
        let key = &key;
        let id = connections[i].id.clone();
        async move { common::connection(app, key, &id).await.status }
    };
    assert_eq!(
        status_of(0).await,
        proto::connection::Status::Deleted as i32
    );
    assert_ne!(
        status_of(1).await,
        proto::connection::Status::Deleted as i32
    );
    assert_eq!(
        status_of(2).await,
        proto::connection::Status::Deleted as i32
    );
    // Nothing erased while the customer stands.
    assert!(
        scalar(
            &app,
            &format!("transactions WHERE customer_id = '{customer_id}'")
        )
        .await
            > 0
    );

    app.sim.clear_errors();
    let deleted = delete_customer(&app, &key, &customer_id, true)
        .await
        .unwrap();
    assert_eq!(deleted.status, CustomerStatus::Deleted as i32);
    assert_eq!(
        status_of(1).await,
        proto::connection::Status::Deleted as i32
    );
    // Exactly one pair per connection, the second call's included.
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionDeleted) >= 3
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingConnectionDeleted), 3);
    assert_eq!(count(&events, Type::BankLinkingAccountsRemoved), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_data_leaves_no_financial_data_of_the_customer_and_touches_no_other() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, connections) = customer_with_three(&app, &key).await;
    let customer_id = connections[0].customer_id.clone();
    let other = app.sim.create_item("ins_109508");
    let kept = import_for(&app, &key, "customer-kept", &other).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) >= 4
    })
    .await;
    let of = |customer: &str, what: &str| format!("{what} WHERE customer_id = '{customer}'");
    let kept_balances = format!(
        "financial_accounts WHERE customer_id = '{}' AND current_balance IS NOT NULL",
        kept.customer_id
    );
    let kept_before = (
        scalar(&app, &of(&kept.customer_id, "transactions")).await,
        scalar(&app, &kept_balances).await,
    );
    assert!(kept_before.0 > 0 && kept_before.1 > 0);
    let events_before = app.count("events").await;

    delete_customer(&app, &key, &customer_id, true)
        .await
        .unwrap();

    assert_eq!(scalar(&app, &of(&customer_id, "transactions")).await, 0);
    let filled = format!(
        "financial_accounts WHERE customer_id = '{customer_id}' AND (current_balance IS NOT NULL \
         OR available_balance IS NOT NULL OR identifiers IS NOT NULL OR owners IS NOT NULL)"
    );
    assert_eq!(
        scalar(&app, &filled).await,
        0,
        "no balance, identifier or owner is left"
    );
    assert!(
        scalar(&app, &of(&customer_id, "financial_accounts")).await > 0,
        "the accounts stay, named"
    );
    assert!(
        app.count("events").await > events_before,
        "the log stays whole and grows"
    );
    let kept_after = (
        scalar(&app, &of(&kept.customer_id, "transactions")).await,
        scalar(&app, &kept_balances).await,
    );
    assert_eq!(kept_after, kept_before, "the other customer is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_of_another_tenant_are_not_found_and_stay_as_they_are() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other_key) = app.account("globex").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import_for(&app, &key, "customer-1", &item).await;
    let id = connection.customer_id.clone();
    let message = format!("customer {id:?} not found");

    assert_status(
        &get_customer(&app, &other_key, &id).await.unwrap_err(),
        Code::NotFound,
        &message,
    );
    assert_status(
        &delete_customer(&app, &other_key, &id, true)
            .await
            .unwrap_err(),
        Code::NotFound,
        &message,
    );
    let listed = app
        .customers()
        .await
        .list_customers(authed(&other_key, proto::ListCustomersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.customers.is_empty());
    let customer = get_customer(&app, &key, &id).await.unwrap();
    assert_eq!(customer.status, CustomerStatus::Active as i32);
    assert_eq!(
        common::connection(&app, &key, &connection.id).await.status,
        proto::connection::Status::Active as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_customer_requests_are_refused_and_change_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let mut client = app.customers().await;

    assert_status(
        &get_customer(&app, &key, "").await.unwrap_err(),
        Code::InvalidArgument,
        "customerId is required",
    );
    assert_status(
        &delete_customer(&app, &key, "", false).await.unwrap_err(),
        Code::InvalidArgument,
        "customerId is required",
    );
    assert_status(
        &get_customer(&app, &key, "not-a-uuid").await.unwrap_err(),
        Code::NotFound,
        "customer \"not-a-uuid\" not found",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_status(
        &delete_customer(&app, &key, &unknown, false)
            .await
            .unwrap_err(),
        Code::NotFound,
        &format!("customer {unknown:?} not found"),
    );
    let bad_token = list_customers(
        &app,
        &key,
        proto::ListCustomersRequest {
            page_token: "garbage".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    assert!(
        bad_token.message().contains("pageToken"),
        "{}",
        bad_token.message()
    );
    let nul = list_customers(
        &app,
        &key,
        proto::ListCustomersRequest {
            external_customer_id: "a\0b".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(nul.code(), Code::InvalidArgument);
    assert!(
        nul.message().contains("externalCustomerId"),
        "{}",
        nul.message()
    );
    let negative = list_customers(
        &app,
        &key,
        proto::ListCustomersRequest {
            page_size: -1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    let unauthenticated = client
        .get_customer(tonic::Request::new(proto::GetCustomerRequest {
            customer_id: unknown,
        }))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    assert_nothing_written(&app).await;
}
