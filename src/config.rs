//! Command line and environment configuration.
//!
//! Every flag is also read from `TIMESHEETS_<FLAG>`; the doc comments below
//! are the `--help` text. Secrets in URLs are redacted in `Debug`. An on/off
//! flag's variable takes what people write in environments (`1`, `true`,
//! `yes`, `on` and their opposites), not clap's default `true`/`false` only.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, builder::BoolishValueParser};
use jsonwebtoken::Algorithm;

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    crate::auth::keys::parse_algorithm(name).ok_or_else(|| {
        format!(
            "{name:?} is not an accepted algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
        )
    })
}

/// A timeout of zero would fail every call or close every connection at
/// once, so it is refused when the command line is read.
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(err) => Err(err.to_string()),
    }
}

fn message_bytes(text: &str) -> Result<usize, String> {
    let min = crate::service::MIN_MESSAGE_BYTES;
    match text.parse::<usize>() {
        Ok(n) if n < min => Err(format!(
            "must be at least {min}: a reply must hold the largest timesheet"
        )),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

/// The identity claim Auth0's ExampleCo Rule/Action adds to access tokens.
pub const DEFAULT_IDENTITY_CLAIM: &str = "https://api.exampleco.com/email";

/// The audience the original mobile app requests, used by `--dev`.
pub const DEV_AUDIENCE: &str = "https://api.exampleco.com/timesheets";

/// ExampleCo timesheets API: gRPC, gRPC-Web and HTTP/JSON on one port.
#[derive(Debug, Parser)]
#[command(name = "timesheets", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        env = "TIMESHEETS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once at startup; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the API server.
    Serve(ServeConfig),
    /// Mint a development access token signed with the `--dev` issuer's key.
    Token(TokenArgs),
}

/// Settings for `timesheets serve`.
#[derive(Clone, Args)]
pub struct ServeConfig {
    /// Address for every protocol (gRPC, gRPC-Web, HTTP/JSON).
    #[arg(long, env = "TIMESHEETS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Database: `sqlite://<path>` (created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "TIMESHEETS_DATABASE_URL",
        default_value = "sqlite://timesheets.db"
    )]
    pub database_url: String,

    /// PostgreSQL connections per replica: replicas × this must stay below the
    /// server's `max_connections`.
    #[arg(
        long,
        env = "TIMESHEETS_DATABASE_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub database_pool_size: u32,

    /// How long a call waits for a database connection before UNAVAILABLE.
    #[arg(long, env = "TIMESHEETS_DATABASE_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub database_acquire_timeout: Duration,

    /// Bytes of memory for timesheet rows kept for GetTimesheet, SQLite only
    /// (0 disables); a usual row weighs about 0.3 KB. PostgreSQL has no row
    /// cache: other replicas change its rows.
    #[arg(long, env = "TIMESHEETS_ROW_CACHE_BYTES", default_value_t = 4 << 20)]
    pub row_cache_bytes: usize,

    /// Token issuer, exactly as in the `iss` claim (Auth0: `https://<tenant>/`, with the slash).
    #[arg(long = "issuer", env = "TIMESHEETS_ISSUER", value_delimiter = ',')]
    pub issuers: Vec<String>,

    /// Accepted audience (repeatable); a token must name at least one.
    #[arg(long = "audience", env = "TIMESHEETS_AUDIENCE", value_delimiter = ',')]
    pub audiences: Vec<String>,

    /// JWKS location. Default: the `jwks_uri` of `{issuer}.well-known/openid-configuration`,
    /// else `{issuer}.well-known/jwks.json`. Only with a single issuer.
    #[arg(long, env = "TIMESHEETS_JWKS_URI")]
    pub jwks_uri: Option<String>,

    /// Claim that names the caller; falls back to `sub` when absent.
    #[arg(long, env = "TIMESHEETS_IDENTITY_CLAIM", default_value = DEFAULT_IDENTITY_CLAIM)]
    pub identity_claim: String,

    /// Where the OpenAPI document tells clients to get tokens. Default: the
    /// first issuer's Auth0 token endpoint, `{issuer}oauth/token`.
    #[arg(long, env = "TIMESHEETS_TOKEN_URL")]
    pub token_url: Option<String>,

    /// Tolerated clock skew for `exp`, `nbf` and `iat`.
    #[arg(long, env = "TIMESHEETS_CLOCK_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub clock_leeway: Duration,

    /// Accepted signature algorithm (repeatable): RS256/384/512, PS256/384/512, ES256/384, EdDSA.
    #[arg(long = "algorithm", env = "TIMESHEETS_ALGORITHM", value_delimiter = ',', default_value = "RS256", value_parser = parse_algorithm)]
    pub algorithms: Vec<Algorithm>,

    /// Claim holding granted scopes (repeatable), e.g. `permissions` for Auth0 RBAC.
    #[arg(
        long = "scope-claim",
        env = "TIMESHEETS_SCOPE_CLAIM",
        value_delimiter = ',',
        default_value = "scope"
    )]
    pub scope_claims: Vec<String>,

    /// Require this JWT `typ` header, e.g. `at+jwt` for RFC 9068 access tokens.
    #[arg(long, env = "TIMESHEETS_REQUIRE_TYP")]
    pub require_typ: Option<String>,

    /// Tokens longer than this many bytes are refused unparsed.
    #[arg(long, env = "TIMESHEETS_MAX_TOKEN_BYTES", default_value_t = 8192)]
    pub max_token_bytes: usize,

    /// Verified tokens remembered to skip repeat signature checks (0 disables).
    /// Each entry keeps the token itself, about 1 KB for a typical access token.
    #[arg(long, env = "TIMESHEETS_TOKEN_CACHE_SIZE", default_value_t = 10_000)]
    pub token_cache_size: usize,

    /// How long fetched keys stay fresh when the JWKS response sets no max-age.
    #[arg(long, env = "TIMESHEETS_JWKS_CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub jwks_cache_ttl: Duration,

    /// At most one unknown-kid refetch per this interval (not zero: it is what
    /// keeps a flood of made-up kids from hammering the provider).
    #[arg(long, env = "TIMESHEETS_JWKS_REFETCH_INTERVAL", default_value = "30s", value_parser = positive_duration)]
    pub jwks_refetch_interval: Duration,

    /// How long the last good keys keep working past freshness while refreshes fail.
    #[arg(long, env = "TIMESHEETS_JWKS_MAX_STALE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub jwks_max_stale: Duration,

    /// Timeout of one JWKS or discovery request.
    #[arg(long, env = "TIMESHEETS_JWKS_FETCH_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub jwks_fetch_timeout: Duration,

    /// Largest JWKS or discovery body accepted, in bytes.
    #[arg(long, env = "TIMESHEETS_JWKS_MAX_BYTES", default_value_t = 64 * 1024)]
    pub jwks_max_bytes: usize,

    /// Browser origin allowed by CORS (repeatable). Default: any origin, as the original's
    /// `cors()`; bearer tokens, not cookies, make that safe.
    #[arg(
        long = "cors-origin",
        env = "TIMESHEETS_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// JSON field names in HTTP responses: `proto` (user_id, as the original API) or `camel`.
    #[arg(
        long,
        env = "TIMESHEETS_JSON_NAMES",
        value_enum,
        default_value = "proto"
    )]
    pub json_names: JsonNames,

    /// Ignore unknown fields in HTTP JSON bodies instead of answering 400.
    #[arg(
        long,
        env = "TIMESHEETS_JSON_IGNORE_UNKNOWN_FIELDS",
        value_parser = BoolishValueParser::new()
    )]
    pub json_ignore_unknown_fields: bool,

    /// Largest HTTP JSON body accepted, in bytes; larger is 413.
    #[arg(long, env = "TIMESHEETS_HTTP_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub http_max_body_bytes: usize,

    /// Deepest JSON nesting accepted in an HTTP body; deeper is 400.
    #[arg(long, env = "TIMESHEETS_JSON_MAX_DEPTH", default_value_t = 64)]
    pub json_max_depth: usize,

    /// Extra HTTP request header passed to gRPC metadata on transcoded calls (repeatable).
    #[arg(
        long = "forward-header",
        env = "TIMESHEETS_FORWARD_HEADER",
        value_delimiter = ','
    )]
    pub forward_headers: Vec<String>,

    /// On SIGTERM/SIGINT, how long to keep accepting calls while health and readiness already
    /// report "not serving", so load balancers stop routing here before the listener closes.
    #[arg(long, env = "TIMESHEETS_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// On SIGTERM/SIGINT, how long in-flight calls may run before they get UNAVAILABLE.
    /// Keep it below the orchestrator's kill timeout.
    #[arg(long, env = "TIMESHEETS_SHUTDOWN_GRACE", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Calls in flight at once across all protocols; beyond it calls are shed
    /// (RESOURCE_EXHAUSTED, or HTTP 503 with Retry-After) instead of queued.
    #[arg(
        long,
        env = "TIMESHEETS_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024
    )]
    pub max_concurrent_requests: usize,

    /// Deadline of an HTTP/JSON call that sends no `grpc-timeout`; 504 when exceeded.
    #[arg(long, env = "TIMESHEETS_REQUEST_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// Largest gRPC message accepted or sent, in bytes (at least 16384); larger is
    /// RESOURCE_EXHAUSTED. Lists end a page early rather than send more.
    #[arg(
        long,
        env = "TIMESHEETS_MAX_MESSAGE_BYTES",
        default_value_t = 1024 * 1024,
        value_parser = message_bytes
    )]
    pub max_message_bytes: usize,

    /// Concurrent HTTP/2 streams per connection.
    #[arg(
        long,
        env = "TIMESHEETS_HTTP2_MAX_CONCURRENT_STREAMS",
        default_value_t = 256
    )]
    pub http2_max_concurrent_streams: u32,

    /// Largest request header block accepted, in bytes: HTTP/1 answers 431
    /// beyond it, HTTP/2 advertises it as the header list limit.
    #[arg(long, env = "TIMESHEETS_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: u32,

    /// How long an HTTP/1 connection may go without a complete request head,
    /// from when it opens or from the end of the previous response: it closes
    /// slow-header (slowloris) and idle keep-alive connections alike.
    #[arg(long, env = "TIMESHEETS_HTTP1_HEADER_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub http1_header_timeout: Duration,

    /// Connections open at once; beyond it new ones wait in the listen
    /// backlog until one closes. Keep it below the process's file limit.
    #[arg(
        long,
        env = "TIMESHEETS_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// How long a connection may go with no call open and none started
    /// before it is closed gracefully (HTTP/2 GOAWAY: clients reconnect when
    /// they next need to). It frees the slots of clients that keep
    /// connections open and unused; a connection holding a stream (a health
    /// watch) is not idle. It is checked four times per period, so a
    /// connection is sent away within 1.25 times it.
    #[arg(long, env = "TIMESHEETS_CONNECTION_IDLE_TIMEOUT", default_value = "5m", value_parser = positive_duration)]
    pub connection_idle_timeout: Duration,

    /// How long a request body may go without sending anything, on any
    /// protocol: the read then fails and the call ends. It bounds a client
    /// that sends its headers and then stalls, which would otherwise hold
    /// its connection and its admission permit for as long as it liked.
    #[arg(long, env = "TIMESHEETS_REQUEST_BODY_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub request_body_timeout: Duration,

    /// Calls per second one caller (token subject) may make, with bursts of
    /// the same size; beyond it RESOURCE_EXHAUSTED (HTTP 429). Off when unset.
    #[arg(long, env = "TIMESHEETS_RATE_LIMIT_PER_USER")]
    pub rate_limit_per_user: Option<std::num::NonZeroU32>,

    /// PEM certificate chain for TLS (with --tls-key). ALPN offers h2 and http/1.1.
    #[arg(long, env = "TIMESHEETS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS (with --tls-cert).
    #[arg(long, env = "TIMESHEETS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Run with an embedded development issuer; prints ready-to-use tokens. Local use only.
    #[arg(long, env = "TIMESHEETS_DEV", value_parser = BoolishValueParser::new())]
    pub dev: bool,

    /// Where `--dev` keeps its signing key, so dev tokens survive restarts.
    #[arg(
        long,
        env = "TIMESHEETS_DEV_KEY_FILE",
        default_value = "timesheets-dev-key.pem"
    )]
    pub dev_key_file: PathBuf,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_pool_size", &self.database_pool_size)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("row_cache_bytes", &self.row_cache_bytes)
            .field("issuers", &self.issuers)
            .field("token_url", &self.token_url)
            .field("audiences", &self.audiences)
            .field("jwks_uri", &self.jwks_uri)
            .field("identity_claim", &self.identity_claim)
            .field("clock_leeway", &self.clock_leeway)
            .field("algorithms", &self.algorithms)
            .field("scope_claims", &self.scope_claims)
            .field("require_typ", &self.require_typ)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("token_cache_size", &self.token_cache_size)
            .field("jwks_cache_ttl", &self.jwks_cache_ttl)
            .field("jwks_refetch_interval", &self.jwks_refetch_interval)
            .field("jwks_max_stale", &self.jwks_max_stale)
            .field("jwks_fetch_timeout", &self.jwks_fetch_timeout)
            .field("jwks_max_bytes", &self.jwks_max_bytes)
            .field("cors_origins", &self.cors_origins)
            .field("json_names", &self.json_names)
            .field(
                "json_ignore_unknown_fields",
                &self.json_ignore_unknown_fields,
            )
            .field("http_max_body_bytes", &self.http_max_body_bytes)
            .field("json_max_depth", &self.json_max_depth)
            .field("forward_headers", &self.forward_headers)
            .field("shutdown_delay", &self.shutdown_delay)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_timeout", &self.request_timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field(
                "http2_max_concurrent_streams",
                &self.http2_max_concurrent_streams,
            )
            .field("max_header_bytes", &self.max_header_bytes)
            .field("http1_header_timeout", &self.http1_header_timeout)
            .field("max_connections", &self.max_connections)
            .field("connection_idle_timeout", &self.connection_idle_timeout)
            .field("request_body_timeout", &self.request_body_timeout)
            .field("rate_limit_per_user", &self.rate_limit_per_user)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key.as_ref().map(|_| "<redacted path>"))
            .field("dev", &self.dev)
            .field("dev_key_file", &self.dev_key_file)
            .finish()
    }
}

