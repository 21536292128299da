//! Authentication errors on gRPC: exact codes, clear messages, RFC 6750 challenges.

use serde_json::json;
use timesheets::dev::unix_now;
use tonic::Code;

use crate::helpers::*;
use crate::issuer::{AUDIENCE, TestIssuer};
use crate::on_both_backends;

fn challenge(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

on_both_backends! {
    async fn a_call_without_a_token_is_unauthenticated_with_a_bearer_challenge(app: &TestApp) {
        let status = app.anonymous().list_timesheets(ListTimesheetsRequest::default()).await.expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().starts_with("Missing or invalid token"), "{}", status.message());
        assert_eq!(challenge(&status), "Bearer realm=\"timesheets\"");
    }

    async fn bad_tokens_are_unauthenticated_with_a_reason(app: &TestApp) {
        let now = unix_now();
        let valid = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
        let with = |patch: serde_json::Value| {
            let mut claims = valid.clone();
            for (k, v) in patch.as_object().expect("object") {
                claims[k] = v.clone();
            }
            claims
        };
        let other_tenant = TestIssuer::start().await;
        let cases: Vec<(&str, String, &str)> = vec![
            ("expired beyond the leeway", app.issuer.sign(&with(json!({"exp": now - 120}))), "expired"),
            ("not yet valid", app.issuer.sign(&with(json!({"nbf": now + 600}))), "not yet valid"),
            ("wrong audience", app.issuer.sign(&with(json!({"aud": "https://other.example/api"}))), "audience not accepted"),
            ("wrong issuer", app.issuer.sign(&with(json!({"iss": "https://evil.example/"}))), "issuer not accepted"),
            ("no exp", app.issuer.sign(&{ let mut c = valid.clone(); c.as_object_mut().expect("obj").remove("exp"); c }), "malformed"),
            ("exp as a string", app.issuer.sign(&with(json!({"exp": "tomorrow"}))), "malformed"),
            ("signed by another tenant's key", other_tenant.sign(&valid), "unknown signing key"),
            ("not a JWT", "abc.def".to_owned(), "malformed"),
        ];
        for (description, token, reason) in cases {
            let status = app.client_with_token(&token).list_timesheets(ListTimesheetsRequest::default()).await.expect_err(description);
            assert_eq!(status.code(), Code::Unauthenticated, "{description}");
            assert_eq!(status.message(), format!("Missing or invalid token: {reason}"), "{description}");
            assert!(challenge(&status).contains("error=\"invalid_token\""), "{description}: {}", challenge(&status));
        }
        other_tenant.stop().await;
    }

    async fn a_token_expired_within_the_leeway_is_still_accepted(app: &TestApp) {
        let mut claims = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
        claims["exp"] = json!(unix_now() - 5);
        app.client_with_token(&app.issuer.sign(&claims)).list_timesheets(ListTimesheetsRequest::default()).await.expect("within leeway");
    }

    async fn the_audience_may_be_an_array_containing_ours(app: &TestApp) {
        let mut claims = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
        claims["aud"] = json!(["https://tenant.auth0.com/userinfo", AUDIENCE]);
        app.client_with_token(&app.issuer.sign(&claims)).list_timesheets(ListTimesheetsRequest::default()).await.expect("array audience");
    }

    async fn the_caller_falls_back_to_sub_without_the_email_claim(app: &TestApp) {
        let mut claims = app.issuer.claims("", EMPLOYEE);
        claims.as_object_mut().expect("obj").remove(crate::issuer::EMAIL_CLAIM);
        claims["sub"] = json!("auth0|42");
        let created = app.client_with_token(&app.issuer.sign(&claims)).create_timesheet(create("2026-11-27", "Website", 1.0)).await.expect("create").into_inner();
        assert_eq!(created.user_id, "auth0|42");
    }

    async fn a_rotated_signing_key_is_picked_up_without_a_restart(app: &TestApp) {
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("old key");
        let before = app.issuer.fetches();
        app.issuer.rotate();
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("new key after one refetch");
        assert_eq!(app.issuer.fetches(), before + 1);
    }

    async fn a_token_checked_before_a_key_refresh_still_passes_after_it(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("checked and remembered");
        // Bob's token names a new key, so the server reloads the keys.
        let before = app.issuer.fetches();
        app.issuer.rotate();
        app.employee("bob@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("new key");
        assert_eq!(app.issuer.fetches(), before + 1);
        alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("the same token, its key still published");
    }

    async fn a_provider_without_discovery_is_asked_for_it_once(app: &TestApp) {
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("keys loaded");
        assert_eq!(app.issuer.discovery_requests(), 1, "asked at the first fetch, answered 404");
        let before = app.issuer.fetches();
        app.issuer.rotate();
        app.employee("bob@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("new key");
        assert_eq!(app.issuer.fetches(), before + 1);
        assert_eq!(app.issuer.discovery_requests(), 1, "the refetch went straight to the JWKS");
    }

    async fn a_flood_of_unknown_kids_costs_the_provider_at_most_one_fetch(app: &TestApp) {
        // The keys load in the background at startup: counted from after that fetch.
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("keys loaded");
        let before = app.issuer.fetches();
        let claims = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
        for i in 0..50 {
            let token = app.issuer.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{i}")}), &claims);
            let status = app.client_with_token(&token).list_timesheets(ListTimesheetsRequest::default()).await.expect_err("unknown kid");
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.message(), "Missing or invalid token: unknown signing key");
        }
        assert!(app.issuer.fetches() <= before + 1, "{} fetches for 50 unknown kids", app.issuer.fetches() - before);
    }

    async fn an_identity_provider_outage_with_keys_cached_changes_nothing(app: &TestApp) {
        app.employee("alice@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("keys loaded");
        app.issuer.set_down(true);
        // An unknown kid sends the server to the provider, which is down:
        // that token cannot be judged, so UNAVAILABLE, not UNAUTHENTICATED.
        let claims = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
        let token = app.issuer.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": "not-published"}), &claims);
        let status = app.client_with_token(&token).list_timesheets(ListTimesheetsRequest::default()).await.expect_err("unknown kid");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        // A token never seen before, signed with a held key, still verifies.
        app.employee("bob@exampleco.com").list_timesheets(ListTimesheetsRequest::default()).await.expect("cached keys still verify");
    }
}

#[tokio::test]
async fn an_identity_provider_that_is_down_with_nothing_cached_makes_calls_unavailable() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |_| {}).await else {
        return;
    };
    // The server started while the provider was up; a fresh server whose
    // provider is down at startup has no keys at all.
    let down = TestIssuer::start().await;
    down.set_down(true);
    let config = test_config(
        format!(
            "sqlite://{}",
            std::env::temp_dir()
                .join(format!("ts-down-{}.db", uuid::Uuid::now_v7().simple()))
                .display()
        ),
        &down,
    );
    let server = timesheets::App::build(config)
        .await
        .expect("starts without keys");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let token = down.token("alice@exampleco.com", EMPLOYEE);
    let value: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("ascii");
    let mut client =
        TimesheetServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        });
    let status = client
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect_err("no keys");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.metadata().get("www-authenticate").is_none());

    // The same over HTTP: 503 with Retry-After, and no challenge, since
    // the token may well be valid. Readiness says why.
    let http = reqwest::Client::new();
    let response = http
        .get(format!("http://{addr}/timesheets"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(!response.headers().contains_key("www-authenticate"));
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["signing_keys"], "no keys yet");
    // Recovery without a restart is covered with paused time in the key
    // store's lifecycle tests.

    let _ = stop.send(());
    task.await.expect("joined").expect("clean exit");
    down.stop().await;
    app.shutdown().await;
}

