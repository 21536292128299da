//! `spawn_app()`: the real server on port 0 with a fresh database and an
//! in-process issuer, plus one client helper per protocol.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use timesheets::{
    App, ServeConfig,
    config::{Cli, Command},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub use timesheets::proto::timesheets::v1::{timesheet_service_client::TimesheetServiceClient, *};

use crate::issuer::{AUDIENCE, TestIssuer};

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Every scope the API knows, for scope matrices.
pub const ALL_SCOPES: &[&str] = &[
    "create:timesheets",
    "read:timesheets",
    "delete:timesheets",
    "approve:timesheets",
    "batch:upload",
];
pub const EMPLOYEE: &[&str] = &["create:timesheets", "read:timesheets", "delete:timesheets"];
pub const MANAGER: &[&str] = &[
    "create:timesheets",
    "read:timesheets",
    "delete:timesheets",
    "approve:timesheets",
];
pub const IMPORTER: &[&str] = &["batch:upload"];

/// A fresh database that is removed when the test ends.
pub enum TestDb {
    Sqlite { dir: PathBuf },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<Self> {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("timesheets-test-{unique}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                Some(TestDb::Sqlite { dir })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
                    eprintln!(
                        "skipped: TEST_POSTGRES_URL is not set, so the PostgreSQL run did not happen"
                    );
                    return None;
                };
                let name = format!("ts_test_{unique}");
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .expect("connect TEST_POSTGRES_URL");
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .await
                    .expect("create db");
                Some(TestDb::Postgres { admin_url, name })
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { dir } => format!("sqlite://{}", dir.join("timesheets.db").display()),
            TestDb::Postgres { admin_url, name } => {
                let mut url = url::Url::parse(admin_url).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        }
    }

