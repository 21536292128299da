//! gRPC-Web on the shared port: binary and text encodings, HTTP/1.1 and
//! HTTP/2, the same auth layer, trailers in the trailer frame, and CORS.

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use reqwest::{StatusCode, header};

use crate::helpers::*;
use crate::on_both_backends;

const LIST: &str = "/timesheets.v1.TimesheetService/ListTimesheets";

/// A gRPC(-Web) data frame around `message`.
fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// Splits a gRPC-Web body into its data frames and its trailer block.
fn parse_frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(payload));
        } else {
            data.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (data, trailers.to_ascii_lowercase())
}

/// ListTimesheets over gRPC-Web.
async fn call(
    app: &TestApp,
    client: reqwest::Client,
    content_type: &str,
    token: Option<&str>,
) -> (StatusCode, header::HeaderMap, Vec<Vec<u8>>, String) {
    let body = frame(&ListTimesheetsRequest::default());
    call_path(app, client, LIST, body, content_type, token).await
}

/// `body`, a gRPC frame, to `path` over gRPC-Web: the HTTP status, the
/// headers, the reply's data frames and its trailers (lowercased).
async fn call_path(
    app: &TestApp,
    client: reqwest::Client,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
    token: Option<&str>,
) -> (StatusCode, header::HeaderMap, Vec<Vec<u8>>, String) {
    let text = content_type.to_ascii_lowercase().contains("text");
    let body = if text {
        STANDARD.encode(&body).into_bytes()
    } else {
        body
    };
    let mut request = client
        .post(app.url(path))
        .header(header::CONTENT_TYPE, content_type)
        // tonic-web picks the reply's encoding from an exact `Accept`.
        .header(
            header::ACCEPT,
            if text {
                "application/grpc-web-text"
            } else {
                "application/grpc-web"
            },
        )
        .header("x-grpc-web", "1")
        .header(header::ORIGIN, "http://spa.example")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body").to_vec();
    // grpc-web-text bodies are concatenated base64 chunks, each padded on
    // its own; decoding quantum by quantum handles the joins.
    let bytes = if text {
        bytes
            .chunks(4)
            .flat_map(|quantum| STANDARD.decode(quantum).expect("base64 body"))
            .collect()
    } else {
        bytes
    };
    let (data, mut trailers) = parse_frames(&bytes);
    // A trailers-only reply carries its status in the headers instead.
    if let Some(status) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        trailers.push_str(&format!("grpc-status:{status}\r\n"));
    }
    (status, headers, data, trailers)
}

on_both_backends! {
    async fn browsers_call_the_service_with_grpc_web_binary_and_text(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        app.employee("alice@exampleco.com").create_timesheet(create("2026-11-27", "Website", 7.5)).await.expect("seed");
        for content_type in ["application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc-web-text+proto"] {
            for (label, client) in [("HTTP/1.1", app.http()), ("HTTP/2", app.h2())] {
                let (status, headers, data, trailers) = call(app, client, content_type, Some(&token)).await;
                assert_eq!(status, StatusCode::OK, "{content_type} over {label}");
                assert_eq!(headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"), "{content_type} over {label}");
                assert!(trailers.contains("grpc-status:0"), "{content_type} over {label}: {trailers:?}");
                let reply = ListTimesheetsResponse::decode(data.first().expect("a message").as_slice()).expect("decodes");
                assert_eq!(reply.timesheets.len(), 1, "{content_type} over {label}");
            }
        }
    }

    async fn grpc_web_content_types_are_read_in_any_case_and_with_parameters(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        for content_type in ["APPLICATION/GRPC-WEB-TEXT", "application/grpc-web-text; charset=utf-8", "Application/gRPC-Web+proto"] {
            for (label, client) in [("HTTP/1.1", app.http()), ("HTTP/2", app.h2())] {
                let (status, _, data, trailers) = call(app, client, content_type, Some(&token)).await;
                assert_eq!(status, StatusCode::OK, "{content_type} over {label}");
                assert!(trailers.contains("grpc-status:0"), "{content_type} over {label}: {trailers:?}");
                ListTimesheetsResponse::decode(data.first().expect("a message").as_slice()).expect("decodes");
            }
        }
    }

    async fn grpc_web_goes_through_the_same_auth_layer(app: &TestApp) {
        let (status, headers, data, trailers) = call(app, app.http(), "application/grpc-web+proto", None).await;
        assert_eq!(status, StatusCode::OK, "gRPC-Web reports errors in grpc-status");
        assert!(data.is_empty());
        assert!(trailers.contains("grpc-status:16"), "{trailers:?}");
        assert!(headers.contains_key("www-authenticate") || trailers.contains("www-authenticate"), "{headers:?} {trailers:?}");
        let no_scope = app.token("alice@exampleco.com", &["batch:upload"]);
        let (_, _, _, trailers) = call(app, app.http(), "application/grpc-web+proto", Some(&no_scope)).await;
        assert!(trailers.contains("grpc-status:7"), "{trailers:?}");
    }

    async fn a_cors_preflight_from_another_origin_is_answered_and_cached(app: &TestApp) {
        let response = app.http()
            .request(reqwest::Method::OPTIONS, app.url(LIST))
            .header(header::ORIGIN, "http://spa.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,idempotency-key")
            .send().await.expect("preflight");
        assert!(response.status().is_success());
        let get = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(get("access-control-allow-origin"), "*");
        for needed in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "idempotency-key"] {
            assert!(get("access-control-allow-headers").contains(needed), "{needed}");
        }
        assert!(get("access-control-max-age").parse::<u64>().is_ok_and(|age| age >= 600));
        let exposed = app.http().get(app.url("/timesheets")).header(header::ORIGIN, "http://spa.example").send().await.expect("get");
        let exposed = exposed.headers().get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        for needed in ["grpc-status", "grpc-message", "grpc-status-details-bin", "www-authenticate", "location"] {
            assert!(exposed.contains(needed), "{needed} in {exposed}");
        }
    }
}

