//! `--log-format json`: one span per request carrying what an operator
//! needs, and nothing a caller would not want written down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::issuer::TestIssuer;

/// The `request finished` event of the request with `request_id`.
async fn finished_event(binary: &mut Binary, request_id: &str, seen: &mut Vec<String>) -> Value {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), binary.logs.recv())
            .await
            .expect("the request is logged within 10 s")
            .expect("the server is still logging");
        seen.push(line.clone());
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["fields"]["message"] == "request finished"
            && event["span"]["request_id"] == request_id
        {
            return event;
        }
    }
}

#[tokio::test]
async fn a_json_log_line_names_the_method_protocol_status_latency_hashed_caller_and_request_id() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    let mut binary = start_binary(&db.url(), &issuer, "info,timesheets=debug").await;
    let email = "alice@exampleco.com";
    let token = issuer.token(email, EMPLOYEE);
    let note = "secret-note-body";
    let created = reqwest::Client::new()
        .post(format!("http://{}/timesheets", binary.addr))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-42")
        .json(&json!({"date": "2026-11-27", "project": "Website", "hours": 1, "notes": note}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    assert_eq!(created.headers()["x-request-id"], "trace-me-42");

    let mut seen = Vec::new();
    let event = finished_event(&mut binary, "trace-me-42", &mut seen).await;
    let span = &event["span"];
    assert_eq!(span["rpc"], "CreateTimesheet", "{event}");
    assert_eq!(span["method"], "POST", "{event}");
    assert_eq!(span["protocol"], "json", "{event}");
    assert_eq!(span["grpc_code"], "OK", "{event}");
    assert_eq!(event["fields"]["status"], 201, "{event}");
    assert!(event["fields"]["latency_ms"].as_f64().is_some(), "{event}");
    let subject = span["subject"].as_str().expect("a subject tag");
    assert_eq!(subject.len(), 12, "a short hash: {subject}");
    assert!(subject.chars().all(|c| c.is_ascii_hexdigit()), "{subject}");

    // What was logged holds neither the token, nor its signature, nor the
    // caller in clear, nor the request body.
    let signature = token.rsplit('.').next().expect("a JWS");
    for line in &seen {
        for secret in [token.as_str(), signature, email, note] {
            assert!(!line.contains(secret), "{secret:?} logged in {line}");
        }
    }
    binary.child.kill().await.expect("stop the server");
    issuer.stop().await;
    db.remove().await;
}

#[tokio::test]
async fn at_info_a_server_failure_is_logged_as_a_warning_with_the_whole_request_on_every_protocol_and_a_success_is_not()
 {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    // No keys at startup: every authenticated call is UNAVAILABLE (503).
    issuer.set_down(true);
    let mut binary = start_binary(&db.url(), &issuer, "info").await;
    let http = reqwest::Client::new();
    let healthy = http
        .get(format!("http://{}/healthz", binary.addr))
        .header("x-request-id", "fine-1")
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthy.status(), reqwest::StatusCode::OK);
    // A method the server does not have is the client's probe, not a
    // server failure, though UNIMPLEMENTED maps to 501.
    let probe = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client")
        .post(format!(
            "http://{}/timesheets.v1.TimesheetService/NoSuchMethod",
            binary.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-request-id", "probe-10")
        .body(vec![0u8; 5])
        .send()
        .await
        .expect("unknown method");
    assert_eq!(
        probe
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()),
        Some("12")
    );
    let failed = http
        .get(format!("http://{}/timesheets", binary.addr))
        .bearer_auth(issuer.token("alice@exampleco.com", EMPLOYEE))
        .header("x-request-id", "fail-me-7")
        .send()
        .await
        .expect("list");
    assert_eq!(failed.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // The same failure over native gRPC is HTTP 200 with grpc-status 14.
    let mut grpc = TimesheetServiceClient::connect(format!("http://{}", binary.addr))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(ListTimesheetsRequest::default());
    let bearer = format!("Bearer {}", issuer.token("alice@exampleco.com", EMPLOYEE));
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().expect("ascii"));
    request
        .metadata_mut()
        .insert("x-request-id", "fail-grpc-8".parse().expect("ascii"));
    let status = grpc
        .list_timesheets(request)
        .await
        .expect_err("keys are down");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    // And over gRPC-Web, as a browser sends it.
    let web = http
        .post(format!(
            "http://{}/timesheets.v1.TimesheetService/ListTimesheets",
            binary.addr
        ))
        .bearer_auth(issuer.token("alice@exampleco.com", EMPLOYEE))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-request-id", "fail-web-9")
        .body(vec![0u8; 5])
        .send()
        .await
        .expect("gRPC-Web list");
    assert_eq!(
        web.headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()),
        Some("14")
    );

    let mut seen = Vec::new();
    let event = finished_event(&mut binary, "fail-me-7", &mut seen).await;
    assert_eq!(event["level"], "WARN", "{event}");
    let span = &event["span"];
    assert_eq!(span["method"], "GET", "{event}");
    assert_eq!(span["path"], "/timesheets", "{event}");
    assert_eq!(span["protocol"], "json", "{event}");
    assert_eq!(span["rpc"], "ListTimesheets", "{event}");
    assert_eq!(span["grpc_code"], "UNAVAILABLE", "{event}");
    assert_eq!(event["fields"]["status"], 503, "{event}");
    let event = finished_event(&mut binary, "fail-grpc-8", &mut seen).await;
    assert_eq!(event["level"], "WARN", "{event}");
    let span = &event["span"];
    assert_eq!(span["protocol"], "grpc", "{event}");
    assert_eq!(span["rpc"], "ListTimesheets", "{event}");
    assert_eq!(span["grpc_code"], "UNAVAILABLE", "{event}");
    assert_eq!(event["fields"]["status"], 200, "{event}");
    let event = finished_event(&mut binary, "fail-web-9", &mut seen).await;
    assert_eq!(event["level"], "WARN", "{event}");
    assert_eq!(event["span"]["protocol"], "grpc-web", "{event}");
    assert_eq!(event["span"]["grpc_code"], "UNAVAILABLE", "{event}");
    // Lines arrive in order, so the earlier success would have come first.
    assert!(
        !seen.iter().any(|line| line.contains("fine-1")),
        "a success is not logged at info: {seen:?}"
    );
    assert!(
        !seen.iter().any(|line| line.contains("probe-10")),
        "nor is a call of a method the server does not have: {seen:?}"
    );
    binary.child.kill().await.expect("stop the server");
    issuer.stop().await;
    db.remove().await;
}