/// The error `App::build` gives for `serve` with `args`, which must refuse.
async fn refused_to_start(args: &[&str]) -> String {
    use clap::Parser;
    let argv = ["timesheets", "serve", "--listen", "127.0.0.1:0"];
    let cli = timesheets::config::Cli::try_parse_from(argv.iter().chain(args)).expect("parses");
    let timesheets::config::Command::Serve(config) = cli.command else {
        unreachable!("serve")
    };
    let err = timesheets::App::build(config)
        .await
        .err()
        .expect("refused to start");
    format!("{err:#}")
}

#[tokio::test]
async fn starting_without_an_issuer_or_audience_is_a_clear_error_that_says_how_to_fix_it() {
    let message = refused_to_start(&[]).await;
    assert!(
        message.contains("--issuer") && message.contains("--audience") && message.contains("--dev"),
        "{message}"
    );
}

#[tokio::test]
async fn the_dev_issuer_refuses_to_start_beside_a_real_one() {
    // Anyone could mint tokens for the tenant's audience.
    let key = std::env::temp_dir().join(format!("ts-dev-{}.pem", uuid::Uuid::now_v7().simple()));
    let key = key.display().to_string();
    let message = refused_to_start(&[
        "--dev",
        "--dev-key-file",
        &key,
        "--issuer",
        "https://tenant.auth0.com/",
        "--audience",
        AUDIENCE,
    ])
    .await;
    let _ = std::fs::remove_file(&key);
    assert!(
        message.contains("--dev") && message.contains("--issuer"),
        "{message}"
    );
}