#[tokio::test]
async fn cors_origins_can_be_narrowed() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.cors_origins = vec!["https://timesheets.exampleco.com".into()]
    })
    .await
    else {
        return;
    };
    let preflight = |origin: &'static str| {
        app.http()
            .request(reqwest::Method::OPTIONS, app.url(LIST))
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://timesheets.exampleco.com")
        .await
        .expect("allowed");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://timesheets.exampleco.com")
    );
    let other = preflight("https://evil.example").await.expect("other");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.shutdown().await;
}

/// The gRPC health check answers browsers too, in either gRPC-Web
/// encoding: a text body is not read as a frame whose first byte is 'A'.
#[tokio::test]
async fn the_grpc_health_check_answers_grpc_web_in_both_encodings() {
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    for content_type in ["application/grpc-web+proto", "application/grpc-web-text"] {
        let (status, _, data, trailers) = call_path(
            &app,
            app.http(),
            "/grpc.health.v1.Health/Check",
            frame(&HealthCheckRequest::default()),
            content_type,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{content_type}");
        assert!(
            trailers.contains("grpc-status:0"),
            "{content_type}: {trailers:?}"
        );
        let reply =
            HealthCheckResponse::decode(data.first().map(Vec::as_slice).unwrap_or_default())
                .expect("a HealthCheckResponse");
        assert_eq!(
            reply.status(),
            health_check_response::ServingStatus::Serving,
            "{content_type}"
        );
    }
    app.shutdown().await;
}

/// A health watch over gRPC-Web, open when the shutdown grace period ends,
/// gets its UNAVAILABLE in the trailer frame, as a browser's gRPC-Web
/// client reads it, rather than a connection cut short.
#[tokio::test]
async fn a_grpc_web_watch_open_at_the_end_of_the_grace_period_ends_with_unavailable() {
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.shutdown_grace = std::time::Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let mut response = app
        .http()
        .post(app.url("/grpc.health.v1.Health/Watch"))
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(&HealthCheckRequest::default()))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    // The first status, before shutdown: one whole data frame.
    let mut body = Vec::new();
    while parse_frames(&body).0.is_empty() {
        let chunk = response
            .chunk()
            .await
            .expect("body")
            .expect("a first status");
        body.extend_from_slice(&chunk);
    }
    let app = app.begin_shutdown();
    while let Some(chunk) = response.chunk().await.expect("the stream ends cleanly") {
        body.extend_from_slice(&chunk);
    }
    let (data, trailers) = parse_frames(&body);
    let statuses: Vec<_> = data
        .iter()
        .map(|d| {
            HealthCheckResponse::decode(d.as_slice())
                .expect("a status")
                .status()
        })
        .collect();
    assert_eq!(
        statuses,
        [
            health_check_response::ServingStatus::Serving,
            health_check_response::ServingStatus::NotServing
        ]
    );
    assert!(trailers.contains("grpc-status:14"), "{trailers:?}");
    // grpc-message is percent-encoded.
    assert!(
        trailers.contains("server%20is%20shutting%20down"),
        "{trailers:?}"
    );
    app.finish_shutdown().await;
}
