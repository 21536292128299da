//! kill -9 under write load: every acknowledged create survives, on SQLite
//! and PostgreSQL. The server runs as its real binary so it can be killed;
//! the same goes for SIGTERM and for a second process on one SQLite file.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tokio::process::Command;

use crate::helpers::*;
use crate::issuer::TestIssuer;

async fn acked_creates_survive_kill_9(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    let Binary {
        child: mut server,
        addr,
        ..
    } = start_binary(&db.url(), &issuer, "info").await;
    let owner = "crash@exampleco.com";
    let token = issuer.token(owner, EMPLOYEE);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    // One permit per acknowledged write, so the test can wait for load.
    let acks = Arc::new(tokio::sync::Semaphore::new(0));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    let mut writers = Vec::new();
    for writer in 0..8 {
        let acked = Arc::clone(&acked);
        let acks = Arc::clone(&acks);
        let token = token.clone();
        let channel = channel.clone();
        let addr = addr.clone();
        writers.push(tokio::spawn(async move {
            let value: tonic::metadata::MetadataValue<_> =
                format!("Bearer {token}").parse().expect("ascii");
            let mut grpc = TimesheetServiceClient::with_interceptor(
                channel,
                move |mut r: tonic::Request<()>| {
                    r.metadata_mut().insert("authorization", value.clone());
                    Ok(r)
                },
            );
            let http = reqwest::Client::new();
            for n in 0.. {
                let project = format!("w{writer}-n{n}");
                let id = if writer % 2 == 0 {
                    match grpc
                        .create_timesheet(create("2026-11-27", &project, 1.0))
                        .await
                    {
                        Ok(reply) => reply.into_inner().id,
                        Err(_) => return,
                    }
                } else {
                    let sent = http
                        .post(format!("http://{addr}/timesheets"))
                        .bearer_auth(&token)
                        .json(&json!({"date": "2026-11-27", "project": project, "hours": 1}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                            match r.json::<serde_json::Value>().await {
                                Ok(body) => body["id"].as_str().unwrap_or_default().to_owned(),
                                Err(_) => return,
                            }
                        }
                        _ => return,
                    }
                };
                acked.lock().expect("lock").push((id, project));
                acks.add_permits(1);
            }
        }));
    }
    // Kill under full load (once writes are being acknowledged), at a
    // moment that differs from run to run.
    tokio::time::timeout(Duration::from_secs(60), acks.acquire_many(20))
        .await
        .expect("20 writes acknowledged within a minute")
        .expect("the semaphore is never closed")
        .forget();
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_millis(),
    );
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    server.start_kill().expect("SIGKILL");
    server.wait().await.expect("reaped");
    for writer in writers {
        writer.await.expect("writer task");
    }
    let acked = acked.lock().expect("lock").clone();

    let Binary {
        child: mut restarted,
        addr,
        ..
    } = start_binary(&db.url(), &issuer, "info").await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let value: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("ascii");
    let mut client =
        TimesheetServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        });
    let mut stored = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_timesheets(ListTimesheetsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        stored.extend(page.timesheets);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // No row is half-written: every stored row is whole and well-formed.
    for row in &stored {
        assert_eq!(
            (row.user_id.as_str(), row.date.as_str(), row.hours),
            (owner, "2026-11-27", 1.0),
            "{row:?}"
        );
        assert!(
            row.project.starts_with('w') && row.create_time.is_some(),
            "{row:?}"
        );
    }
    // Every acknowledged create is there, with what was sent.
    let by_id: std::collections::HashMap<_, _> = stored
        .iter()
        .map(|t| (t.id.clone(), t.project.clone()))
        .collect();
    for (id, project) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(project),
            "acknowledged create {id} ({project}) was lost"
        );
    }
    restarted.start_kill().expect("stop");
    restarted.wait().await.expect("reaped");
    issuer.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_kill_9_on_sqlite() {
    acked_creates_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_kill_9_on_postgres() {
    acked_creates_survive_kill_9(Backend::Postgres).await;
}

/// One REST create by alice on the binary at `addr`.
async fn create_one(addr: &str, issuer: &TestIssuer) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("http://{addr}/timesheets"))
        .bearer_auth(issuer.token("alice@exampleco.com", EMPLOYEE))
        .json(&json!({"date": "2026-11-27", "project": "Website", "hours": 1}))
        .send()
        .await
        .expect("create")
        .status()
}

#[tokio::test]
async fn sigterm_stops_the_process_with_exit_code_0_and_closes_its_listener() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    let Binary {
        child: mut server,
        addr,
        ..
    } = start_binary(&db.url(), &issuer, "info").await;
    assert_eq!(
        create_one(&addr, &issuer).await,
        reqwest::StatusCode::CREATED
    );
    let pid = server.id().expect("running").to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(signalled.success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("exits within the grace period")
        .expect("reaped");
    assert!(status.success(), "exit status {status:?}");
    // The listener is closed: nothing answers on the old address.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    issuer.stop().await;
    db.remove().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_refuses_to_start_and_the_first_keeps_serving() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let issuer = TestIssuer::start().await;
    let Binary {
        child: mut first,
        addr,
        ..
    } = start_binary(&db.url(), &issuer, "info").await;
    let second = serve_command(&db.url(), &issuer, "warn").output();
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the second server gives up within its busy timeout")
        .expect("run the second server");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second server started: {stderr}");
    assert!(
        stderr.contains("database is locked") && stderr.contains("one server per SQLite file"),
        "unclear startup error: {stderr}"
    );
    assert_eq!(
        create_one(&addr, &issuer).await,
        reqwest::StatusCode::CREATED
    );
    first.start_kill().expect("stop");
    first.wait().await.expect("reaped");
    issuer.stop().await;
    db.remove().await;
}