/// `TIMESHEETS_DEV=1` switches dev mode on, as environments usually spell
/// it: here it meets `--issuer`, so the binary refuses to start for that
/// reason, not because it could not read the variable.
#[tokio::test]
async fn the_dev_switch_is_read_from_the_environment_as_people_write_it() {
    for value in ["1", "yes", "TRUE", "on"] {
        let key =
            std::env::temp_dir().join(format!("ts-dev-{}.pem", uuid::Uuid::now_v7().simple()));
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_timesheets"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args([
                "--issuer",
                "https://tenant.auth0.com/",
                "--audience",
                AUDIENCE,
            ])
            .env("TIMESHEETS_DEV", value)
            .env("TIMESHEETS_DEV_KEY_FILE", &key)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run the binary");
        let _ = std::fs::remove_file(&key);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "TIMESHEETS_DEV={value}: {stderr}");
        assert!(
            stderr.contains("does not combine with --issuer"),
            "TIMESHEETS_DEV={value}: {stderr}"
        );
    }
}

/// A server in `--dev` mode with its signing key in a fresh file, removed
/// when the returned guard is dropped.
async fn dev_app() -> Option<(TestApp, DevKeyFile)> {
    let key = DevKeyFile(
        std::env::temp_dir().join(format!("ts-dev-{}.pem", uuid::Uuid::now_v7().simple())),
    );
    let path = key.0.clone();
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.dev = true;
        config.issuers.clear();
        config.dev_key_file = path;
    })
    .await?;
    Some((app, key))
}

struct DevKeyFile(std::path::PathBuf);

impl Drop for DevKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The status and JSON body of `request`.
async fn json_reply(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

/// `/dev/token` answers a query it cannot use in the API's JSON error
/// shape, not axum's plain-text rejection, and mints for a good one.
#[tokio::test]
async fn the_dev_token_endpoint_refuses_a_bad_query_in_json() {
    let Some((app, _key)) = dev_app().await else {
        return;
    };
    for query in ["", "?persona=admin", "?persona=employee&ttl=soon"] {
        let response = app
            .http()
            .get(app.url(&format!("/dev/token{query}")))
            .send()
            .await
            .expect("send");
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8"),
            "{query}"
        );
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{query}");
    }
    let (_, minted) =
        json_reply(app.http().get(app.url("/dev/token?persona=manager&ttl=60"))).await;
    assert_eq!(minted["expires_in"], 60);
    assert!(
        minted["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    app.shutdown().await;
}

/// The token endpoint of the OpenAPI document's client-credentials flow.
fn openapi_token_url(openapi: &serde_json::Value) -> String {
    openapi["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"]
        .as_str()
        .expect("a tokenUrl")
        .to_owned()
}

/// The OpenAPI document names the first issuer's Auth0 token endpoint,
/// unless `--token-url` names another provider's.
#[tokio::test]
async fn the_openapi_token_url_is_the_issuers_unless_configured() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (_, openapi) = json_reply(app.http().get(app.url("/openapi.json"))).await;
    assert_eq!(
        openapi_token_url(&openapi),
        format!("{}oauth/token", app.issuer.url())
    );
    app.shutdown().await;
    let okta = "https://idp.example/oauth2/default/v1/token";
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.token_url = Some(okta.into())).await
    else {
        return;
    };
    let (_, openapi) = json_reply(app.http().get(app.url("/openapi.json"))).await;
    assert_eq!(openapi_token_url(&openapi), okta);
    app.shutdown().await;
}