/// Field names in HTTP/JSON responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JsonNames {
    /// `user_id`: what the original REST API sent and the Android app reads.
    Proto,
    /// `userId`: the canonical proto3 JSON spelling.
    Camel,
}

/// Settings for `timesheets token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Scope to grant (repeatable, or space-separated).
    #[arg(long = "scope", env = "TIMESHEETS_SCOPE", required = true)]
    pub scopes: Vec<String>,

    /// The token's subject.
    #[arg(long, env = "TIMESHEETS_SUB", default_value = "dev|employee")]
    pub sub: String,

    /// The caller's email, put in the identity claim.
    #[arg(long, env = "TIMESHEETS_EMAIL")]
    pub email: Option<String>,

    /// Lifetime of the token.
    #[arg(long, env = "TIMESHEETS_EXPIRES_IN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub expires_in: Duration,

    /// Address the dev server listens on; the issuer is derived from it.
    #[arg(long, env = "TIMESHEETS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Audience to put in the token. Given a list, as `serve` reads
    /// `TIMESHEETS_AUDIENCE`, the first: the server accepts any one of its own.
    #[arg(
        long = "audience",
        env = "TIMESHEETS_AUDIENCE",
        value_delimiter = ',',
        default_value = DEV_AUDIENCE
    )]
    pub audiences: Vec<String>,

    /// Identity claim name, as the server is configured.
    #[arg(long, env = "TIMESHEETS_IDENTITY_CLAIM", default_value = DEFAULT_IDENTITY_CLAIM)]
    pub identity_claim: String,

    /// The dev issuer's key file, as given to `serve --dev`.
    #[arg(
        long,
        env = "TIMESHEETS_DEV_KEY_FILE",
        default_value = "timesheets-dev-key.pem"
    )]
    pub dev_key_file: PathBuf,
}

