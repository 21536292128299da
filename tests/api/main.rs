//! The integration suite: one binary, the real server on port 0, an
//! in-process issuer, and every scenario on SQLite and (with
//! TEST_POSTGRES_URL) PostgreSQL.

mod helpers;
mod issuer;

mod approvals;
mod attacks;
mod auth;
mod batch;
mod crash;
mod grpc_web;
mod idempotency;
mod logs;
mod pagination;
mod production;
mod reflection;
mod replicas;
mod rest;
mod scopes;
mod timesheets;
mod tls;
mod validation;
