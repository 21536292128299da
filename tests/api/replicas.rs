//! Scale-out on PostgreSQL: replicas share one database, idempotency holds
//! across them, and a database outage fails fast and heals by itself.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::Code;

use crate::helpers::*;

/// A second server process-alike on the same database and issuer.
struct Replica {
    client_channel: tonic::transport::Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn start(app: &TestApp) -> Self {
        let config = test_config(app.database_url(), &app.issuer);
        let server = timesheets::App::build(config)
            .await
            .expect("replica builds");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let client_channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        Self {
            client_channel,
            stop,
            server,
        }
    }

    fn client(&self, token: &str) -> Client {
        let value = format!("Bearer {token}").parse().expect("ascii");
        TimesheetServiceClient::with_interceptor(self.client_channel.clone(), Bearer::new(value))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("joined")
            .expect("replica exits cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_data_and_a_request_id_creates_one_row() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let replica = Replica::start(&app).await;
    let token = app.token("alice@exampleco.com", EMPLOYEE);

    let written = app
        .client_with_token(&token)
        .create_timesheet(create("2026-11-27", "Website", 7.5))
        .await
        .expect("create on A")
        .into_inner();
    let read = replica
        .client(&token)
        .get_timesheet(GetTimesheetRequest {
            id: written.id.clone(),
        })
        .await
        .expect("read on B")
        .into_inner();
    assert_eq!(read, written);

    for attempt in 0..20 {
        let request = CreateTimesheetRequest {
            request_id: format!("retry-{attempt}"),
            ..create("2026-11-28", &format!("P{attempt}"), 1.0)
        };
        let (mut a, mut b) = (app.client_with_token(&token), replica.client(&token));
        let (ra, rb) = tokio::join!(
            a.create_timesheet(request.clone()),
            b.create_timesheet(request)
        );
        let (ra, rb) = (
            ra.expect("replica A").into_inner(),
            rb.expect("replica B").into_inner(),
        );
        assert_eq!(
            ra.id, rb.id,
            "attempt {attempt}: both callers get the same row"
        );
    }
    let listed = app
        .client_with_token(&token)
        .list_timesheets(ListTimesheetsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed.timesheets.len(),
        21,
        "one row per request_id, plus the first"
    );
    replica.stop().await;
    app.shutdown().await;
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (down, links) = (Arc::clone(&down), Arc::clone(&links));
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused after accept
                    }
                    let upstream = upstream.clone();
                    links.lock().expect("lock").push(tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }));
                }
            }
        });
        Self {
            port,
            down,
            links,
            accept,
        }
    }

    /// Cuts every open connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("lock").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().expect("lock").drain(..) {
            link.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_with_unavailable_and_heals_without_a_restart() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let mut direct = url::Url::parse(&db.url()).expect("url");
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap_or("127.0.0.1"),
        direct.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    direct.set_host(Some("127.0.0.1")).expect("host");
    direct.set_port(Some(proxy.port)).expect("port");
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.database_url = direct.to_string()).await
    else {
        return;
    };
    let token = app.token("alice@exampleco.com", EMPLOYEE);
    app.client_with_token(&token)
        .create_timesheet(create("2026-11-27", "Website", 1.0))
        .await
        .expect("healthy");

    proxy.cut();
    let started = Instant::now();
    let status = app
        .client_with_token(&token)
        .list_timesheets(ListTimesheetsRequest::default())
        .await
        .expect_err("database is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let response = app
        .http()
        .get(app.url("/timesheets"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let create = app
        .http()
        .post(app.url("/timesheets"))
        .bearer_auth(&token)
        .json(&json!({"date": "2026-11-27", "project": "W", "hours": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        create.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "never INTERNAL"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        started.elapsed()
    );
    let ready = app
        .http()
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let mut healed = false;
    for _ in 0..10 {
        if app
            .client_with_token(&token)
            .list_timesheets(ListTimesheetsRequest::default())
            .await
            .is_ok()
        {
            healed = true;
            break;
        }
    }
    assert!(healed, "the service recovers once the database is back");
    app.shutdown().await;
    drop(proxy);
    db.remove().await;
}

#[tokio::test]
async fn a_replica_opens_no_more_database_connections_than_its_pool_size() {
    let Some(app) = spawn_app_with(Backend::Postgres, |c| c.database_pool_size = 2).await else {
        return;
    };
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let mut client = app.employee(&format!("user{i}@exampleco.com"));
            tokio::spawn(async move {
                client
                    .create_timesheet(create("2026-11-27", "Website", 1.0))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for call in calls {
        call.await
            .expect("joined")
            .expect("created through a pool of 2");
    }
    use sqlx::Connection;
    let mut observer = sqlx::PgConnection::connect(&app.database_url())
        .await
        .expect("observer connects");
    let opened: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut observer)
    .await
    .expect("count connections");
    assert!(
        (1..=2).contains(&opened),
        "{opened} connections for a pool of 2"
    );
    app.shutdown().await;
}