/// Hides the password of a `scheme://user:password@host` URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_reach_debug_output() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/ts"),
            "postgres://app:***@db:5432/ts"
        );
        assert_eq!(
            redact_url("sqlite://timesheets.db"),
            "sqlite://timesheets.db"
        );
    }

    #[test]
    fn the_command_line_parses_as_documented() {
        let cli = Cli::try_parse_from([
            "timesheets",
            "serve",
            "--issuer",
            "https://t/",
            "--audience",
            "a",
            "--audience",
            "b",
        ])
        .expect("valid command line");
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(cfg.audiences, ["a", "b"]);
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(cfg.identity_claim, DEFAULT_IDENTITY_CLAIM);
    }

    #[test]
    fn a_zero_timeout_is_refused_with_the_flag_named() {
        for flag in [
            "--request-timeout",
            "--http1-header-timeout",
            "--request-body-timeout",
            "--jwks-fetch-timeout",
            "--jwks-refetch-interval",
        ] {
            let err = Cli::try_parse_from(["timesheets", "serve", "--dev", flag, "0s"])
                .err()
                .unwrap_or_else(|| panic!("{flag} 0s was accepted"));
            let message = err.to_string();
            assert!(message.contains(flag), "{message}");
            assert!(message.contains("greater than zero"), "{message}");
        }
        let cli =
            Cli::try_parse_from(["timesheets", "serve", "--dev", "--request-timeout", "250ms"])
                .expect("a positive timeout");
        let Command::Serve(cfg) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(cfg.request_timeout, std::time::Duration::from_millis(250));
    }

    #[test]
    fn a_message_limit_too_small_for_one_timesheet_is_refused() {
        let parse = |bytes: &str| {
            Cli::try_parse_from(["timesheets", "serve", "--dev", "--max-message-bytes", bytes])
        };
        let message = parse("16383").expect_err("refused").to_string();
        assert!(message.contains("at least 16384"), "{message}");
        let Command::Serve(cfg) = parse("16384").expect("the minimum").command else {
            panic!("expected serve");
        };
        assert_eq!(cfg.max_message_bytes, 16384);
    }
}
