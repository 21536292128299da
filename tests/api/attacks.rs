//! The attack suite: hostile and malformed credentials, each with the exact
//! status and reason it must get. Every case runs against the real server
//! over gRPC.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use timesheets::dev::{SigningKey, unix_now};
use tonic::{Code, metadata::MetadataValue};

use crate::helpers::*;
use crate::issuer::{AUDIENCE, EMAIL_CLAIM, TestIssuer};

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The call gets past authentication and authorization.
    Allowed,
    /// UNAUTHENTICATED, challenge without an error code.
    NoCredentials,
    /// UNAUTHENTICATED, `error="invalid_request"`.
    InvalidRequest,
    /// UNAUTHENTICATED, `error="invalid_token"`, with this reason.
    Invalid(&'static str),
    /// PERMISSION_DENIED, `error="insufficient_scope"`.
    Forbidden,
}

/// One case: what the `authorization` metadata carries.
struct Case {
    description: String,
    headers: Vec<String>,
    expect: Expect,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn bearer(token: String) -> Vec<String> {
    vec![format!("Bearer {token}")]
}

async fn run_case(app: &TestApp, case: &Case) {
    let mut request = tonic::Request::new(ListTimesheetsRequest::default());
    for header in &case.headers {
        let value: MetadataValue<_> = header
            .parse()
            .unwrap_or_else(|_| panic!("{}: ascii header", case.description));
        request.metadata_mut().append("authorization", value);
    }
    let result = TimesheetServiceClient::new(app.channel.clone())
        .list_timesheets(request)
        .await;
    let d = &case.description;
    match (case.expect, result) {
        (Expect::Allowed, Ok(_)) => {}
        (Expect::Allowed, Err(status)) => panic!("{d}: expected success, got {status:?}"),
        (expect, Ok(_)) => panic!("{d}: expected {expect:?}, but the call succeeded"),
        (expect, Err(status)) => {
            let challenge = status
                .metadata()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            match expect {
                Expect::NoCredentials => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{d}");
                    assert_eq!(challenge, "Bearer realm=\"timesheets\"", "{d}");
                }
                Expect::InvalidRequest => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{d}");
                    assert!(
                        challenge.contains("error=\"invalid_request\""),
                        "{d}: {challenge}"
                    );
                }
                Expect::Invalid(reason) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{d}");
                    assert_eq!(
                        status.message(),
                        format!("Missing or invalid token: {reason}"),
                        "{d}"
                    );
                    assert!(
                        challenge.contains("error=\"invalid_token\""),
                        "{d}: {challenge}"
                    );
                }
                Expect::Forbidden => {
                    assert_eq!(status.code(), Code::PermissionDenied, "{d}");
                    assert!(
                        challenge.contains("error=\"insufficient_scope\""),
                        "{d}: {challenge}"
                    );
                }
                Expect::Allowed => unreachable!(),
            }
        }
    }
}

