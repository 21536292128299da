//! TLS on the one port: ALPN negotiates h2 or http/1.1, and every protocol
//! works over it.

use reqwest::{StatusCode, Version};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn tls_serves_http1_and_h2_on_the_same_port_by_alpn() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = std::env::temp_dir().join(format!("ts-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await
    else {
        return;
    };
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("root");
    let client = |http1_only: bool| {
        let builder = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .resolve("localhost", app.addr);
        let builder = if http1_only {
            builder.http1_only()
        } else {
            builder
        };
        builder.build().expect("client")
    };
    let url = |path: &str| format!("https://localhost:{}{path}", app.addr.port());
    let token = app.token("alice@exampleco.com", EMPLOYEE);

    let over_h1 = client(true)
        .get(url("/healthz"))
        .send()
        .await
        .expect("https over HTTP/1.1");
    assert_eq!(
        (over_h1.status(), over_h1.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
    let over_h2 = client(false)
        .get(url("/healthz"))
        .send()
        .await
        .expect("https with ALPN");
    assert_eq!(
        (over_h2.status(), over_h2.version()),
        (StatusCode::OK, Version::HTTP_2),
        "ALPN picked h2"
    );
    let created = client(false)
        .post(url("/timesheets"))
        .bearer_auth(&token)
        .json(&json!({"date": "2026-11-27", "project": "Website", "hours": 7.5}))
        .send()
        .await
        .expect("REST over TLS");
    assert_eq!(created.status(), StatusCode::CREATED);
    // Plain HTTP on a TLS port is refused, not served.
    assert!(
        reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err()
    );
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
