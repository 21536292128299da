//! Production behaviour: request ids, metrics, load shedding, deadlines,
//! message limits, graceful shutdown and its grace period.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};

use crate::helpers::*;
use crate::on_both_backends;

fn upload_item(i: usize) -> UploadTimesheetRequest {
    UploadTimesheetRequest {
        timesheet: Some(Timesheet {
            user_id: "007".into(),
            ..timesheet(&format!("2026-11-{:02}", 1 + i % 28), "Import", 1.0)
        }),
        request_id: String::new(),
    }
}

/// Starts a client-streaming upload that stays in flight until the sender
/// sends its items and is dropped.
fn open_batch(
    app: &TestApp,
) -> (
    mpsc::Sender<UploadTimesheetRequest>,
    tokio::task::JoinHandle<Result<usize, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(8);
    let mut importer = app.importer();
    let call = tokio::spawn(async move {
        importer
            .batch_upload_timesheets(ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner().timesheets.len())
    });
    (tx, call)
}

/// SQLite's write lock, held by a connection of the test's own, so the
/// server's writes wait for it.
struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    async fn take(app: &TestApp) -> Self {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&app.database_url())
            .await
            .expect("open the database");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("take the write lock");
        Self(conn)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("release the lock");
    }
}

/// A create by alice, started and waited for until it holds the only
/// admission permit (`max_concurrent_requests = 1`); with the write lock
/// taken, it stays in flight.
async fn create_in_flight(
    app: &TestApp,
) -> tokio::task::JoinHandle<Result<tonic::Response<Timesheet>, tonic::Status>> {
    let mut alice = app.employee("alice@exampleco.com");
    let create = tokio::spawn(async move {
        alice
            .create_timesheet(create("2026-11-27", "Website", 1.0))
            .await
    });
    until_in_flight(app).await;
    create
}

/// A raw HTTP/2 connection to `app`, for requests no client library sends
/// (headers alone, half a message); aborting the handle drops it.
async fn raw_h2(
    app: &TestApp,
) -> (
    h2::client::SendRequest<tonic::codegen::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client.ready().await.expect("ready"), driver)
}

/// Waits until a call holds the only admission permit: a probe call is
/// then shed. Each probe is a round trip, which paces the loop.
async fn until_in_flight(app: &TestApp) {
    for _ in 0..2000 {
        let probe = app
            .anonymous()
            .list_timesheets(ListTimesheetsRequest::default())
            .await;
        if matches!(&probe, Err(s) if s.code() == Code::ResourceExhausted) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the call never occupied the only permit");
}

on_both_backends! {
    async fn every_reply_carries_a_request_id_honoured_or_generated(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let response = app.http().get(app.url("/timesheets")).bearer_auth(&token).header("x-request-id", "trace-abc-123").send().await.expect("send");
        assert_eq!(response.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-abc-123"));
        let response = app.http().get(app.url("/timesheets")).bearer_auth(&token).send().await.expect("send");
        let generated = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("generated id").to_owned();
        assert!(generated.len() >= 16, "{generated}");
        let grpc = app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("grpc");
        assert!(grpc.metadata().get("x-request-id").is_some());
    }

    async fn metrics_count_calls_by_method_protocol_and_code_and_refusals_by_reason(app: &TestApp) {
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("grpc call");
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        app.http().get(app.url("/timesheets")).bearer_auth(&token).send().await.expect("json call");
        let _ = app.anonymous().list_timesheets(ListTimesheetsRequest::default()).await;
        let metrics = app.http().get(app.url("/metrics")).send().await.expect("metrics");
        assert_eq!(metrics.status(), StatusCode::OK);
        let text = metrics.text().await.expect("text");
        for needle in [
            "timesheets_requests_total{method=\"ListTimesheets\",protocol=\"grpc\",code=\"OK\"} 1",
            "timesheets_requests_total{method=\"ListTimesheets\",protocol=\"json\",code=\"OK\"} 1",
            "timesheets_requests_total{method=\"ListTimesheets\",protocol=\"grpc\",code=\"UNAUTHENTICATED\"} 1",
            "timesheets_auth_failures_total{reason=\"MISSING_CREDENTIALS\"} 1",
            "timesheets_request_duration_seconds_bucket",
            "timesheets_jwks_fetches_total{",
            "timesheets_signing_keys{",
            "timesheets_db_pool_connections{",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    async fn an_http_body_over_the_limit_is_413_and_a_grpc_message_over_it_is_resource_exhausted(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let big = "n".repeat(1024 * 1024 + 1);
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token)
            .json(&json!({"date": "2026-11-27", "project": "W", "hours": 1, "notes": big})).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let status = app.employee("alice@exampleco.com")
            .create_timesheet(CreateTimesheetRequest { timesheet: Some(Timesheet { notes: big, ..timesheet("2026-11-27", "W", 1.0) }), request_id: String::new() })
            .await.expect_err("too large");
        assert_eq!(status.code(), Code::ResourceExhausted);
    }

    async fn json_nested_beyond_64_levels_is_a_clean_400(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        // The object is one level, and each array one more.
        let levels = |total: usize| format!("{{\"date\":\"2026-11-27\",\"project\":\"W\",\"hours\":1,\"x\":{}{}}}", "[".repeat(total - 1), "]".repeat(total - 1));
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token)
            .header(header::CONTENT_TYPE, "application/json").body(levels(65)).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("nested deeper than 64")), "{body}");
        // Exactly 64 levels pass the depth check (and are refused for the unknown field).
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token)
            .header(header::CONTENT_TYPE, "application/json").body(levels(64)).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.expect("json");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("nested deeper") && message.contains('x'), "64 levels pass the depth check: {body}");
    }

    async fn deeply_nested_json_is_a_clean_400(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let nested = format!("{{\"date\":\"2026-11-27\",\"project\":\"W\",\"hours\":1,\"notes\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token)
            .header(header::CONTENT_TYPE, "application/json").body(nested).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    async fn an_already_expired_deadline_does_no_work(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token).header("grpc-timeout", "0m")
            .json(&json!({"date": "2026-11-27", "project": "W", "hours": 1})).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["status"], "DEADLINE_EXCEEDED");
        let listed = app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert!(listed.timesheets.is_empty(), "nothing was stored");
        assert_eq!(calls_counted(app, "CreateTimesheet", "json", "DEADLINE_EXCEEDED").await, 1, "counted as on gRPC");
    }
}