/// Under `--dev` the OpenAPI document's token URL is a working OAuth 2.0
/// client credentials endpoint: the client id names a persona, in a form,
/// in JSON or as Basic credentials, and a scope asked for narrows the token.
#[tokio::test]
async fn the_dev_issuer_grants_client_credentials_where_the_openapi_document_points() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let Some((app, _key)) = dev_app().await else {
        return;
    };
    let (_, openapi) = json_reply(app.http().get(app.url("/openapi.json"))).await;
    let token_url = openapi_token_url(&openapi);
    assert_eq!(token_url, app.url("/oauth/token"));
    // OAuth clients that start from the issuer find it by discovery.
    let (_, discovery) =
        json_reply(app.http().get(app.url("/.well-known/openid-configuration"))).await;
    assert_eq!(discovery["token_endpoint"], token_url.as_str());
    assert_eq!(
        discovery["grant_types_supported"],
        json!(["client_credentials"])
    );
    let basic = |client: &str| format!("Basic {}", STANDARD.encode(format!("{client}:secret")));

    // A manager's token from a form: it approves.
    let (status, granted) = json_reply(app.http().post(&token_url).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "manager"),
        ("client_secret", "anything"),
    ]))
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{granted}");
    assert_eq!(granted["token_type"], "Bearer");
    let token = granted["access_token"].as_str().expect("a token");
    let approvals = app
        .http()
        .get(app.url("/approvals"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(approvals.status(), reqwest::StatusCode::OK);

    // Basic credentials and a narrower scope: it reads, and cannot create.
    let (status, granted) = json_reply(
        app.http()
            .post(&token_url)
            .header("authorization", basic("employee"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read:timesheets"),
            ]),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{granted}");
    assert_eq!(granted["scope"], "read:timesheets");
    let token = granted["access_token"].as_str().expect("a token");
    let created = app
        .http()
        .post(app.url("/timesheets"))
        .bearer_auth(token)
        .json(&json!({"date": "2026-11-27", "project": "W", "hours": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), reqwest::StatusCode::FORBIDDEN);

    // Parameters with empty values count as omitted (RFC 6749 §3.2): the
    // Basic credentials name the client, and the persona's scope is granted.
    let (status, granted) = json_reply(
        app.http()
            .post(&token_url)
            .header("authorization", basic("manager"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", ""),
                ("scope", ""),
            ]),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{granted}");
    assert_eq!(
        granted["scope"],
        "create:timesheets read:timesheets delete:timesheets approve:timesheets"
    );

    // JSON, as Auth0 also takes it.
    let (status, granted) = json_reply(app.http().post(&token_url).json(&json!({
        "grant_type": "client_credentials", "client_id": "importer", "audience": "ignored"
    })))
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{granted}");
    assert_eq!(granted["scope"], "batch:upload");

    // Refusals in RFC 6749's error shape.
    for (form, status, error) in [
        (
            vec![("grant_type", "password"), ("client_id", "manager")],
            reqwest::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", "admin")],
            reqwest::StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "employee"),
                ("scope", "approve:timesheets"),
            ],
            reqwest::StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            vec![("client_id", "employee"), ("client_id", "manager")],
            reqwest::StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let (got, body) = json_reply(app.http().post(&token_url).form(&form)).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{form:?}: {body}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn keys_are_found_through_openid_discovery_when_no_jwks_uri_is_given() {
    let issuer = TestIssuer::start().await;
    issuer.serve_keys_only_via_discovery();
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let app = timesheets::App::build(test_config(db.url(), &issuer))
        .await
        .expect("builds");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/timesheets"))
        .bearer_auth(issuer.token("alice@exampleco.com", EMPLOYEE))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "keys came from the discovered jwks_uri"
    );
    let _ = stop.send(());
    server.await.expect("joined").expect("clean exit");
    issuer.stop().await;
    db.remove().await;
}
