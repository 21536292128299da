//! Golden request building: one HTTP request per binding of timesheets.proto,
//! and the exact gRPC request (path, metadata, message) it must become.

use prost::Message as _;

use super::{fake, http, ok_reply, send, timesheets};
use crate::{
    proto::timesheets::v1::{
        ApproveTimesheetRequest, CreateTimesheetRequest, DeleteTimesheetRequest,
        GetTimesheetRequest, ListPendingApprovalsRequest, ListTimesheetsRequest, Timesheet,
        UploadTimesheetRequest,
    },
    transcode::TranscodeOptions,
};

const SERVICE: &str = "/timesheets.v1.TimesheetService/";

/// Sends one request and returns the gRPC method and raw message received.
async fn transcode(request: http::Request<axum::body::Body>) -> (String, axum::body::Bytes) {
    let (grpc, log) = fake(|_| ok_reply(&Timesheet::default()));
    let answer = send(timesheets(TranscodeOptions::default()), grpc, request).await;
    let received = log.lock().expect("log").pop();
    let received = received.unwrap_or_else(|| panic!("no gRPC call; answer {answer:?}"));
    (
        received.path.trim_start_matches(SERVICE).to_owned(),
        received.message,
    )
}

fn spa_timesheet() -> Timesheet {
    Timesheet {
        date: "2026-11-27".into(),
        project: "Website".into(),
        hours: 7.5,
        ..Default::default()
    }
}

fn cron_timesheet() -> Timesheet {
    Timesheet {
        user_id: "007".into(),
        date: "2017-05-10T17:40:20.095Z".into(),
        project: "StoreZero".into(),
        hours: 5.0,
        ..Default::default()
    }
}

#[tokio::test]
async fn create_binds_the_body_to_the_timesheet_field() {
    let spa = r#"{"date":"2026-11-27","project":"Website","hours":7.5}"#;
    for path in ["/v1/timesheets", "/timesheets"] {
        let (method, message) = transcode(http("POST", path, spa)).await;
        assert_eq!(method, "CreateTimesheet", "{path}");
        let request = CreateTimesheetRequest::decode(message).expect("decodes");
        assert_eq!(
            request,
            CreateTimesheetRequest {
                timesheet: Some(spa_timesheet()),
                request_id: String::new()
            }
        );
    }
}

#[tokio::test]
async fn android_hours_as_a_string_and_an_idempotency_key_are_accepted() {
    let mut request = http(
        "POST",
        "/timesheets",
        r#"{"date":"2026-11-27","project":"Website","hours":"8"}"#,
    );
    request
        .headers_mut()
        .insert("idempotency-key", "retry-1".parse().expect("header"));
    let (_, message) = transcode(request).await;
    let request = CreateTimesheetRequest::decode(message).expect("decodes");
    assert_eq!(request.timesheet.map(|t| t.hours), Some(8.0));
    assert_eq!(
        request.request_id, "retry-1",
        "the header fills an empty request_id"
    );
}

#[tokio::test]
async fn an_idempotency_key_never_overrides_a_request_id_in_the_query() {
    let mut request = http(
        "POST",
        "/timesheets?request_id=from-query",
        r#"{"hours":1}"#,
    );
    request
        .headers_mut()
        .insert("idempotency-key", "from-header".parse().expect("header"));
    let (_, message) = transcode(request).await;
    assert_eq!(
        CreateTimesheetRequest::decode(message)
            .expect("decodes")
            .request_id,
        "from-query"
    );
}

#[tokio::test]
async fn get_and_delete_bind_the_id_from_the_path() {
    let (method, message) = transcode(http("GET", "/v1/timesheets/01J%2Fx", "")).await;
    assert_eq!(method, "GetTimesheet");
    assert_eq!(
        GetTimesheetRequest::decode(message).expect("decodes").id,
        "01J/x"
    );
    let (method, message) = transcode(http("DELETE", "/v1/timesheets/abc", "")).await;
    assert_eq!(method, "DeleteTimesheet");
    assert_eq!(
        DeleteTimesheetRequest::decode(message).expect("decodes").id,
        "abc"
    );
}