#[tokio::test]
async fn health_watch_streams_that_never_send_their_request_hold_no_permit() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let (mut client, driver) = raw_h2(&app).await;
    let request = |method: &str| {
        http::Request::post(format!(
            "http://{}/grpc.health.v1.Health/{method}",
            app.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
    };
    // No token is needed, and no request message follows the headers.
    let (_watch, _open) = client
        .send_request(request("Watch"), false)
        .expect("watch headers");
    // A Check on the same connection: once it is answered, the server has
    // read the Watch's headers before it.
    let (check, mut body) = client
        .send_request(request("Check"), false)
        .expect("check headers");
    body.send_data(tonic::codegen::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("check message");
    check.await.expect("check answered");
    for _ in 0..20 {
        app.employee("alice@exampleco.com")
            .list_timesheets(ListTimesheetsRequest::default())
            .await
            .expect("the only permit is free");
        tokio::task::yield_now().await;
    }
    driver.abort();
    app.shutdown().await;
}

#[tokio::test]
async fn at_the_concurrency_limit_calls_are_shed_not_queued() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let (tx, call) = open_batch(&app);
    until_in_flight(&app).await;
    let status = app
        .employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted);
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let response = app
        .http()
        .get(app.url("/timesheets"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header_value(&response, "retry-after"), Some("1"));
    // A gRPC-Web caller is told in the encoding it reads: the reply has no
    // service's tonic-web layer to label it.
    for (accept, content_type) in [
        ("application/grpc-web", "application/grpc-web+proto"),
        (
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ),
    ] {
        let response = app
            .http()
            .post(app.url("/timesheets.v1.TimesheetService/ListTimesheets"))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, accept)
            .header(header::ACCEPT, accept)
            .header("x-grpc-web", "1")
            .body(if accept.ends_with("text") {
                "AAAAAAA="
            } else {
                "\0\0\0\0\0"
            })
            .send()
            .await
            .expect("send");
        assert_eq!(
            header_value(&response, "grpc-status"),
            Some("8"),
            "{accept}"
        );
        assert_eq!(
            header_value(&response, "content-type"),
            Some(content_type),
            "{accept}"
        );
    }
    // Probes are never shed, nor is the gRPC health check that
    // Kubernetes' gRPC probes call.
    assert_eq!(
        app.http()
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        StatusCode::OK
    );
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("the gRPC health check at the limit");
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);
    tx.send(upload_item(0)).await.expect("send item");
    drop(tx);
    assert_eq!(
        call.await
            .expect("joined")
            .expect("the in-flight call finished"),
        1
    );
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("capacity is back");
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_lets_in_flight_calls_finish() {
    // One permit, which the batch holds until its reply (the health watch
    // gave its own back with its reply's headers): a refused probe shows
    // the batch is in flight before shutdown begins.
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch
            .message()
            .await
            .expect("status")
            .expect("first")
            .status(),
        ServingStatus::Serving
    );
    let (tx, call) = open_batch(&app);
    tx.send(upload_item(0)).await.expect("first item");
    until_in_flight(&app).await;

    let app = app.begin_shutdown();
    assert_eq!(
        watch
            .message()
            .await
            .expect("status")
            .expect("update")
            .status(),
        ServingStatus::NotServing
    );
    drop(watch);
    // The in-flight call is not cut off: it finishes after shutdown began.
    tx.send(upload_item(1)).await.expect("second item");
    drop(tx);
    assert_eq!(
        call.await
            .expect("joined")
            .expect("in-flight call succeeded"),
        2
    );
    app.finish_shutdown().await;
}