fn cases(issuer: &TestIssuer, attacker: &SigningKey, other_tenant: &TestIssuer) -> Vec<Case> {
    let now = unix_now();
    let claims = issuer.claims("alice@exampleco.com", EMPLOYEE);
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": issuer.kid()});
    let valid = issuer.sign(&claims);
    let with_claims = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        issuer.sign(&c)
    };
    let with_header = |patch: Value| {
        let mut h = header.clone();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                h.as_object_mut().expect("object").remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        issuer.sign_raw(&h, &claims)
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    };
    let segments: Vec<&str> = valid.split('.').collect();
    let (h, c, s) = (segments[0], segments[1], segments[2]);
    let tampered_claims = {
        let mut escalated = claims.clone();
        escalated["scope"] = "read:timesheets approve:timesheets".into();
        b64(escalated.to_string().as_bytes())
    };
    let hs256 = {
        // HS256 "signed" with the RSA public key as the secret: the classic confusion attack.
        let n = issuer.jwk()["n"].as_str().expect("n").to_owned();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes());
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": issuer.kid()})
                .to_string()
                .as_bytes()),
            c
        );
        format!(
            "{input}.{}",
            b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let attacker_with_real_kid = attacker.sign_raw(&header, &claims).expect("sign");
    let injected = |extra: Value| {
        let mut h = header.clone();
        for (k, v) in extra.as_object().expect("object") {
            h[k] = v.clone();
        }
        attacker.sign_raw(&h, &claims).expect("sign")
    };
    let raw = |header: &str, claims: &str| issuer.sign_bytes(header.as_bytes(), claims.as_bytes());
    let claims_json = claims.to_string();
    let header_json = header.to_string();

    let case = |description: &str, headers: Vec<String>, expect: Expect| Case {
        description: description.to_owned(),
        headers,
        expect,
    };
    use Expect::*;
    vec![
        // Credential transport.
        case("a valid token", bearer(valid.clone()), Allowed),
        case(
            "lower-case scheme",
            vec![format!("bearer {valid}")],
            Allowed,
        ),
        case(
            "upper-case scheme",
            vec![format!("BEARER {valid}")],
            Allowed,
        ),
        case(
            "another scheme",
            vec![format!("Basic {}", b64(b"alice:secret"))],
            NoCredentials,
        ),
        case(
            "a token without a scheme",
            vec![valid.clone()],
            NoCredentials,
        ),
        case("scheme only", vec!["Bearer".into()], InvalidRequest),
        case("empty token", vec!["Bearer    ".into()], InvalidRequest),
        case(
            "two tokens in one header",
            vec![format!("Bearer {valid} {valid}")],
            InvalidRequest,
        ),
        case(
            "two authorization headers",
            vec![format!("Bearer {valid}"), format!("Bearer {valid}")],
            InvalidRequest,
        ),
        case(
            "characters outside b64token",
            vec![format!("Bearer {valid},x")],
            InvalidRequest,
        ),
        case(
            "JWS JSON serialization",
            vec![format!("Bearer {{\"payload\":\"{c}\"}}")],
            InvalidRequest,
        ),
        // Structure.
        case(
            "two segments",
            bearer(format!("{h}.{c}")),
            Invalid("malformed"),
        ),
        case(
            "four segments",
            bearer(format!("{valid}.{s}")),
            Invalid("malformed"),
        ),
        case(
            "JWE, five segments",
            bearer(format!("{h}.{c}.{c}.{c}.{s}")),
            Invalid("malformed"),
        ),
        case(
            "standard base64 instead of base64url",
            bearer(format!("{h}+/.{c}.{s}")),
            Invalid("malformed"),
        ),
        case(
            "padded base64",
            bearer(format!("{h}==.{c}.{s}")),
            Invalid("malformed"),
        ),
        case(
            "header is not JSON",
            bearer(format!("{}.{c}.{s}", b64(b"not json"))),
            Invalid("malformed"),
        ),
        case(
            "header is a JSON array",
            bearer(raw("[\"RS256\"]", &claims_json)),
            Invalid("malformed"),
        ),
        case(
            "claims are a JSON string",
            bearer(raw(&header_json, "\"alice\"")),
            Invalid("malformed"),
        ),
        case(
            "duplicate alg in the header",
            bearer(raw(
                &format!(
                    "{{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"{}\"}}",
                    issuer.kid()
                ),
                &claims_json,
            )),
            Invalid("malformed"),
        ),
        case(
            "duplicate exp in the claims",
            bearer(raw(
                &header_json,
                &claims_json.replacen('{', &format!("{{\"exp\":{},", now + 999_999), 1),
            )),
            Invalid("malformed"),
        ),
        case(
            "oversized token",
            bearer(with_claims(json!({"padding": "x".repeat(9000)}))),
            Invalid("malformed"),
        ),
        // alg.
        case(
            "alg none, unsigned",
            bearer(unsigned("none")),
            Invalid("algorithm not allowed"),
        ),
        case(
            "alg None",
            bearer(unsigned("None")),
            Invalid("algorithm not allowed"),
        ),
        case(
            "alg NONE",
            bearer(unsigned("NONE")),
            Invalid("algorithm not allowed"),
        ),
        case(
            "alg nOnE",
            bearer(unsigned("nOnE")),
            Invalid("algorithm not allowed"),
        ),
        case(
            "HS256 keyed with the RSA public key",
            bearer(hs256),
            Invalid("algorithm not allowed"),
        ),
        case(
            "an algorithm not on the allow-list",
            bearer(with_header(json!({"alg": "RS384"}))),
            Invalid("algorithm not allowed"),
        ),
        case(
            "alg in lower case",
            bearer(with_header(json!({"alg": "rs256"}))),
            Invalid("algorithm not allowed"),
        ),
        case(
            "alg missing",
            bearer(with_header(json!({"alg": null}))),
            Invalid("malformed"),
        ),
        case(
            "alg not a string",
            bearer(with_header(json!({"alg": 256}))),
            Invalid("malformed"),
        ),
        // Signatures.
        case(
            "signature stripped",
            bearer(format!("{h}.{c}.")),
            Invalid("signature invalid"),
        ),
        case(
            "signature truncated",
            bearer(format!("{h}.{c}.{}", &s[..s.len() - 8])),
            Invalid("signature invalid"),
        ),
        case(
            "claims swapped after signing",
            bearer(format!("{h}.{tampered_claims}.{s}")),
            Invalid("signature invalid"),
        ),
        case(
            "an attacker key reusing the real kid",
            bearer(attacker_with_real_kid),
            Invalid("signature invalid"),
        ),
        // Key injection: keys only ever come from the issuer's JWKS.
        case(
            "embedded jwk header",
            bearer(injected(json!({"jwk": attacker.jwk()}))),
            Invalid("signature invalid"),
        ),
        case(
            "jku pointing elsewhere",
            bearer(injected(json!({"jku": "http://127.0.0.1:1/jwks.json"}))),
            Invalid("signature invalid"),
        ),
        case(
            "x5u pointing elsewhere",
            bearer(injected(json!({"x5u": "http://127.0.0.1:1/cert.pem"}))),
            Invalid("signature invalid"),
        ),
        case(
            "x5c with an attacker certificate",
            bearer(injected(
                json!({"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
            )),
            Invalid("signature invalid"),
        ),
        case(
            "kid as a path",
            bearer(with_header(json!({"kid": "../../../../dev/null"}))),
            Invalid("unknown signing key"),
        ),
        case(
            "kid as SQL",
            bearer(with_header(json!({"kid": "' OR '1'='1"}))),
            Invalid("unknown signing key"),
        ),
        case(
            "kid as a URL",
            bearer(with_header(json!({"kid": "http://127.0.0.1:1/key"}))),
            Invalid("unknown signing key"),
        ),
        case(
            "kid not a string",
            bearer(with_header(json!({"kid": 7}))),
            Invalid("malformed"),
        ),
        // Key usability (the issuer publishes these odd keys).
        case(
            "a key published for encryption",
            bearer(other_tenant.sign_raw(&json!({"alg": "RS256", "kid": "enc-key"}), &claims)),
            Invalid("unknown signing key"),
        ),
        case(
            "a key pinned to another algorithm",
            bearer(other_tenant.sign_raw(&json!({"alg": "RS256", "kid": "rs512-key"}), &claims)),
            Invalid("algorithm not allowed"),
        ),
        case(
            "a key of the wrong type",
            bearer(other_tenant.sign_raw(&json!({"alg": "RS256", "kid": "ec-labelled"}), &claims)),
            Invalid("unknown signing key"),
        ),
        case(
            "a weak 1024-bit RSA key",
            bearer(other_tenant.sign_raw(&json!({"alg": "RS256", "kid": "weak"}), &claims)),
            Invalid("unknown signing key"),
        ),
        // crit.
        case(
            "crit naming a claim",
            bearer(with_header(json!({"crit": ["exp"]}))),
            Invalid("malformed"),
        ),
        case(
            "empty crit",
            bearer(with_header(json!({"crit": []}))),
            Invalid("malformed"),
        ),
        // Time claims at and around the 30 s leeway.
        case(
            "expired 10 s ago (inside leeway)",
            bearer(with_claims(json!({"exp": now - 10}))),
            Allowed,
        ),
        case(
            "expired 60 s ago (beyond leeway)",
            bearer(with_claims(json!({"exp": now - 60}))),
            Invalid("expired"),
        ),
        case(
            "exp as a fraction",
            bearer(with_claims(json!({"exp": now as f64 + 100.5}))),
            Allowed,
        ),
        case(
            "exp missing",
            bearer(with_claims(json!({"exp": null}))),
            Invalid("malformed"),
        ),
        case(
            "exp as a string",
            bearer(with_claims(json!({"exp": (now + 100).to_string()}))),
            Invalid("malformed"),
        ),
        case(
            "nbf 10 s ahead (inside leeway)",
            bearer(with_claims(json!({"nbf": now + 10}))),
            Allowed,
        ),
        case(
            "nbf 120 s ahead",
            bearer(with_claims(json!({"nbf": now + 120}))),
            Invalid("not yet valid"),
        ),
        case(
            "nbf as a string",
            bearer(with_claims(json!({"nbf": "now"}))),
            Invalid("malformed"),
        ),
        case(
            "iat 120 s in the future",
            bearer(with_claims(json!({"iat": now + 120}))),
            Invalid("not yet valid"),
        ),
        case(
            "iat as a boolean",
            bearer(with_claims(json!({"iat": true}))),
            Invalid("malformed"),
        ),
        // iss and aud.
        case(
            "issuer without the trailing slash",
            bearer(with_claims(
                json!({"iss": issuer.url().trim_end_matches('/')}),
            )),
            Invalid("issuer not accepted"),
        ),
        case(
            "issuer in upper case",
            bearer(with_claims(json!({"iss": issuer.url().to_uppercase()}))),
            Invalid("issuer not accepted"),
        ),
        case(
            "issuer missing",
            bearer(with_claims(json!({"iss": null}))),
            Invalid("issuer not accepted"),
        ),
        case(
            "issuer as an array",
            bearer(with_claims(json!({"iss": [issuer.url()]}))),
            Invalid("malformed"),
        ),
        case(
            "another tenant's token",
            bearer(other_tenant.token("alice@exampleco.com", EMPLOYEE)),
            Invalid("issuer not accepted"),
        ),
        case(
            "our iss signed with another tenant's key",
            bearer(other_tenant.sign(&claims)),
            Invalid("unknown signing key"),
        ),
        case(
            "audience missing",
            bearer(with_claims(json!({"aud": null}))),
            Invalid("audience not accepted"),
        ),
        case(
            "another audience",
            bearer(with_claims(
                json!({"aud": "https://api.exampleco.com/payroll"}),
            )),
            Invalid("audience not accepted"),
        ),
        case(
            "audience with a trailing slash",
            bearer(with_claims(json!({"aud": format!("{AUDIENCE}/")}))),
            Invalid("audience not accepted"),
        ),
        case(
            "audience array containing ours",
            bearer(with_claims(
                json!({"aud": ["https://x.example/", AUDIENCE]}),
            )),
            Allowed,
        ),
        case(
            "audience array without ours",
            bearer(with_claims(json!({"aud": ["https://x.example/"]}))),
            Invalid("audience not accepted"),
        ),
        case(
            "audience as a number",
            bearer(with_claims(json!({"aud": 1}))),
            Invalid("malformed"),
        ),
        case(
            "an ID token for the SPA client",
            bearer(with_claims(
                json!({"aud": "spa-client-id", "scope": null, "nonce": "n"}),
            )),
            Invalid("audience not accepted"),
        ),
        // Scope confusion.
        case(
            "comma-separated scopes",
            bearer(with_claims(
                json!({"scope": "create:timesheets,read:timesheets"}),
            )),
            Forbidden,
        ),
        case(
            "tab-separated scopes",
            bearer(with_claims(
                json!({"scope": "create:timesheets\tread:timesheets"}),
            )),
            Forbidden,
        ),
        case(
            "a scope prefix",
            bearer(with_claims(json!({"scope": "read:timesheet"}))),
            Forbidden,
        ),
        case(
            "a scope with a suffix",
            bearer(with_claims(json!({"scope": "read:timesheetsX"}))),
            Forbidden,
        ),
        case(
            "scopes in scp",
            bearer(with_claims(
                json!({"scope": null, "scp": "read:timesheets"}),
            )),
            Forbidden,
        ),
        case(
            "scopes in permissions without --scope-claim",
            bearer(with_claims(
                json!({"scope": null, "permissions": ["read:timesheets"]}),
            )),
            Forbidden,
        ),
        case(
            "scope as a number",
            bearer(with_claims(json!({"scope": 42}))),
            Invalid("malformed"),
        ),
        case(
            "scope array with a non-string",
            bearer(with_claims(json!({"scope": ["read:timesheets", 1]}))),
            Invalid("malformed"),
        ),
        case(
            "identity claim missing falls back to sub",
            bearer(with_claims(json!({EMAIL_CLAIM: null}))),
            Allowed,
        ),
        // The identity becomes rows' user_id, and PostgreSQL text cannot
        // hold a NUL: refused on every backend alike.
        case(
            "an identity with a NUL",
            bearer(with_claims(
                json!({EMAIL_CLAIM: "alice\u{0}@exampleco.com"}),
            )),
            Invalid("malformed"),
        ),
        case(
            "a subject with a line break, as the identity",
            bearer(with_claims(
                json!({EMAIL_CLAIM: null, "sub": "auth0|alice\nroot"}),
            )),
            Invalid("malformed"),
        ),
    ]
}

/// Publishes the odd keys the key-usability cases need on `tenant`, whose
/// tokens claim our issuer: the keys are ours in name only.
fn publish_odd_keys(app_issuer: &TestIssuer, tenant: &TestIssuer) {
    let mut enc = tenant.jwk();
    enc["kid"] = "enc-key".into();
    enc["use"] = "enc".into();
    let mut pinned = tenant.jwk();
    pinned["kid"] = "rs512-key".into();
    pinned["alg"] = "RS512".into();
    let mut wrong_type = tenant.jwk();
    wrong_type["kid"] = "ec-labelled".into();
    wrong_type["kty"] = "EC".into();
    wrong_type["crv"] = "P-256".into();
    let mut weak = tenant.jwk();
    weak["kid"] = "weak".into();
    weak["n"] = b64(&[0xc3; 128]).into();
    for jwk in [enc, pinned, wrong_type, weak] {
        app_issuer.publish(jwk);
    }
}

async fn attack_suite(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let attacker = SigningKey::generate().expect("keygen");
    let other_tenant = TestIssuer::start().await;
    publish_odd_keys(&app.issuer, &other_tenant);
    let cases = cases(&app.issuer, &attacker, &other_tenant);
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    for case in &cases {
        run_case(&app, case).await;
    }
    other_tenant.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_attack_case_gets_its_exact_status_on_sqlite() {
    attack_suite(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_attack_case_gets_its_exact_status_on_postgres() {
    attack_suite(Backend::Postgres).await;
}

#[tokio::test]
async fn scopes_come_from_the_permissions_claim_when_configured() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.scope_claims = vec!["permissions".into()]
    })
    .await
    else {
        return;
    };
    let mut claims = app.issuer.claims("alice@exampleco.com", &[]);
    claims["permissions"] = json!(["read:timesheets"]);
    app.client_with_token(&app.issuer.sign(&claims))
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("RBAC permissions grant access");
    let mut scope_only = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
    scope_only
        .as_object_mut()
        .expect("object")
        .remove("permissions");
    let status = app
        .client_with_token(&app.issuer.sign(&scope_only))
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect_err("scope claim not read");
    assert_eq!(status.code(), Code::PermissionDenied);
    app.shutdown().await;
}

#[tokio::test]
async fn rfc_9068_mode_requires_the_at_jwt_type() {
    let Some(app) =
        spawn_app_with(Backend::Sqlite, |c| c.require_typ = Some("at+jwt".into())).await
    else {
        return;
    };
    let claims = app.issuer.claims("alice@exampleco.com", EMPLOYEE);
    let kid = app.issuer.kid();
    for (typ, ok) in [
        (json!("at+jwt"), true),
        (json!("application/at+jwt"), true),
        (json!("AT+JWT"), true),
        (json!("JWT"), false),
        (Value::Null, false),
    ] {
        let mut header = json!({"alg": "RS256", "kid": kid});
        if !typ.is_null() {
            header["typ"] = typ.clone();
        }
        let result = app
            .client_with_token(&app.issuer.sign_raw(&header, &claims))
            .list_timesheets(ListTimesheetsRequest::default())
            .await;
        assert_eq!(result.is_ok(), ok, "typ {typ}: {result:?}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn several_issuers_are_accepted_and_their_keys_never_cross() {
    let second = TestIssuer::start().await;
    let second_url = second.url();
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.issuers.push(second_url)).await else {
        return;
    };
    app.employee("alice@exampleco.com")
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("first issuer");
    app.client_with_token(&second.token("alice@exampleco.com", EMPLOYEE))
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect("second issuer");
    // The second issuer's key signing a token that claims the first issuer.
    let forged = second.sign(&app.issuer.claims("alice@exampleco.com", EMPLOYEE));
    let status = app
        .client_with_token(&forged)
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect_err("keys do not cross");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "Missing or invalid token: unknown signing key"
    );
    second.stop().await;
    app.shutdown().await;
}
