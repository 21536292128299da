//! The HTTP/JSON surface's own cost: a create request through the transcoder
//! (JSON body → request message → in-process gRPC call → reply message →
//! JSON), and a list reply of 50 entries rendered as the original API's bare
//! JSON array.
//!
//! `cargo bench --bench transcode` (about 10 s). The gRPC side is a fake
//! service that decodes the request and answers at once, so what is measured
//! is the transcoder, not auth or storage.

use std::{convert::Infallible, hint::black_box, time::Duration};

use axum::body::{Body, Bytes};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use timesheets::{
    proto::{
        SERVICE_NAME, descriptor_pool,
        timesheets::v1::{CreateTimesheetRequest, ListTimesheetsResponse, Timesheet},
    },
    transcode::{GrpcService, TranscodeOptions, Transcoder},
};
use tower::ServiceExt;

const CREATE_JSON: &str = r#"{"date":"2026-11-27","project":"Website","hours":7.5,"notes":"x"}"#;

fn stored(timesheet: Timesheet, n: u64) -> Timesheet {
    Timesheet {
        id: format!("0190b7c1d2e37f00a1b2c3d4e5f6{n:04x}"),
        user_id: "bench.user@exampleco.com".into(),
        create_time: Some(prost_types::Timestamp {
            seconds: 1_764_230_400,
            nanos: 0,
        }),
        ..timesheet
    }
}

/// One unary gRPC reply: a length-prefixed frame, then `grpc-status: 0` in the trailers.
fn grpc_reply(message: &impl Message) -> Response<tonic::body::Body> {
    let mut frame = Vec::with_capacity(5 + message.encoded_len());
    frame.push(0);
    frame.extend_from_slice(&(message.encoded_len() as u32).to_be_bytes());
    message.encode(&mut frame).expect("a Vec grows");
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(Bytes::from(frame))
        .with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Stands in for the TimesheetService: decodes a create and echoes it as
/// stored; answers a list with 50 entries.
async fn fake_service(
    request: Request<tonic::body::Body>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let is_create = request.uri().path().ends_with("/CreateTimesheet");
    let body = request
        .into_body()
        .collect()
        .await
        .expect("in-memory body")
        .to_bytes();
    if is_create {
        let create = CreateTimesheetRequest::decode(&body[5..]).expect("a valid frame");
        Ok(grpc_reply(&stored(create.timesheet.unwrap_or_default(), 1)))
    } else {
        let entry = Timesheet {
            date: "2026-11-27".into(),
            project: "Website".into(),
            hours: 7.5,
            notes: "x".into(),
            ..Timesheet::default()
        };
        let timesheets = (0..50).map(|n| stored(entry.clone(), n)).collect();
        Ok(grpc_reply(&ListTimesheetsResponse {
            timesheets,
            next_page_token: String::new(),
        }))
    }
}

fn router() -> axum::Router {
    let transcoder = Transcoder::new(
        descriptor_pool(),
        &[SERVICE_NAME],
        TranscodeOptions::default(),
    )
    .expect("the contract's http rules are valid");
    transcoder.into_router(GrpcService::new(tower::service_fn(fake_service)))
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("in-memory body")
        .to_bytes();
    (status, body)
}

fn create_request() -> Request<Body> {
    Request::post("/v1/timesheets")
        .header("content-type", "application/json")
        .header("authorization", "Bearer not-checked-here")
        .body(Body::from(CREATE_JSON))
        .expect("valid request")
}

fn list_request() -> Request<Body> {
    Request::get("/timesheets?page_size=50")
        .header("authorization", "Bearer not-checked-here")
        .body(Body::empty())
        .expect("valid request")
}

fn transcoding(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let router = router();
    let (status, body) = runtime.block_on(call(&router, create_request()));
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("JSON reply");
    assert_eq!(reply["project"], "Website");
    assert_eq!(reply["user_id"], "bench.user@exampleco.com");
    let (status, body) = runtime.block_on(call(&router, list_request()));
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON reply");
    assert_eq!(list.as_array().map(Vec::len), Some(50));

    let mut group = c.benchmark_group("transcode");
    group.bench_function("POST /v1/timesheets: JSON -> protobuf -> JSON", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(call(&router, create_request()).await) })
    });
    group.bench_function("GET /timesheets: 50 entries -> JSON array", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(call(&router, list_request()).await) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = transcoding
}
criterion_main!(benches);