/// Calls, and streams whose replies began long before (a health watch),
/// are ended with UNAVAILABLE, the answer a client retries elsewhere, rather
/// than left to hold the shutdown until their connections are dropped.
#[tokio::test]
async fn calls_and_streams_still_running_after_the_grace_period_get_unavailable() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.shutdown_grace = Duration::from_millis(300);
        c.max_concurrent_requests = 1;
    })
    .await
    else {
        return;
    };
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let serving = |update: Result<Option<HealthCheckResponse>, tonic::Status>| {
        update.expect("status").expect("an update").status()
    };
    assert_eq!(serving(watch.message().await), ServingStatus::Serving);
    // Another connection holds SQLite's write lock, so a create stays in flight.
    let blocker = WriteLock::take(&app).await;
    let create = create_in_flight(&app).await;

    let app = app.begin_shutdown();
    assert_eq!(serving(watch.message().await), ServingStatus::NotServing);
    let status = create
        .await
        .expect("joined")
        .expect_err("cut off after the grace period");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let cut = watch.message().await.expect_err("the stream ended");
    assert_eq!(
        (cut.code(), cut.message()),
        (Code::Unavailable, "server is shutting down; retry")
    );
    blocker.release().await;
    app.finish_shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_sqlite_share_group_commits_and_all_are_stored() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let creates: Vec<_> = (0..64)
        .map(|i| {
            let mut client = app.employee("alice@exampleco.com");
            tokio::spawn(async move {
                client
                    .create_timesheet(create("2026-11-27", &format!("P{i}"), 1.0))
                    .await
                    .map(|r| r.into_inner().id)
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for create in creates {
        ids.insert(create.await.expect("joined").expect("created"));
    }
    assert_eq!(ids.len(), 64);
    let listed = app
        .employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.timesheets.len(), 64);
    let metrics = app.metrics().await;
    let sample = |series: &str| -> f64 {
        series_value(&metrics, series).unwrap_or_else(|| panic!("{series} in\n{metrics}"))
    };
    let groups = sample("timesheets_write_group_size_count");
    assert_eq!(sample("timesheets_write_group_size_sum"), 64.0);
    assert!(
        groups < 64.0,
        "64 concurrent creates took {groups} commits: no grouping"
    );
    // Buckets are cumulative: every group fits under +Inf, and at least one
    // carried more than a single insert.
    assert_eq!(
        sample(r#"timesheets_write_group_size_bucket{le="+Inf"}"#),
        groups
    );
    assert!(sample(r#"timesheets_write_group_size_bucket{le="1.0"}"#) < groups);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_conflicts_among_concurrent_keyed_creates_are_answered_each_on_its_own() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let keyed = |request_id: &str, hours: f64| CreateTimesheetRequest {
        request_id: request_id.into(),
        ..create("2026-11-27", "Website", hours)
    };
    // Stored before: each later create with its key and other hours clashes.
    for i in 0..8 {
        app.employee("alice@exampleco.com")
            .create_timesheet(keyed(&format!("clash-{i}"), 1.0))
            .await
            .expect("stored first");
    }
    let requests = (0..16)
        .map(|_| keyed("", 2.0))
        .chain((0..8).map(|_| keyed("same", 3.0)))
        .chain((0..8).map(|i| keyed(&format!("clash-{i}"), 4.0)));
    let calls: Vec<_> = requests
        .map(|request| {
            let mut client = app.employee("alice@exampleco.com");
            tokio::spawn(async move { client.create_timesheet(request).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.expect("joined").map(|r| r.into_inner()));
    }
    let (plain, rest) = outcomes.split_at(16);
    let (same, clashes) = rest.split_at(8);
    let plain_ids: std::collections::HashSet<_> = plain
        .iter()
        .map(|o| o.as_ref().expect("a plain create succeeds").id.clone())
        .collect();
    assert_eq!(plain_ids.len(), 16);
    let same_ids: std::collections::HashSet<_> = same
        .iter()
        .map(|o| o.as_ref().expect("a repeated key replays").id.clone())
        .collect();
    assert_eq!(same_ids.len(), 1, "one row for one key: {same_ids:?}");
    for clash in clashes {
        let status = clash
            .as_ref()
            .expect_err("another payload under a used key");
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    }
    let listed = app
        .employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.timesheets.len(), 8 + 16 + 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_is_refused_and_others_are_not() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limit_per_user = std::num::NonZeroU32::new(3)
    })
    .await
    else {
        return;
    };
    let mut alice = app.employee("alice@exampleco.com");
    let mut refused = None;
    for _ in 0..20 {
        if let Err(status) = alice
            .list_timesheets(ListTimesheetsRequest::default())
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("a burst beyond 3 calls is refused");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // The bucket refills every third of a second, so a stalled machine may
    // hand the HTTP caller a fresh token first: it is refused once the
    // refill is spent, as the gRPC caller was.
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let mut over_http = None;
    for _ in 0..20 {
        let response = app
            .http()
            .get(app.url("/timesheets"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        if response.status() != StatusCode::OK {
            over_http = Some(response);
            break;
        }
    }
    let over_http = over_http.expect("the same caller is refused over HTTP too");
    assert_eq!(
        over_http.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same limit on every protocol"
    );
    assert_eq!(
        header_value(&over_http, "retry-after"),
        Some("1"),
        "and the same advice on when to retry"
    );
    app.employee("bob@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("another caller is unaffected");
    app.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_http2_stream_resets_leaves_the_server_responsive() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (mut client, driver) = raw_h2(&app).await;
    for _ in 0..2000 {
        let request = http::Request::post(format!(
            "http://{}/timesheets.v1.TimesheetService/ListTimesheets",
            app.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
        let Ok(ready) = client.clone().ready().await else {
            break;
        };
        client = ready;
        match client.send_request(request, false) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            // The server gave up on this abusive connection: that is fine.
            Err(_) => break,
        }
    }
    driver.abort();
    // Other clients are served as usual.
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("still responsive");
    let fresh = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("new connection");
    tonic_health::pb::health_client::HealthClient::new(fresh)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health on a new connection");
    app.shutdown().await;
}

#[tokio::test]
async fn an_oversized_header_list_is_refused_before_any_work() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let list_with_padding = |bytes: usize| {
        app.h2()
            .get(app.url("/timesheets"))
            .bearer_auth(&token)
            .header("x-padding", "x".repeat(bytes))
            .send()
    };
    // The same authorized call is served with a header list under the limit...
    let under = list_with_padding(8 * 1024).await.expect("answered");
    assert_eq!(under.status(), StatusCode::OK);
    // ...and refused over it: at the HTTP/2 layer (an error here) or with 431.
    match list_with_padding(32 * 1024).await {
        Err(_) => {}
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
    }
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("still serving");
    app.shutdown().await;
}

/// A short HTTP/1 header timeout, so the tests below can watch it fire.
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

/// Whether the server closes `socket` (EOF or reset) within a few seconds,
/// reading and discarding whatever it sends first.
async fn closed_by_server(socket: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let read_until_closed = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_until_closed)
        .await
        .is_ok()
}

/// A server with the short HTTP/1 header timeout, and a raw connection to
/// it on which `sent` has been written.
async fn raw_connection_after(sent: &[u8]) -> Option<(TestApp, tokio::net::TcpStream)> {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.http1_header_timeout = HEADER_TIMEOUT;
        config.request_body_timeout = HEADER_TIMEOUT;
    })
    .await?;
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    socket.write_all(sent).await.expect("write");
    Some((app, socket))
}

#[tokio::test]
async fn a_call_whose_request_message_never_comes_gives_its_permit_back() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.max_concurrent_requests = 1;
        // Long enough for the probes below to see the permit taken first.
        c.request_body_timeout = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let (mut client, driver) = raw_h2(&app).await;
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let request = http::Request::post(format!(
        "http://{}/timesheets.v1.TimesheetService/ListTimesheets",
        app.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {token}"))
    .body(())
    .expect("request");
    // Headers, and no message: no deadline either.
    let (reply, _open) = client.send_request(request, false).expect("headers");
    until_in_flight(&app).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .expect("the stalled call was ended")
        .expect("a reply");
    assert_eq!(reply.status(), http::StatusCode::OK);
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("the permit is back");
    driver.abort();
    app.shutdown().await;
}

/// A connection that never completes a request is closed, whatever it sent:
/// nothing, part of the HTTP/2 preface (hyper reads that to tell the
/// versions apart, with no timer), or the preface without the SETTINGS
/// frame that must follow it, all after the header timeout; unfinished
/// headers, after hyper's; and a request whose body never comes, after the
/// body timeout (the health check needs no token and holds no permit, so
/// nothing else bounded it).
#[tokio::test]
async fn a_connection_that_never_completes_a_request_is_closed() {
    for (what, sent) in [
        ("nothing", &b""[..]),
        ("part of the HTTP/2 preface", b"PRI * HTTP/2.0"),
        (
            "the HTTP/2 preface alone",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ),
        (
            "unfinished headers",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        ),
        (
            "a request whose body never came",
            b"POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/grpc-web\r\nContent-Length: 5\r\n\r\n",
        ),
    ] {
        let Some((app, mut silent)) = raw_connection_after(sent).await else {
            return;
        };
        assert!(
            closed_by_server(&mut silent).await,
            "a connection that sent {what} was kept open"
        );
        app.shutdown().await;
    }
}

/// HTTP/2 frame types the raw-frame tests send and look for.
const HEADERS: u8 = 0x1;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A raw HTTP/2 connection that has sent its preface and empty SETTINGS,
/// and answers nothing the server sends, so a goodbye stays unconfirmed.
async fn unanswering_h2(app: &TestApp) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");
    socket
}

/// One frame on stream 1.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
    frame.extend_from_slice(payload);
    frame
}

/// A health check's request headers, in HPACK literals.
fn health_check_headers() -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    frame(HEADERS, END_HEADERS, &block)
}

/// The empty HealthCheckRequest that ends stream 1.
fn health_check_message() -> Vec<u8> {
    frame(0x0, END_STREAM, &[0; 5])
}

/// The type and stream of the next frame the server sends.
async fn next_frame(socket: &mut tokio::net::TcpStream) -> Option<(u8, u32)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 9];
    socket.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    socket.read_exact(&mut vec![0; len]).await.ok()?;
    Some((
        head[3],
        u32::from_be_bytes([head[5], head[6], head[7], head[8]]),
    ))
}

/// Whether the server's reply headers for stream 1 come within 5 s.
async fn answered(socket: &mut tokio::net::TcpStream) -> bool {
    let answer = async {
        while let Some((kind, stream)) = next_frame(socket).await {
            if kind == HEADERS && stream == 1 {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .unwrap_or(false)
}

/// A request that comes in as a connection that made none is being closed,
/// after the server's GOAWAY and before the client has acknowledged it, is
/// served to its end, however long its body takes, rather than dropped with
/// the connection a second later.
#[tokio::test]
async fn a_request_made_while_an_idle_connection_says_goodbye_is_served() {
    use tokio::io::AsyncWriteExt;
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.http1_header_timeout = HEADER_TIMEOUT;
    })
    .await
    else {
        return;
    };
    let mut socket = unanswering_h2(&app).await;
    let goodbye = async {
        while let Some((kind, _)) = next_frame(&mut socket).await {
            if kind == GOAWAY {
                return true;
            }
        }
        false
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), goodbye)
            .await
            .unwrap_or(false),
        "no GOAWAY for a connection that made no request"
    );
    socket
        .write_all(&health_check_headers())
        .await
        .expect("headers");
    // The message comes after the server's 1 s goodbye timer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    socket
        .write_all(&health_check_message())
        .await
        .expect("message");
    assert!(
        answered(&mut socket).await,
        "the request was dropped with its connection"
    );
    // Having made a request, it is not dropped by its timer: a reply may
    // still be on its way to a slow reader. A client that answers nothing,
    // as this one, is dropped by the keepalive.
    drop(socket);
    app.shutdown().await;
}

