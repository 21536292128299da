//! The original REST clients keep working: SPA, Android and cron requests
//! against the transcoded HTTP/JSON surface, plus its error shapes.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const JSON: &str = "application/json; charset=utf-8";

async fn body(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
    };
    (status, headers, value)
}

fn content_type(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

on_both_backends! {
    async fn the_spa_creates_with_json_and_gets_201_with_the_callers_identity(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let response = app.http().post(app.url("/timesheets")).bearer_auth(&token)
            .json(&json!({"date": "2026-11-27", "project": "Website", "hours": 7.5})).send().await.expect("send");
        let (status, headers, created) = body(response).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(content_type(&headers), JSON);
        assert_eq!(created["user_id"], "alice@exampleco.com");
        assert_eq!(created["approved"], false, "approved is always present");
        assert_eq!(created["notes"], "", "defaults are emitted");
        assert_eq!((created["date"].as_str(), created["hours"].as_f64()), (Some("2026-11-27"), Some(7.5)));
        let id = created["id"].as_str().expect("id");
        assert_eq!(headers.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some(format!("/v1/timesheets/{id}").as_str()));
        let (status, _, fetched) = body(app.http().get(app.url(&format!("/v1/timesheets/{id}"))).bearer_auth(&token).send().await.expect("get")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(fetched, created);
    }

    async fn the_android_app_sends_hours_as_a_string_and_approves_with_an_empty_body(app: &TestApp) {
        let employee = app.token("alice@exampleco.com", EMPLOYEE);
        let (status, _, created) = body(app.http().post(app.url("/timesheets")).bearer_auth(&employee)
            .json(&json!({"date": "2026-11-27", "project": "Website", "hours": "8"})).send().await.expect("send")).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["hours"].as_f64(), Some(8.0));
        let id = created["id"].as_str().expect("id").to_owned();

        let manager = app.token("manager@exampleco.com", MANAGER);
        let (status, _, approved) = body(app.http().put(app.url(&format!("/approvals/{id}"))).bearer_auth(&manager)
            .header(header::CONTENT_TYPE, "application/json").send().await.expect("approve")).await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        assert_eq!(approved["approved"], true);
        assert_eq!(approved["approved_by"], "manager@exampleco.com");
        // The SPA sends `{}` instead; approving again returns the row unchanged.
        let (status, _, again) = body(app.http().put(app.url(&format!("/approvals/{id}"))).bearer_auth(&manager).json(&json!({})).send().await.expect("approve again")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, approved);
    }

    async fn the_cron_job_uploads_for_an_employee_and_the_date_keeps_its_day(app: &TestApp) {
        let importer = app.issuer.sign(&{
            let mut c = app.issuer.claims("", IMPORTER);
            c.as_object_mut().expect("object").remove(crate::issuer::EMAIL_CLAIM);
            c["sub"] = "cron@clients".into();
            c
        });
        let (status, headers, created) = body(app.http().post(app.url("/timesheets/upload")).bearer_auth(&importer)
            .json(&json!({"user_id": "007", "date": "2017-05-10T17:40:20.095Z", "project": "StoreZero", "hours": 5}))
            .send().await.expect("upload")).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert!(headers.contains_key(header::LOCATION));
        assert_eq!(created["user_id"], "007");
        assert_eq!(created["date"], "2017-05-10");
        println!("Created timesheet {} for employee {}", created["id"], created["user_id"]);
    }

    async fn lists_are_bare_arrays_with_the_next_page_in_a_link_header(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        for day in 1..=5 {
            app.http().post(app.url("/timesheets")).bearer_auth(&token)
                .json(&json!({"date": format!("2026-11-0{day}"), "project": "Website", "hours": 1})).send().await.expect("create");
        }
        let (status, headers, first) = body(app.http().get(app.url("/timesheets?page_size=2")).bearer_auth(&token).send().await.expect("list")).await;
        assert_eq!(status, StatusCode::OK);
        let first = first.as_array().expect("a bare array").clone();
        assert_eq!(first.len(), 2);
        let link = headers.get(header::LINK).and_then(|v| v.to_str().ok()).expect("Link header").to_owned();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        let next = link.trim_start_matches('<').split('>').next().expect("target");
        assert!(next.contains("page_size=2") && next.contains("page_token="), "{next}");
        let (_, _, second) = body(app.http().get(app.url(next)).bearer_auth(&token).send().await.expect("next")).await;
        let second = second.as_array().expect("array").clone();
        assert_eq!(second.len(), 2);
        assert!(first.iter().all(|t| !second.contains(t)));
        // Query parameters may use the JSON names; the link replaces the
        // token under either name, so following it asks for it once.
        let token_param = next.split("page_token=").nth(1).expect("token").split('&').next().expect("token");
        let (status, headers, camel) = body(app.http().get(app.url(&format!("/timesheets?pageSize=2&pageToken={token_param}"))).bearer_auth(&token).send().await.expect("camelCase")).await;
        assert_eq!(status, StatusCode::OK, "{camel}");
        assert_eq!(camel.as_array().expect("array"), &second);
        let link = headers.get(header::LINK).and_then(|v| v.to_str().ok()).expect("Link header").to_owned();
        let third = link.trim_start_matches('<').split('>').next().expect("target");
        assert!(!third.contains("pageToken="), "{third}");
        let (status, _, third) = body(app.http().get(app.url(third)).bearer_auth(&token).send().await.expect("third")).await;
        assert_eq!(status, StatusCode::OK, "{third}");
        assert_eq!(third.as_array().map(Vec::len), Some(1));
        // The /v1 binding keeps the full response message.
        let (_, _, v1) = body(app.http().get(app.url("/v1/timesheets?page_size=2")).bearer_auth(&token).send().await.expect("v1")).await;
        assert_eq!(v1["timesheets"].as_array().map(Vec::len), Some(2));
        assert!(v1["next_page_token"].as_str().is_some_and(|t| !t.is_empty()));
        // Managers see everyone's pending rows as an array too.
        let manager = app.token("manager@exampleco.com", MANAGER);
        let (status, _, pending) = body(app.http().get(app.url("/approvals")).bearer_auth(&manager).send().await.expect("approvals")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(pending.as_array().map(Vec::len), Some(5));
    }

    async fn delete_answers_204_and_idempotency_keys_make_retries_safe(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let create = |key: &'static str, hours: f64| app.http().post(app.url("/v1/timesheets")).bearer_auth(&token)
            .header("idempotency-key", key).json(&json!({"date": "2026-11-27", "project": "Website", "hours": hours}));
        let (_, _, first) = body(create("k-1", 7.5).send().await.expect("first")).await;
        let (status, _, retry) = body(create("k-1", 7.5).send().await.expect("retry")).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(retry["id"], first["id"]);
        let (status, _, conflict) = body(create("k-1", 9.0).send().await.expect("conflict")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(conflict["error"]["status"], "ALREADY_EXISTS");

        let id = first["id"].as_str().expect("id");
        let response = app.http().delete(app.url(&format!("/v1/timesheets/{id}"))).bearer_auth(&token).send().await.expect("delete");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.text().await.expect("body").is_empty());
        let (status, _, gone) = body(app.http().get(app.url(&format!("/v1/timesheets/{id}"))).bearer_auth(&token).send().await.expect("get")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(gone["error"]["code"], 404);
    }

    async fn the_rest_surface_works_over_http2_too(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let response = app.h2().post(app.url("/timesheets")).bearer_auth(&token)
            .json(&json!({"date": "2026-11-27", "project": "Website", "hours": 7.5})).send().await.expect("h2 send");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::CREATED);
        let response = app.h2().get(app.url("/timesheets")).bearer_auth(&token).send().await.expect("h2 list");
        let (status, _, listed) = body(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
    }

    async fn every_error_has_the_json_shape_and_the_right_status(app: &TestApp) {
        let token = app.token("alice@exampleco.com", EMPLOYEE);
        let http = app.http();
        let (status, _, created) = body(http.post(app.url("/timesheets")).bearer_auth(&token)
            .json(&json!({"date": "2026-11-27", "project": "W", "hours": 1})).send().await.expect("create")).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let approved = created["id"].as_str().expect("id").to_owned();
        let manager = app.token("manager@exampleco.com", MANAGER);
        let status = http.put(app.url(&format!("/approvals/{approved}"))).bearer_auth(&manager).send().await.expect("approve").status();
        assert_eq!(status, StatusCode::OK);
        struct Row { description: &'static str, request: reqwest::RequestBuilder, status: StatusCode, grpc: &'static str }
        let rows = vec![
            Row { description: "unknown path", request: http.get(app.url("/nope")).bearer_auth(&token), status: StatusCode::NOT_FOUND, grpc: "NOT_FOUND" },
            Row { description: "wrong method on a known path", request: http.request(Method::PATCH, app.url("/timesheets")).bearer_auth(&token), status: StatusCode::METHOD_NOT_ALLOWED, grpc: "UNIMPLEMENTED" },
            Row { description: "wrong method on a plain endpoint", request: http.post(app.url("/healthz")), status: StatusCode::METHOD_NOT_ALLOWED, grpc: "UNIMPLEMENTED" },
            Row { description: "malformed JSON", request: http.post(app.url("/timesheets")).bearer_auth(&token).header(header::CONTENT_TYPE, "application/json").body("{\"date\": "), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "unknown JSON field", request: http.post(app.url("/timesheets")).bearer_auth(&token).json(&json!({"date": "2026-11-27", "project": "W", "hours": 1, "colour": "red"})), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a form body", request: http.post(app.url("/timesheets")).bearer_auth(&token).form(&[("date", "2026-11-27"), ("project", "W"), ("hours", "1")]), status: StatusCode::UNSUPPORTED_MEDIA_TYPE, grpc: "INVALID_ARGUMENT" },
            Row { description: "a field given twice", request: http.post(app.url("/timesheets")).bearer_auth(&token).header(header::CONTENT_TYPE, "application/json").body(r#"{"date": "2026-11-27", "project": "W", "hours": 1, "hours": 2}"#), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a field under both its names", request: http.post(app.url("/timesheets/upload")).bearer_auth(app.token("cron@clients", IMPORTER)).header(header::CONTENT_TYPE, "application/json").body(r#"{"user_id": "a", "date": "2026-11-27", "project": "W", "hours": 1, "userId": "b"}"#), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "unknown query parameter", request: http.get(app.url("/timesheets?colour=red")).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a body on a bodyless rule", request: http.get(app.url("/v1/timesheets/x")).bearer_auth(&token).json(&json!({"id": "y"})), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "validation failure", request: http.post(app.url("/timesheets")).bearer_auth(&token).json(&json!({"date": "2026-02-30", "project": "W", "hours": 30})), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "no token", request: http.get(app.url("/timesheets")), status: StatusCode::UNAUTHORIZED, grpc: "UNAUTHENTICATED" },
            Row { description: "broken authorization header", request: http.get(app.url("/timesheets")).header(header::AUTHORIZATION, "Bearer a b"), status: StatusCode::BAD_REQUEST, grpc: "UNAUTHENTICATED" },
            Row { description: "invalid token", request: http.get(app.url("/timesheets")).bearer_auth("a.b.c"), status: StatusCode::UNAUTHORIZED, grpc: "UNAUTHENTICATED" },
            Row { description: "missing scope", request: http.get(app.url("/approvals")).bearer_auth(&token), status: StatusCode::FORBIDDEN, grpc: "PERMISSION_DENIED" },
            Row { description: "no such row", request: http.delete(app.url("/v1/timesheets/none")).bearer_auth(&token), status: StatusCode::NOT_FOUND, grpc: "NOT_FOUND" },
            Row { description: "approved row cannot be deleted", request: http.delete(app.url(&format!("/v1/timesheets/{approved}"))).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "FAILED_PRECONDITION" },
            // PostgreSQL text cannot hold a NUL; it must not reach either database.
            Row { description: "a NUL in an id", request: http.get(app.url("/v1/timesheets/a%00b")).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a NUL in a deleted id", request: http.delete(app.url("/v1/timesheets/a%00b")).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a NUL in an approved id", request: http.put(app.url("/approvals/a%00b")).bearer_auth(&manager), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a NUL in a filter", request: http.get(app.url("/v1/timesheets?project=a%00b")).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "a filter that is not UTF-8", request: http.get(app.url("/v1/timesheets?project=%FF")).bearer_auth(&token), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
            Row { description: "broken JSON labelled as a form", request: http.post(app.url("/timesheets")).bearer_auth(&token).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(r#"{"date": "2026-11-27", "project": "W", "hours": 1e999}"#), status: StatusCode::BAD_REQUEST, grpc: "INVALID_ARGUMENT" },
        ];
        for row in rows {
            let (status, headers, error) = body(row.request.send().await.expect(row.description)).await;
            assert_eq!(status, row.status, "{}: {error}", row.description);
            assert_eq!(content_type(&headers), JSON, "{}", row.description);
            assert_eq!(error["error"]["code"], row.status.as_u16(), "{}", row.description);
            assert_eq!(error["error"]["status"], row.grpc, "{}", row.description);
            assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", row.description);
            assert!(error["error"]["details"].is_array(), "{}", row.description);
            match row.description {
                "wrong method on a known path" => assert_eq!(headers.get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("GET, HEAD, POST")),
                "wrong method on a plain endpoint" => assert_eq!(headers.get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("GET,HEAD")),
                "malformed JSON" => assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("line 1 column")), "{error}"),
                "a form body" => assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("application/x-www-form-urlencoded")), "{error}"),
                "a field given twice" | "a field under both its names" => assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("more than once")), "{error}"),
                "unknown JSON field" => assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("colour")), "{error}"),
                "broken JSON labelled as a form" => assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("invalid JSON body")), "{error}"),
                "a NUL in an id" | "a NUL in a deleted id" | "a NUL in an approved id" | "a NUL in a filter" | "a filter that is not UTF-8" => {
                    let field = if row.description.contains("filter") { "project" } else { "id" };
                    assert_eq!(error["error"]["details"][0]["field_violations"][0]["field"], field, "{error}");
                }
                "validation failure" => {
                    let detail = &error["error"]["details"][0];
                    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
                    let fields: Vec<_> = detail["field_violations"].as_array().expect("violations").iter().map(|v| v["field"].as_str().unwrap_or_default().to_owned()).collect();
                    assert_eq!(fields, ["timesheet.date", "timesheet.hours"]);
                }
                "no token" => assert_eq!(headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer realm=\"timesheets\"")),
                "broken authorization header" => assert!(headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("error=\"invalid_request\""))),
                "invalid token" => assert!(headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("error=\"invalid_token\""))),
                "missing scope" => {
                    assert_eq!(headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer realm=\"timesheets\", error=\"insufficient_scope\", scope=\"approve:timesheets\""));
                    assert_eq!(error["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
                    assert_eq!(error["error"]["details"][0]["reason"], "INSUFFICIENT_SCOPE");
                }
                _ => {}
            }
        }
    }

    async fn callers_the_auth_layer_refuses_are_told_so_whatever_their_body_holds(app: &TestApp) {
        let http = app.http();
        let reader = app.token("alice@exampleco.com", &["read:timesheets"]);
        let too_large = "x".repeat(1024 * 1024 + 1);
        for sent in ["{\"date\": ", "{\"colour\": \"red\"}", too_large.as_str()] {
            let send = |token: Option<&str>| {
                let request = http.post(app.url("/timesheets")).header(header::CONTENT_TYPE, "application/json").body(sent.to_owned());
                match token { Some(token) => request.bearer_auth(token), None => request }
            };
            let described = &sent[..sent.len().min(20)];
            let (status, headers, error) = body(send(None).send().await.expect("anonymous")).await;
            assert_eq!((status, error["error"]["status"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")), "{described}: {error}");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE), "{described}");
            let (status, _, error) = body(send(Some(&reader)).send().await.expect("without the scope")).await;
            assert_eq!((status, error["error"]["status"].as_str()), (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED")), "{described}: {error}");
        }
    }

    async fn no_http_binding_can_be_reached_without_passing_the_auth_layer(app: &TestApp) {
        let bindings = timesheets::transcode::Transcoder::new(
            timesheets::proto::descriptor_pool(),
            &[timesheets::proto::SERVICE_NAME],
            timesheets::transcode::TranscodeOptions::default(),
        ).expect("transcoder").bindings();
        assert!(bindings.len() >= 11, "{bindings:?}");
        let forged = app.issuer.sign(&{ let mut c = app.issuer.claims("alice@exampleco.com", EMPLOYEE); c["aud"] = "other".into(); c });
        for (method, template, grpc_path) in bindings {
            let path = template.replace("{id}", "some-id");
            for (credential, expected) in [(None, StatusCode::UNAUTHORIZED), (Some(forged.as_str()), StatusCode::UNAUTHORIZED)] {
                let mut request = app.http().request(method.clone(), app.url(&path));
                if method == Method::POST || method == Method::PUT {
                    request = request.header(header::CONTENT_TYPE, "application/json").body("{}");
                }
                if let Some(token) = credential {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.expect("send");
                assert_eq!(response.status(), expected, "{method} {path} ({grpc_path}) with {credential:?}");
            }
        }
    }

    async fn readiness_and_liveness_probes_answer_json(app: &TestApp) {
        let (status, _, live) = body(app.http().get(app.url("/healthz")).send().await.expect("healthz")).await;
        assert_eq!((status, live["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (status, _, ready) = body(app.http().get(app.url("/readyz")).send().await.expect("readyz")).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["database"], "ok");
        assert_eq!(ready["signing_keys"], "loaded");
    }

    async fn the_web_client_is_served_at_the_root(app: &TestApp) {
        let response = app.http().get(app.url("/")).send().await.expect("index");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(content_type(response.headers()).starts_with("text/html"));
        assert!(response.text().await.expect("html").contains("app.js"));
        let script = app.http().get(app.url("/app.js")).send().await.expect("bundle");
        assert_eq!(script.status(), StatusCode::OK);
    }
}

/// JSON sent to a gRPC path is not read as a gRPC frame: 415, in the JSON
/// error shape, over either HTTP version.
#[tokio::test]
async fn json_sent_to_a_grpc_path_is_an_unsupported_media_type() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    for (version, http) in [("HTTP/1.1", app.http()), ("HTTP/2", app.h2())] {
        for path in [
            "/timesheets.v1.TimesheetService/GetTimesheet",
            "/grpc.health.v1.Health/Check",
        ] {
            let response = http
                .post(app.url(path))
                .bearer_auth(&token)
                .json(&json!({"id": "x"}))
                .send()
                .await
                .expect("send");
            let (status, headers, error) = body(response).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{version} {path}: {error}"
            );
            assert_eq!(content_type(&headers), JSON, "{version} {path}");
            assert_eq!(
                error["error"]["status"], "INVALID_ARGUMENT",
                "{version} {path}"
            );
        }
    }
    app.shutdown().await;
}

/// Native gRPC needs HTTP/2: over HTTP/1.1 the caller is told so, and what
/// it can use instead, not handed tonic-web's empty 400.
#[tokio::test]
async fn native_grpc_over_http1_is_told_to_use_http2_or_grpc_web() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    for path in [
        "/timesheets.v1.TimesheetService/GetTimesheet",
        "/grpc.health.v1.Health/Check",
    ] {
        let response = app
            .http()
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/grpc")
            .body(vec![0u8; 5])
            .send()
            .await
            .expect("send");
        let (status, headers, error) = body(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {error}");
        assert_eq!(content_type(&headers), JSON, "{path}");
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{path}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("HTTP/2") && message.contains("application/grpc-web"),
            "{path}: {message}"
        );
    }
    app.shutdown().await;
}

/// HEAD is GET without the body (RFC 9110 §9.3.2), checked the same way.
#[tokio::test]
async fn head_answers_what_get_would_without_the_body() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    for (version, http) in [("HTTP/1.1", app.http()), ("HTTP/2", app.h2())] {
        let response = http
            .head(app.url("/timesheets"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("head");
        let get = http
            .get(app.url("/timesheets"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{version}");
        assert_eq!(response.status(), get.status(), "{version}");
        assert_eq!(
            content_type(response.headers()),
            content_type(get.headers()),
            "{version}"
        );
        assert!(
            !get.bytes().await.expect("GET body").is_empty(),
            "{version}"
        );
        assert!(
            response.bytes().await.expect("body").is_empty(),
            "{version}"
        );
        let refused = http
            .head(app.url("/timesheets"))
            .send()
            .await
            .expect("head without a token");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{version}");
    }
    app.shutdown().await;
}

/// `curl -d '{...}'` labels JSON as a form; a body that is JSON is read as
/// JSON whatever its content type says.
#[tokio::test]
async fn a_json_body_labelled_as_a_form_is_still_read_as_json() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    let response = app
        .http()
        .post(app.url("/timesheets"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(r#"{"date": "2026-11-27", "project": "Curl", "hours": 2}"#)
        .send()
        .await
        .expect("send");
    let (status, _, created) = body(response).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["project"], "Curl");
    app.shutdown().await;
}
