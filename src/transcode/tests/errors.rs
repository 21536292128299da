//! Every error shape: AIP-193 bodies, the status table, `Allow`,
//! `WWW-Authenticate`, `Retry-After`, decoded details, and client mistakes
//! that must be 4xx, never 5xx.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Answer, fake, http, ok_reply, send, status_reply, timesheets};
use crate::{
    auth::AuthError,
    proto::timesheets::v1::Timesheet,
    transcode::{TranscodeOptions, http_status},
};

async fn answer_with(status: Status, request: http::Request<axum::body::Body>) -> Answer {
    let (grpc, _) = fake(move |_| status_reply(status.clone()));
    send(timesheets(TranscodeOptions::default()), grpc, request).await
}

/// Asserts the AIP-193 envelope and returns the error object.
fn envelope(answer: &Answer, status: u16, name: &str) -> serde_json::Value {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let json = answer.json();
    let error = json["error"].clone();
    assert_eq!(error["code"], status, "{json}");
    assert_eq!(error["status"], name, "{json}");
    assert!(error["message"].is_string(), "{json}");
    assert!(error["details"].is_array(), "{json}");
    error
}

#[test]
fn the_status_table_follows_google_rpc_code_proto() {
    let table = [
        (Code::Ok, 200),
        (Code::Cancelled, 499),
        (Code::Unknown, 500),
        (Code::InvalidArgument, 400),
        (Code::DeadlineExceeded, 504),
        (Code::NotFound, 404),
        (Code::AlreadyExists, 409),
        (Code::PermissionDenied, 403),
        (Code::ResourceExhausted, 429),
        (Code::FailedPrecondition, 400),
        (Code::Aborted, 409),
        (Code::OutOfRange, 400),
        (Code::Unimplemented, 501),
        (Code::Internal, 500),
        (Code::Unavailable, 503),
        (Code::DataLoss, 500),
        (Code::Unauthenticated, 401),
    ];
    for (code, status) in table {
        assert_eq!(http_status(code).as_u16(), status, "{code:?}");
    }
}

#[tokio::test]
async fn routing_errors_are_json_404_and_405_with_allow() {
    let answer = answer_with(Status::ok(""), http("GET", "/nowhere", "")).await;
    envelope(&answer, 404, "NOT_FOUND");
    let cases = [
        ("PATCH", "/v1/timesheets/x", "DELETE, GET, HEAD"),
        ("POST", "/approvals/x", "PUT"),
        ("DELETE", "/timesheets", "GET, HEAD, POST"),
    ];
    for (method, path, allow) in cases {
        let answer = answer_with(Status::ok(""), http(method, path, "")).await;
        envelope(&answer, 405, "UNIMPLEMENTED");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn client_mistakes_are_400_naming_the_problem() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "a body on a bodyless rule",
            "GET",
            "/v1/timesheets/x",
            "{}",
            "takes no request body",
        ),
        (
            "an unknown JSON field",
            "POST",
            "/timesheets",
            r#"{"colour":"red"}"#,
            "colour",
        ),
        (
            "malformed JSON",
            "POST",
            "/timesheets",
            r#"{"hours":"#,
            "line 1 column 9",
        ),
        (
            "a wrong JSON type",
            "POST",
            "/timesheets",
            r#"{"hours":true}"#,
            "invalid type",
        ),
        (
            "an unknown query parameter",
            "GET",
            "/v1/timesheets?colour=red",
            "",
            "unknown query parameter colour",
        ),
        (
            "a query on a body-* rule",
            "PUT",
            "/approvals/x?id=y",
            "",
            "unknown query parameter id",
        ),
        (
            "a query for the body field",
            "POST",
            "/timesheets?timesheet.hours=1",
            "",
            "bound by the body",
        ),
        (
            "a query for a path field",
            "GET",
            "/v1/timesheets/x?id=y",
            "",
            "bound by the path",
        ),
        (
            "a bad number in the query",
            "GET",
            "/v1/timesheets?page_size=ten",
            "",
            "page_size",
        ),
        (
            "a repeated singular parameter",
            "GET",
            "/v1/timesheets?project=a&project=b",
            "",
            "more than once",
        ),
        (
            "a path value that is not UTF-8",
            "GET",
            "/v1/timesheets/%FF",
            "",
            "not UTF-8",
        ),
    ];
    for (description, method, uri, body, needle) in cases {
        let answer = answer_with(Status::ok(""), http(method, uri, body)).await;
        let error = envelope(&answer, 400, "INVALID_ARGUMENT");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{description}: {message}");
    }
}

#[tokio::test]
async fn unknown_fields_pass_when_configured() {
    let (grpc, log) = fake(|_| ok_reply(&Timesheet::default()));
    let options = TranscodeOptions {
        ignore_unknown_fields: true,
        ..Default::default()
    };
    let answer = send(
        timesheets(options),
        grpc,
        http("POST", "/timesheets", r#"{"colour":"red"}"#),
    )
    .await;
    assert_eq!(answer.status, 201);
    assert_eq!(log.lock().expect("log").len(), 1);
}

#[tokio::test]
async fn query_violations_carry_a_bad_request_detail() {
    let answer = answer_with(Status::ok(""), http("GET", "/v1/timesheets?colour=red", "")).await;
    let error = envelope(&answer, 400, "INVALID_ARGUMENT");
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        error["details"][0]["field_violations"][0]["field"], "colour",
        "{error}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let options = TranscodeOptions {
        max_body_bytes: 16,
        ..Default::default()
    };
    let body = r#"{"project":"a long project name"}"#;
    let (grpc, log) = fake(|_| ok_reply(&Timesheet::default()));
    let mut announced = http("POST", "/timesheets", body);
    announced
        .headers_mut()
        .insert("content-length", body.len().into());
    let answer = send(timesheets(options.clone()), grpc.clone(), announced).await;
    envelope(&answer, 413, "INVALID_ARGUMENT");
    let answer = send(timesheets(options), grpc, http("POST", "/timesheets", body)).await;
    envelope(&answer, 413, "INVALID_ARGUMENT");
    assert!(
        log.lock().expect("log").is_empty(),
        "nothing reached the service"
    );
}