/// Shutdown does not wait out its drain timeout for a connection that has
/// made no request: it is sent away and, not taking the goodbye, dropped a
/// second later, although the grace period is half a minute.
#[tokio::test]
async fn shutdown_drops_a_connection_that_made_no_request_and_ignores_the_goodbye() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.shutdown_grace = Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let mut socket = unanswering_h2(&app).await;
    // The server's SETTINGS: it is serving HTTP/2 on this connection.
    assert!(next_frame(&mut socket).await.is_some(), "no SETTINGS");
    let app = app.begin_shutdown();
    assert!(
        closed_by_server(&mut socket).await,
        "a connection that made no request was kept through shutdown"
    );
    app.finish_shutdown().await;
}

/// An HTTP/2 client may keep a connection for as long as it answers pings:
/// one that starts no request for the idle timeout is sent away (GOAWAY),
/// and its connection ends.
#[tokio::test]
async fn an_http2_connection_that_starts_no_request_for_the_idle_timeout_is_closed() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.http1_header_timeout = HEADER_TIMEOUT;
        config.connection_idle_timeout = HEADER_TIMEOUT;
    })
    .await
    else {
        return;
    };
    let (mut client, driver) = raw_h2(&app).await;
    let request = http::Request::get(format!("http://{}/healthz", app.addr))
        .body(())
        .expect("request");
    let (reply, _) = client.send_request(request, true).expect("request");
    assert_eq!(reply.await.expect("reply").status(), http::StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the idle connection was closed")
        .expect("joined");
    app.shutdown().await;
}