#[tokio::test]
async fn list_fills_the_request_from_the_query() {
    let uri = "/v1/timesheets?page_size=5&pageToken=t1&start_date=2026-01-01&endDate=2026-01-31&project=Web+site";
    let (method, message) = transcode(http("GET", uri, "")).await;
    assert_eq!(method, "ListTimesheets");
    let expected = ListTimesheetsRequest {
        page_size: 5,
        page_token: "t1".into(),
        start_date: "2026-01-01".into(),
        end_date: "2026-01-31".into(),
        project: "Web site".into(),
    };
    assert_eq!(
        ListTimesheetsRequest::decode(message).expect("decodes"),
        expected
    );
    for uri in ["/timesheets", "/timesheets/"] {
        let (method, message) = transcode(http("GET", uri, "")).await;
        assert_eq!(method, "ListTimesheets", "{uri}");
        assert_eq!(
            ListTimesheetsRequest::decode(message).expect("decodes"),
            ListTimesheetsRequest::default()
        );
    }
}

#[tokio::test]
async fn upload_binds_the_cron_body_whatever_the_path() {
    let cron =
        r#"{"user_id":"007","date":"2017-05-10T17:40:20.095Z","project":"StoreZero","hours":5}"#;
    for path in ["/v1/timesheets:upload", "/timesheets/upload"] {
        let (method, message) = transcode(http("POST", path, cron)).await;
        assert_eq!(
            method, "UploadTimesheet",
            "{path}: the verb beats the plain create path"
        );
        let request = UploadTimesheetRequest::decode(message).expect("decodes");
        assert_eq!(request.timesheet, Some(cron_timesheet()), "{path}");
    }
}

#[tokio::test]
async fn approvals_list_from_the_query() {
    for (uri, size) in [("/v1/approvals?page_size=2", 2), ("/approvals", 0)] {
        let (method, message) = transcode(http("GET", uri, "")).await;
        assert_eq!(method, "ListPendingApprovals", "{uri}");
        let request = ListPendingApprovalsRequest::decode(message).expect("decodes");
        assert_eq!(request.page_size, size, "{uri}");
    }
}

#[tokio::test]
async fn approve_takes_an_empty_body_or_an_empty_object() {
    let cases = [
        ("POST", "/v1/timesheets/abc:approve", "{}"),
        ("PUT", "/approvals/abc", ""),
        ("PUT", "/approvals/abc", "{}"),
        ("PUT", "/approvals/abc", " \n"),
    ];
    for (verb, path, body) in cases {
        let (method, message) = transcode(http(verb, path, body)).await;
        assert_eq!(method, "ApproveTimesheet", "{verb} {path} {body:?}");
        assert_eq!(
            ApproveTimesheetRequest::decode(message)
                .expect("decodes")
                .id,
            "abc"
        );
    }
}

#[tokio::test]
async fn the_path_wins_over_the_body_for_the_same_field() {
    let (_, message) =
        transcode(http("PUT", "/approvals/from-path", r#"{"id":"from-body"}"#)).await;
    assert_eq!(
        ApproveTimesheetRequest::decode(message)
            .expect("decodes")
            .id,
        "from-path"
    );
}

#[tokio::test]
async fn the_grpc_request_carries_exactly_the_forwarded_metadata() {
    let (grpc, log) = fake(|_| ok_reply(&Timesheet::default()));
    let mut request = http("GET", "/v1/timesheets/abc", "");
    for (name, value) in [
        ("authorization", "Bearer abc.def.ghi"),
        ("x-request-id", "req-1"),
        ("grpc-timeout", "5S"),
        ("cookie", "session=secret"),
        ("x-tenant", "acme"),
    ] {
        request
            .headers_mut()
            .insert(name, value.parse().expect("header"));
    }
    let options = TranscodeOptions {
        forward_headers: vec![http::HeaderName::from_static("x-tenant")],
        ..Default::default()
    };
    send(timesheets(options), grpc, request).await;
    let received = log.lock().expect("log").pop().expect("a call");
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    assert_eq!(
        received.path,
        "/timesheets.v1.TimesheetService/GetTimesheet"
    );
    assert_eq!(header("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(header("te").as_deref(), Some("trailers"));
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer abc.def.ghi")
    );
    assert_eq!(header("x-request-id").as_deref(), Some("req-1"));
    assert_eq!(header("grpc-timeout").as_deref(), Some("5S"));
    assert_eq!(
        header("x-tenant").as_deref(),
        Some("acme"),
        "configured headers are forwarded"
    );
    assert_eq!(header("cookie"), None, "other headers stay behind");
}
