//! ExampleCo timesheets API: a gRPC service that also speaks gRPC-Web and
//! HTTP/JSON on the same port, with one authentication and scope check.
//!
//! # Layout
//!
//! - [`config`]: the command line (`serve`, `token`); every flag also from `TIMESHEETS_*`.
//! - [`app`]: `App::build` binds, wires storage, auth and services; `run_until` serves.
//! - [`serve`]: the transport: accept loop, HTTP/1 and HTTP/2 limits, connection drain.
//! - [`proto`]: generated types and the embedded descriptor set (the contract).
//! - [`auth`]: JWT validation, JWKS key stores, the scope table and the auth layer.
//! - [`transcode`]: the generic `google.api.http` → gRPC transcoder (HTTP/JSON surface).
//! - [`service`]: the TimesheetService handlers: validate, store, map.
//! - [`domain`]: validated input types (dates, hours, projects, notes).
//! - [`pagination`]: page sizes and tamper-proof keyset page tokens.
//! - [`storage`]: the `Store` interface with SQLite and PostgreSQL backends.
//! - [`error`]: the service error type and its one mapping to gRPC status.
//! - [`dev`]: the embedded development issuer (`serve --dev`, `token`).
//! - [`routes`]: plain-HTTP endpoints: the embedded web client, `/healthz`, `/readyz`.
//! - [`headers`]: the protocols' header names, parsed once.
//! - [`observe`]: request ids, spans, admission control, deadlines and the shutdown grace, per request.
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`ratelimit`]: the optional per-caller rate limit.
//! - [`telemetry`]: log setup (text or JSON).
//! - [`tls`]: optional TLS with ALPN h2 and http/1.1 on the same port.
//!
//! A request flows: listener → (gRPC-Web / JSON translation) → auth layer →
//! handler → storage, and back the same way.

pub mod app;
pub mod auth;
pub mod config;
pub mod dev;
pub mod domain;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod observe;
pub mod pagination;
pub mod proto;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod transcode;

pub use app::App;
pub use config::ServeConfig;