/// Idle means no call open, as gRPC's MAX_CONNECTION_IDLE has it: a
/// connection holding only a health watch keeps serving new calls past the
/// idle timeout, and is sent away once the watch ends.
#[tokio::test]
async fn a_connection_holding_only_a_stream_is_not_idle_until_the_stream_ends() {
    // Long enough that the watch surely starts inside it on a loaded machine.
    const IDLE: Duration = Duration::from_secs(1);
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.connection_idle_timeout = IDLE;
    })
    .await
    else {
        return;
    };
    let (mut client, driver) = raw_h2(&app).await;
    let watch = http::Request::post(format!("http://{}/grpc.health.v1.Health/Watch", app.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (reply, mut request_body) = client.send_request(watch, false).expect("watch");
    // An empty HealthCheckRequest: the whole server's health.
    request_body
        .send_data(tonic::codegen::Bytes::from_static(&[0; 5]), true)
        .expect("message");
    let reply = reply.await.expect("reply");
    assert_eq!(reply.status(), http::StatusCode::OK);
    let mut updates = reply.into_body();
    assert!(
        updates.data().await.is_some_and(|m| m.is_ok()),
        "no first health update"
    );
    // Three idle timeouts with only the watch open.
    tokio::time::sleep(IDLE * 3).await;
    let healthz = || {
        http::Request::get(format!("http://{}/healthz", app.addr))
            .body(())
            .expect("request")
    };
    let mut client = client
        .ready()
        .await
        .expect("the connection was sent away while its watch ran");
    let (reply, _) = client.send_request(healthz(), true).expect("request");
    assert_eq!(reply.await.expect("reply").status(), http::StatusCode::OK);
    // The watch ends (the client resets it): the connection is idle now.
    drop((updates, request_body));
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the connection was closed once idle")
        .expect("joined");
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_count_the_connections_being_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    // One client for both scrapes, so they share their own connection.
    let http = app.http();
    let open = || async {
        let text = app.metrics_via(&http).await;
        text.lines()
            .find_map(|l| l.strip_prefix("timesheets_connections_open "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .expect("the gauge")
    };
    let before = open().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let mut status = [0u8; 12];
        socket.read_exact(&mut status).await.expect("served");
        held.push(socket);
    }
    assert_eq!(open().await - before, 3);
    app.shutdown().await;
}

/// Beyond the connection limit a new connection waits in the backlog,
/// unanswered, until an open one closes.
#[tokio::test]
async fn beyond_the_connection_limit_a_new_connection_waits_for_an_open_one_to_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two: the test app's own gRPC channel holds one.
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_connections = 2).await else {
        return;
    };
    const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    first.write_all(GET).await.expect("request");
    let mut status = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), first.read_exact(&mut status))
        .await
        .expect("the first connection, within the limit, is served")
        .expect("a response");
    assert_eq!(&status, b"HTTP/1.1 200");
    // The kernel completes the handshake; the server does not take it up.
    let mut second = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    second.write_all(GET).await.expect("request");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut status))
            .await
            .is_err(),
        "a connection beyond the limit was served"
    );
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut status))
        .await
        .expect("served once the first closed")
        .expect("a response");
    assert_eq!(&status, b"HTTP/1.1 200");
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    use tokio::io::AsyncReadExt;
    let Some((app, mut idle)) =
        raw_connection_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await
    else {
        return;
    };
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("a response");
    assert_eq!(&first, b"HTTP/1.1 200", "kept alive after a good request");
    assert!(
        closed_by_server(&mut idle).await,
        "an idle keep-alive connection was kept open"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_http1_header_block_over_the_limit_gets_431_and_one_under_it_is_served() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.max_header_bytes = 16 * 1024;
    })
    .await
    else {
        return;
    };
    let get_with_padding = |bytes: usize| {
        app.http()
            .get(app.url("/healthz"))
            .header("x-padding", "x".repeat(bytes))
            .send()
    };
    let over = get_with_padding(17 * 1024).await.expect("answered");
    assert_eq!(over.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let under = get_with_padding(12 * 1024).await.expect("answered");
    assert_eq!(under.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_whose_deadline_expires_while_waiting_for_the_database_stores_nothing_and_is_counted()
 {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let blocker = WriteLock::take(&app).await;
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let response = app
        .http()
        .post(app.url("/timesheets"))
        .bearer_auth(&token)
        .header("grpc-timeout", "300m")
        .json(&json!({"date": "2026-11-27", "project": "Late", "hours": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let mut request = tonic::Request::new(create("2026-11-27", "Late", 1.0));
    request.set_timeout(Duration::from_millis(300));
    let status = app
        .employee("alice@exampleco.com")
        .create_timesheet(request)
        .await
        .expect_err("deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    blocker.release().await;
    // The committer takes groups in order and may still be waiting for the
    // lock with the late ones: a create after them is answered only once
    // their group is decided, so the list below sees its outcome.
    let sentinel = app
        .employee("alice@exampleco.com")
        .create_timesheet(create("2026-11-28", "After", 1.0))
        .await
        .expect("a create without a deadline")
        .into_inner();
    // The cancelled work was not done behind the callers' backs.
    let listed = app
        .employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<_> = listed.timesheets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [sentinel.id.as_str()], "{:?}", listed.timesheets);
    // Both late calls were ended outside the service, and still counted.
    let text = app.metrics().await;
    for protocol in ["json", "grpc"] {
        let series = format!(
            "timesheets_requests_total{{method=\"CreateTimesheet\",protocol=\"{protocol}\",code=\"DEADLINE_EXCEEDED\"}} 1"
        );
        assert!(text.contains(&series), "missing {series} in\n{text}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn during_the_shutdown_delay_readiness_is_503_while_calls_are_still_served() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.shutdown_delay = Duration::from_secs(5)
    })
    .await
    else {
        return;
    };
    let app = app.begin_shutdown();
    // Readiness flips at once; the flag is set before the delay starts.
    let mut ready = StatusCode::OK;
    for _ in 0..100 {
        ready = app
            .http()
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz during the delay")
            .status();
        if ready == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    let fresh = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("still accepting");
    let health = HealthClient::new(fresh)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::NotServing);
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("calls still served");
    app.finish_shutdown().await;
}

/// Errors from the real databases: a locked SQLite database is worth a retry
/// (UNAVAILABLE); PostgreSQL refusing a NUL in text (SQLSTATE 22021, whose
/// low byte is SQLITE_BUSY's 5) never succeeds, so it must not be.
#[tokio::test]
async fn database_errors_are_retryable_only_when_a_retry_could_succeed() {
    use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
    use std::str::FromStr;
    use timesheets::storage::Error;

    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let options = SqliteConnectOptions::from_str(&db.url())
        .expect("url")
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let mut holder = options.connect().await.expect("open");
    sqlx::query("CREATE TABLE t (x)")
        .execute(&mut holder)
        .await
        .expect("table");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    let mut other = options.connect().await.expect("open again");
    let busy = sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut other)
        .await
        .expect_err("the database is locked");
    assert!(matches!(Error::from(busy), Error::Unavailable(_)));
    db.remove().await;

    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("skipped: TEST_POSTGRES_URL is not set, so the PostgreSQL half did not run");
        return;
    };
    let mut pg = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect");
    let nul = sqlx::query("SELECT $1::text")
        .bind("a\0b")
        .execute(&mut pg)
        .await
        .expect_err("text cannot hold a NUL");
    assert_eq!(
        nul.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("22021")
    );
    assert!(matches!(Error::from(nul), Error::Internal(_)));
}

/// The value of `series` (a name and its labels, as exposed) in a metrics text.
fn series_value<T: std::str::FromStr>(metrics: &str, series: &str) -> Option<T> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of one `timesheets_requests_total` series, 0 when absent.
async fn calls_counted(app: &TestApp, method: &str, protocol: &str, code: &str) -> u64 {
    let series = format!(
        "timesheets_requests_total{{method=\"{method}\",protocol=\"{protocol}\",code=\"{code}\"}}"
    );
    series_value(&app.metrics().await, &series).unwrap_or(0)
}

#[tokio::test]
async fn a_call_its_client_gives_up_on_is_counted_as_cancelled() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let blocker = WriteLock::take(&app).await;
    let create = create_in_flight(&app).await;
    // Dropping the call resets its HTTP/2 stream; the server drops it too.
    create.abort();
    let mut counted = 0;
    for _ in 0..2000 {
        counted = calls_counted(&app, "CreateTimesheet", "grpc", "CANCELLED").await;
        if counted > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(counted, 1);
    blocker.release().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_row_cache_reports_its_hits_misses_and_weight() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let mut alice = app.employee("alice@exampleco.com");
    let id = alice
        .create_timesheet(create("2026-11-27", "Website", 7.5))
        .await
        .expect("create")
        .into_inner()
        .id;
    for _ in 0..3 {
        alice
            .get_timesheet(GetTimesheetRequest { id: id.clone() })
            .await
            .expect("get");
    }
    let text = app.metrics().await;
    let sample = |series: &str| -> u64 {
        series_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        sample("timesheets_row_cache_lookups_total{result=\"miss\"}"),
        1
    );
    assert_eq!(
        sample("timesheets_row_cache_lookups_total{result=\"hit\"}"),
        2
    );
    assert!(sample("timesheets_row_cache_bytes") > 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_that_disconnects_in_the_middle_of_its_request_is_counted_as_cancelled() {
    disconnect_mid_request_over_http2("application/grpc", "grpc").await;
}

#[tokio::test]
async fn a_grpc_web_client_over_http2_that_disconnects_mid_request_is_counted_as_cancelled() {
    // Browsers speak gRPC-Web over HTTP/2 wherever the server offers it.
    disconnect_mid_request_over_http2("application/grpc-web+proto", "grpc-web").await;
}

/// A CreateTimesheet sent over a raw HTTP/2 connection as `content_type`,
/// with half its message, then the connection closed.
async fn disconnect_mid_request_over_http2(content_type: &str, protocol: &str) {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let (mut client, driver) = raw_h2(&app).await;
    let request = http::Request::post(format!(
        "http://{}/timesheets.v1.TimesheetService/CreateTimesheet",
        app.addr
    ))
    .header("content-type", content_type)
    .header("te", "trailers")
    .header("authorization", format!("Bearer {token}"))
    .body(())
    .expect("request");
    let (_reply, mut body) = client.send_request(request, false).expect("send");
    // A message header announcing 100 bytes, then 3 of them.
    body.send_data(
        tonic::codegen::Bytes::from_static(&[0, 0, 0, 0, 100, 10, 1, 2]),
        false,
    )
    .expect("part of the message");
    until_in_flight(&app).await;
    // The connection goes away with the message unfinished.
    driver.abort();
    drop((body, client));
    assert_counted_only_as_cancelled(&app, protocol).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_grpc_web_client_over_http1_that_disconnects_mid_request_is_counted_as_cancelled() {
    // A message header announcing 100 bytes, then 3 of them.
    disconnect_mid_body_over_http1(
        "/timesheets.v1.TimesheetService/CreateTimesheet",
        "content-type: application/grpc-web+proto\r\nx-grpc-web: 1",
        105,
        &[0, 0, 0, 0, 100, 10, 1, 2],
        "grpc-web",
    )
    .await;
}

#[tokio::test]
async fn a_json_client_that_disconnects_mid_body_is_counted_as_cancelled() {
    disconnect_mid_body_over_http1(
        "/timesheets",
        "content-type: application/json",
        100,
        b"{\"date\": \"2026-",
        "json",
    )
    .await;
}

/// Starts a create by alice on a raw HTTP/1.1 connection, sends `headers`
/// and `part` of a `length`-byte body, closes the connection once the call
/// is in flight, and checks how it was counted.
async fn disconnect_mid_body_over_http1(
    path: &str,
    headers: &str,
    length: usize,
    part: &[u8],
    protocol: &str,
) {
    use tokio::io::AsyncWriteExt;
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.max_concurrent_requests = 1).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\n{headers}\r\n\
         authorization: Bearer {token}\r\ncontent-length: {length}\r\n\r\n",
        app.addr
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(part).await.expect("part of the body");
    until_in_flight(&app).await;
    drop(tcp);
    assert_counted_only_as_cancelled(&app, protocol).await;
    app.shutdown().await;
}

/// Waits for the one CreateTimesheet call over `protocol` to be counted,
/// and checks it was counted CANCELLED: not UNKNOWN (tonic's code for a
/// body that failed to arrive), INTERNAL (tonic-web's) or any other code
/// that would read as the server's fault.
async fn assert_counted_only_as_cancelled(app: &TestApp, protocol: &str) {
    let mut cancelled = 0;
    for _ in 0..2000 {
        cancelled = calls_counted(app, "CreateTimesheet", protocol, "CANCELLED").await;
        if cancelled > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(cancelled, 1);
    let text = app.metrics().await;
    let others: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("timesheets_requests_total{method=\"CreateTimesheet\""))
        .filter(|l| !l.contains("code=\"CANCELLED\"") && !l.trim_end().ends_with(" 0"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[tokio::test]
async fn a_call_whose_deadline_is_spent_on_arrival_does_no_work_and_is_counted() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    use prost::Message;
    let grpc_frame = |message: Vec<u8>| {
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(&message);
        frame
    };
    let spent = |path: &str, body: Vec<u8>| {
        app.h2()
            .post(app.url(path))
            // Not a token: were the call checked at all, it would be 16.
            .bearer_auth("not-a-token")
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "1n")
            .body(grpc_frame(body))
            .send()
    };
    let create = spent(
        "/timesheets.v1.TimesheetService/CreateTimesheet",
        create("2026-11-27", "Late", 1.0).encode_to_vec(),
    );
    // Outside the service too: a health check is not answered SERVING.
    let health = spent(
        "/grpc.health.v1.Health/Check",
        HealthCheckRequest::default().encode_to_vec(),
    );
    for (what, response) in [("create", create.await), ("health", health.await)] {
        let response = response.expect("send");
        let status = header_value(&response, "grpc-status");
        assert_eq!(status, Some("4"), "{what}: {:?}", response.headers());
    }
    assert_eq!(
        calls_counted(&app, "CreateTimesheet", "grpc", "DEADLINE_EXCEEDED").await,
        1
    );
    assert_eq!(
        calls_counted(&app, "CreateTimesheet", "grpc", "UNAUTHENTICATED").await,
        0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_grpc_web_text_body_that_does_not_decode_is_the_clients_mistake_not_a_server_error() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    for (what, body) in [("not base64", "!!!!"), ("cut short mid-quantum", "AAAAAA")] {
        let response = app
            .http()
            .post(app.url("/timesheets.v1.TimesheetService/ListTimesheets"))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, "application/grpc-web-text")
            .header(header::ACCEPT, "application/grpc-web-text")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        // A trailers-only answer: the status is in the headers.
        assert_eq!(
            header_value(&response, "grpc-status"),
            Some("3"),
            "{what}: {:?}",
            response.headers()
        );
    }
    assert_eq!(
        calls_counted(&app, "ListTimesheets", "grpc-web", "INVALID_ARGUMENT").await,
        2
    );
    assert_eq!(
        calls_counted(&app, "ListTimesheets", "grpc-web", "INTERNAL").await,
        0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn json_calls_refused_for_their_body_or_their_token_are_counted_like_any_call() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let http = app.http();
    let create = |body: String| {
        http.post(app.url("/timesheets"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let malformed = create("{\"date\": ".into())
        .bearer_auth(&token)
        .send()
        .await;
    assert_eq!(malformed.expect("malformed").status(), 400);
    // Just over the 1 MiB default, as the 413 test sends: a body far over
    // it can meet a reset while it is still being sent, since it is
    // refused unread.
    let oversized = create("x".repeat(1024 * 1024 + 1))
        .bearer_auth(&token)
        .send()
        .await;
    assert_eq!(oversized.expect("oversized").status(), 413);
    let anonymous = create("{\"date\": ".into())
        .send()
        .await
        .expect("anonymous");
    assert_eq!(anonymous.status(), 401);

    assert_eq!(
        (
            calls_counted(&app, "CreateTimesheet", "json", "INVALID_ARGUMENT").await,
            calls_counted(&app, "CreateTimesheet", "json", "UNAUTHENTICATED").await,
        ),
        (2, 1)
    );
    app.shutdown().await;
}