#[tokio::test]
async fn grpc_failures_keep_their_message_and_decoded_details() {
    let mut details =
        ErrorDetails::with_bad_request_violation("timesheet.hours", "must be at most 24");
    details.set_error_info(
        "HOURS_OUT_OF_RANGE",
        "timesheets.exampleco.com",
        HashMap::new(),
    );
    let status = Status::with_error_details(Code::InvalidArgument, "invalid timesheet", details);
    let answer = answer_with(status, http("POST", "/timesheets", r#"{"hours":25}"#)).await;
    let error = envelope(&answer, 400, "INVALID_ARGUMENT");
    assert_eq!(error["message"], "invalid timesheet");
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let of_type = |t: &str| {
        details
            .iter()
            .find(|d| d["@type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    let bad_request = of_type("type.googleapis.com/google.rpc.BadRequest");
    assert_eq!(
        bad_request["field_violations"][0]["field"], "timesheet.hours",
        "{error}"
    );
    let info = of_type("type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "HOURS_OUT_OF_RANGE", "{error}");
}

#[tokio::test]
async fn unknown_detail_types_are_kept_opaque() {
    let any = prost_types::Any {
        type_url: "type.googleapis.com/acme.Unknown".into(),
        value: vec![1, 2, 3],
    };
    let details = tonic_types::pb::Status {
        code: 5,
        message: "gone".into(),
        details: vec![any],
    };
    let status = Status::with_details(
        Code::NotFound,
        "gone",
        prost::Message::encode_to_vec(&details).into(),
    );
    let answer = answer_with(status, http("GET", "/v1/timesheets/x", "")).await;
    let error = envelope(&answer, 404, "NOT_FOUND");
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/acme.Unknown"
    );
    assert_eq!(error["details"][0]["value"], "AQID");
}

#[tokio::test]
async fn auth_failures_carry_the_challenge() {
    let cases = [
        (
            AuthError::MissingCredentials,
            401,
            "UNAUTHENTICATED",
            "Bearer realm=\"timesheets\"",
        ),
        (
            AuthError::InsufficientScope("read:timesheets".into()),
            403,
            "PERMISSION_DENIED",
            "Bearer realm=\"timesheets\", error=\"insufficient_scope\", scope=\"read:timesheets\"",
        ),
    ];
    for (error, status, name, challenge) in cases {
        let answer = answer_with(error.to_status(), http("GET", "/v1/timesheets/x", "")).await;
        let body = envelope(&answer, status, name);
        assert_eq!(answer.header("www-authenticate"), Some(challenge));
        assert_eq!(
            body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo",
            "{body}"
        );
    }
}

#[tokio::test]
async fn unavailable_asks_to_retry() {
    let answer = answer_with(
        AuthError::KeysUnavailable.to_status(),
        http("GET", "/timesheets", ""),
    )
    .await;
    envelope(&answer, 503, "UNAVAILABLE");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.header("www-authenticate"), None);
}

#[tokio::test]
async fn a_broken_grpc_reply_is_a_500_that_hides_the_cause() {
    let (grpc, _) = fake(|_| http::Response::new(tonic::body::Body::empty()));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("GET", "/v1/timesheets/x", ""),
    )
    .await;
    let error = envelope(&answer, 500, "INTERNAL");
    assert_eq!(error["message"], "internal error");
}

#[tokio::test]
async fn grpc_requests_that_fall_through_get_a_grpc_answer() {
    let (grpc, _) = fake(|_| ok_reply(&Timesheet::default()));
    let request = http::Request::builder()
        .method("POST")
        .uri("/acme.Nothing/Here")
        .header("content-type", "application/grpc")
        .body(axum::body::Body::empty())
        .expect("request");
    let answer = send(timesheets(TranscodeOptions::default()), grpc, request).await;
    assert_eq!(answer.header("grpc-status"), Some("12"));
}

#[tokio::test]
async fn a_call_refused_before_its_message_is_answered_without_reading_the_body() {
    // As the auth layer does: the refusal comes from the headers alone.
    let refuse = tower::service_fn(|_: http::Request<tonic::body::Body>| async {
        Ok::<_, std::convert::Infallible>(status_reply(Status::unauthenticated("no token")))
    });
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&polled);
    let body = futures::stream::poll_fn(move |_| {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(axum::body::Bytes::from(
            "{\"date\": ",
        ))))
    });
    let request = http::Request::post("/timesheets")
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(body))
        .expect("request");
    let answer = send(
        timesheets(TranscodeOptions::default()),
        crate::transcode::GrpcService::new(refuse),
        request,
    )
    .await;
    envelope(&answer, 401, "UNAUTHENTICATED");
    assert!(
        !polled.load(std::sync::atomic::Ordering::Relaxed),
        "the body was read"
    );
}