    pub async fn remove(self) {
        match self {
            TestDb::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { admin_url, name } => {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .expect("connect admin");
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await
                    .expect("drop test db");
            }
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(value: MetadataValue<tonic::metadata::Ascii>) -> Self {
        Self(Some(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = TimesheetServiceClient<InterceptedService<Channel, Bearer>>;

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub issuer: TestIssuer,
    pub channel: Channel,
    db: Option<TestDb>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The configuration every test starts from: the command line's own
/// defaults, so tests run what users run.
pub fn test_config(database_url: String, issuer: &TestIssuer) -> ServeConfig {
    let cli = Cli::try_parse_from([
        "timesheets",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &database_url,
        "--issuer",
        &issuer.url(),
        "--audience",
        AUDIENCE,
    ])
    .expect("test command line parses");
    let Command::Serve(config) = cli.command else {
        unreachable!("serve was given")
    };
    config
}

/// Starts the server on `backend`, or `None` when that backend is not
/// available (PostgreSQL without TEST_POSTGRES_URL).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a chance to adjust the configuration.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut ServeConfig),
) -> Option<TestApp> {
    let db = TestDb::create(backend).await?;
    let issuer = TestIssuer::start().await;
    let mut config = test_config(db.url(), &issuer);
    adjust(&mut config);
    Some(start(config, issuer, db).await)
}

async fn start(config: ServeConfig, issuer: TestIssuer, db: TestDb) -> TestApp {
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    // The listener is already bound, so connecting needs no readiness wait.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the server");
    TestApp {
        addr,
        issuer,
        channel,
        db: Some(db),
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// A client whose calls carry `token`.
    pub fn client_with_token(&self, token: &str) -> Client {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        TimesheetServiceClient::with_interceptor(self.channel.clone(), Bearer(Some(value)))
    }

    /// The database this server uses.
    pub fn database_url(&self) -> String {
        self.db.as_ref().map(TestDb::url).unwrap_or_default()
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An HTTP/1.1 client, as the original REST clients use.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("http client")
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.metrics_via(&self.http()).await
    }

    /// `/metrics` as `http` fetches it, on a connection it may keep.
    pub async fn metrics_via(&self, http: &reqwest::Client) -> String {
        http.get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// An HTTP/2 (h2c, prior knowledge) client.
    pub fn h2(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("h2 client")
    }

    /// A fresh token for `email` with `scopes`.
    pub fn token(&self, email: &str, scopes: &[&str]) -> String {
        self.issuer.token(email, scopes)
    }

    /// A client that sends no credentials.
    pub fn anonymous(&self) -> Client {
        TimesheetServiceClient::with_interceptor(self.channel.clone(), Bearer(None))
    }

    /// A client for `email` holding `scopes`.
    pub fn client(&self, email: &str, scopes: &[&str]) -> Client {
        self.client_with_token(&self.issuer.token(email, scopes))
    }

    pub fn employee(&self, email: &str) -> Client {
        self.client(email, EMPLOYEE)
    }

    pub fn manager(&self) -> Client {
        self.client("manager@exampleco.com", MANAGER)
    }

    pub fn importer(&self) -> Client {
        self.client_with_token(&self.issuer.sign(&{
            let mut claims = self.issuer.claims("", IMPORTER);
            claims
                .as_object_mut()
                .expect("object")
                .remove(crate::issuer::EMAIL_CLAIM);
            claims["sub"] = "importer@clients".into();
            claims
        }))
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10 s")
                .expect("server task did not panic");
            result.expect("server exits cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database and issuer.
    pub async fn restart(mut self) -> TestApp {
        self.stop_server().await;
        let db = self.db.take().expect("database");
        let config = test_config(db.url(), &self.issuer);
        start(config, self.issuer, db).await
    }

    /// Sends the shutdown signal without waiting for the server to exit.
    pub fn begin_shutdown(mut self) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self
    }

    /// Waits for a shutdown begun earlier, asserting a clean exit.
    pub async fn finish_shutdown(self) {
        self.shutdown().await;
    }

    /// Stops the server, asserting a clean exit, and removes the database.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
        if let Some(db) = self.db.take() {
            db.remove().await;
        }
    }
}

/// A valid timesheet body.
pub fn timesheet(date: &str, project: &str, hours: f64) -> Timesheet {
    Timesheet {
        date: date.into(),
        project: project.into(),
        hours,
        ..Default::default()
    }
}

pub fn create(date: &str, project: &str, hours: f64) -> CreateTimesheetRequest {
    CreateTimesheetRequest {
        timesheet: Some(timesheet(date, project, hours)),
        request_id: String::new(),
    }
}

/// A response header's value, when present and visible ASCII.
pub fn header_value<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Field paths of the BadRequest violations in `status`.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Runs a scenario on both backends: `mod name { on_sqlite, on_postgres }`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident: &TestApp) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($app: &$crate::helpers::TestApp) $body

            #[tokio::test]
            async fn on_sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                    .await
                    .expect("SQLite is always available");
                scenario(&app).await;
                app.shutdown().await;
            }

            #[tokio::test]
            async fn on_postgres() {
                let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await else {
                    return;
                };
                scenario(&app).await;
                app.shutdown().await;
            }
        }
    )*};
}

/// The server's real binary, serving on an ephemeral port, for tests that
/// signal or kill it or read its logs.
pub struct Binary {
    pub child: tokio::process::Child,
    pub addr: String,
    /// Every line it logs after it started serving, as it logs them.
    pub logs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// The binary's `serve` on an ephemeral port with JSON logs filtered by
/// `log_filter` (`RUST_LOG`), not yet started.
pub fn serve_command(
    database_url: &str,
    issuer: &TestIssuer,
    log_filter: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_timesheets"));
    command
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--issuer",
            &issuer.url(),
            "--audience",
            AUDIENCE,
        ])
        .env("RUST_LOG", log_filter)
        .kill_on_drop(true);
    command
}

/// Starts the binary with JSON logs filtered by `log_filter` (`RUST_LOG`).
pub async fn start_binary(database_url: &str, issuer: &TestIssuer, log_filter: &str) -> Binary {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = serve_command(database_url, issuer, log_filter)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the server binary");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server starts within 30 s")
            .expect("read stderr")
            .expect("server exited before serving");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(addr) = event["fields"]["addr"].as_str().filter(|_| {
            event["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serving"))
        }) {
            break addr.to_owned();
        }
    };
    // Keeps draining the log so the pipe never fills; it ends with the
    // process, when stderr closes.
    let (sender, logs) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = sender.send(line);
        }
    });
    Binary { child, addr, logs }
}
