//! TLS on the one port: ALPN negotiates h2 or http/1.1, and every protocol
//! works over it.

use reqwest::{StatusCode, Version};
use serde_json::json;

use crate::helpers::*;

/// A server with TLS on a new self-signed certificate for `localhost`: the
/// app, the certificate to trust, and the folder holding its files.
async fn spawn_tls_app() -> Option<(TestApp, reqwest::Certificate, std::path::PathBuf)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = std::env::temp_dir().join(format!("ts-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await?;
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("root");
    Some((app, root, dir))
}

#[tokio::test]
async fn tls_serves_http1_and_h2_on_the_same_port_by_alpn() {
    let Some((app, root, dir)) = spawn_tls_app().await else {
        return;
    };
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

#[tokio::test]
async fn clients_that_never_start_their_tls_handshake_do_not_hold_up_others() {
    let Some((app, root, dir)) = spawn_tls_app().await else {
        return;
    };
    // More silent sockets than handshakes run at once.
    let mut silent = Vec::new();
    for _ in 0..160 {
        silent.push(
            tokio::net::TcpStream::connect(app.addr)
                .await
                .expect("connect"),
        );
    }
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", app.addr)
        .build()
        .expect("client");
    // Well inside the 10 s the silent ones are allowed before they are
    // dropped: the handshake must not wait behind them.
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client
            .get(format!("https://localhost:{}/healthz", app.addr.port()))
            .send(),
    )
    .await
    .expect("served while the silent sockets wait")
    .expect("https");
    assert_eq!(reply.status(), StatusCode::OK);
    drop(silent);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
