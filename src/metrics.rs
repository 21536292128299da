//! Prometheus metrics at `GET /metrics`, with an explicit registry.
//!
//! Request, auth-failure and shedding counters are pushed as calls happen;
//! gauges and counters owned by other components (JWKS fetches, key counts,
//! database pools) are read from them at scrape time, so those components
//! need not know about metrics at all.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text::encode},
    metrics::MetricType,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    auth::Authenticator,
    headers::Protocol,
    storage::{GROUP_SIZE_BOUNDS, RowCacheStats, Store, WriteStats},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    protocol: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerResultLabels {
    issuer: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s in doublings: covers a cached read and a stuck call.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The `method` label of a call to a method the service does not have, so
/// that made-up method names cannot mint new series.
const UNKNOWN_METHOD: &str = "unknown";

/// gRPC codes 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: usize = 17;

/// One method's series under one protocol, each taken from its family the
/// first time it is needed and kept: a family lookup takes the family's
/// lock, hashes and allocates the labels, about 3k instructions a call
/// under callgrind, and the lock is shared by every runtime thread.
struct CallSeries {
    latency: OnceLock<Histogram>,
    codes: [OnceLock<Counter>; CODES],
}

/// Every method of the service (from its descriptor) plus `unknown`, by
/// protocol.
struct Calls {
    /// Sorted, for a binary search by name.
    methods: Vec<String>,
    /// `(methods.len() + 1) × Protocol::ALL.len()`; the last method row is
    /// `unknown`.
    series: Vec<CallSeries>,
}

impl Calls {
    fn new() -> Self {
        let mut methods: Vec<String> = crate::proto::descriptor_pool()
            .get_service_by_name(crate::proto::SERVICE_NAME)
            .map(|service| service.methods().map(|m| m.name().to_owned()).collect())
            .unwrap_or_default();
        methods.sort();
        let series = (0..(methods.len() + 1) * Protocol::ALL.len())
            .map(|_| CallSeries {
                latency: OnceLock::new(),
                codes: std::array::from_fn(|_| OnceLock::new()),
            })
            .collect();
        Self { methods, series }
    }

    fn key(&self, rpc: &str, protocol: Protocol) -> CallKey {
        let row = self
            .methods
            .binary_search_by(|m| m.as_str().cmp(rpc))
            .unwrap_or(self.methods.len());
        CallKey { row, protocol }
    }

    fn name(&self, key: CallKey) -> &str {
        self.methods
            .get(key.row)
            .map_or(UNKNOWN_METHOD, String::as_str)
    }

    fn series(&self, key: CallKey) -> &CallSeries {
        &self.series[key.row * Protocol::ALL.len() + key.protocol as usize]
    }
}

/// Which series a call is counted in: found from the request's method path
/// before the call, so nothing of the request is kept for after it.
#[derive(Debug, Clone, Copy)]
pub struct CallKey {
    row: usize,
    protocol: Protocol,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Calls,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    auth_failures: Family<ReasonLabels, Counter>,
    shed: Counter,
    jwks_fetches: Family<IssuerResultLabels, Counter>,
    signing_keys: Family<IssuerLabels, Gauge>,
    pool: Family<PoolLabels, Gauge>,
    write_group_sizes: GroupSizes,
    row_cache_lookups: Family<ResultLabels, Counter>,
    row_cache_bytes: Gauge,
    connections_open: Gauge,
}

/// The SQLite committer's group sizes as a histogram. The committer keeps
/// the bucket counts itself; this holds the copy read at scrape time.
#[derive(Clone, Debug, Default)]
struct GroupSizes(Arc<std::sync::Mutex<WriteStats>>);

impl EncodeMetric for GroupSizes {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let stats = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets: Vec<(f64, u64)> = GROUP_SIZE_BOUNDS
            .iter()
            .map(|&bound| bound as f64)
            .chain([f64::INFINITY])
            .zip(stats.sizes)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(stats.rows as f64, stats.groups(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("timesheets");
        let requests = Family::default();
        registry.register(
            "requests",
            "Calls by method, protocol (grpc, grpc-web, json) and gRPC code",
            requests.clone(),
        );
        let latency: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Call latency by method and protocol",
            latency.clone(),
        );
        let auth_failures = Family::default();
        registry.register(
            "auth_failures",
            "Refused credentials by reason",
            auth_failures.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "shed_requests",
            "Calls refused because the server was at its concurrency limit",
            shed.clone(),
        );
        let jwks_fetches = Family::default();
        registry.register(
            "jwks_fetches",
            "JWKS fetches by issuer and result",
            jwks_fetches.clone(),
        );
        let signing_keys = Family::default();
        registry.register(
            "signing_keys",
            "Signing keys loaded per issuer",
            signing_keys.clone(),
        );
        let pool = Family::default();
        registry.register(
            "db_pool_connections",
            "Database connections by pool and state (in_use, idle)",
            pool.clone(),
        );
        let write_group_sizes = GroupSizes::default();
        registry.register(
            "write_group_size",
            "Inserts per group-commit transaction (SQLite)",
            write_group_sizes.clone(),
        );
        let row_cache_lookups = Family::default();
        registry.register(
            "row_cache_lookups",
            "GetTimesheet row-cache lookups by result (hit, miss; SQLite)",
            row_cache_lookups.clone(),
        );
        let row_cache_bytes = Gauge::default();
        registry.register(
            "row_cache_bytes",
            "What the cached rows weigh (SQLite; at most --row-cache-bytes)",
            row_cache_bytes.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Connections being served (at most --max-connections)",
            connections_open.clone(),
        );
        Arc::new(Self {
            registry,
            calls: Calls::new(),
            requests,
            latency,
            auth_failures,
            shed,
            jwks_fetches,
            signing_keys,
            pool,
            write_group_sizes,
            row_cache_lookups,
            row_cache_bytes,
            connections_open,
        })
    }

    /// The gauge of open connections, which the accept loop keeps.
    pub fn connections_open(&self) -> Gauge {
        self.connections_open.clone()
    }

    /// The series of a call of `rpc` (the method's short name) arriving by
    /// `protocol`.
    pub fn call_key(&self, rpc: &str, protocol: Protocol) -> CallKey {
        self.calls.key(rpc, protocol)
    }

    /// The `method` label of `key`: the method's name, or `unknown`.
    pub fn method_label(&self, key: CallKey) -> &str {
        self.calls.name(key)
    }

    /// One finished call.
    pub fn record_call(&self, key: CallKey, code: tonic::Code, elapsed: Duration) {
        let (method, protocol, series) =
            (self.calls.name(key), key.protocol, self.calls.series(key));
        series
            .latency
            .get_or_init(|| {
                self.latency
                    .get_or_create(&LatencyLabels {
                        method: method.to_owned(),
                        protocol: protocol.as_str(),
                    })
                    .clone()
            })
            .observe(elapsed.as_secs_f64());
        // `Code::from_i32` maps anything outside 0..=16 to UNKNOWN.
        let index = usize::try_from(code as i32).unwrap_or(usize::MAX);
        if let Some(slot) = series.codes.get(index) {
            slot.get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        method: method.to_owned(),
                        protocol: protocol.as_str(),
                        code: crate::transcode::code_name(code),
                    })
                    .clone()
            })
            .inc();
        }
    }

    pub fn record_auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn record_shed(&self) {
        self.shed.inc();
    }

    fn record_row_cache(&self, cache: RowCacheStats) {
        for (result, value) in [("hit", cache.hits), ("miss", cache.misses)] {
            self.row_cache_lookups
                .get_or_create(&ResultLabels { result })
                .inner()
                .store(value, std::sync::atomic::Ordering::Relaxed);
        }
        self.row_cache_bytes
            .set(i64::try_from(cache.bytes).unwrap_or(i64::MAX));
    }

    /// The text exposition of the pushed values only.
    #[cfg(test)]
    pub(crate) fn pushed(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encodes");
        out
    }

    /// The text exposition, after reading the pulled values.
    pub async fn render(&self, auth: &Authenticator, store: &dyn Store) -> String {
        for (issuer, keys) in auth.verifier().key_stores() {
            let stats = keys.fetch_stats();
            for (result, value) in [("ok", stats.succeeded), ("error", stats.failed)] {
                let counter = self.jwks_fetches.get_or_create(&IssuerResultLabels {
                    issuer: issuer.to_owned(),
                    result,
                });
                counter
                    .inner()
                    .store(value, std::sync::atomic::Ordering::Relaxed);
            }
            self.signing_keys
                .get_or_create(&IssuerLabels {
                    issuer: issuer.to_owned(),
                })
                .set(i64::try_from(keys.key_count()).unwrap_or(i64::MAX));
        }
        for pool in store.pool_stats() {
            let in_use = pool.size.saturating_sub(pool.idle);
            self.pool
                .get_or_create(&PoolLabels {
                    pool: pool.name,
                    state: "in_use",
                })
                .set(i64::from(in_use));
            self.pool
                .get_or_create(&PoolLabels {
                    pool: pool.name,
                    state: "idle",
                })
                .set(i64::from(pool.idle));
        }
        if let Some(writes) = store.write_stats() {
            *self
                .write_group_sizes
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = writes;
        }
        if let Some(cache) = store.row_cache_stats() {
            self.record_row_cache(cache);
        }
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &self.registry) {
            tracing::error!(%err, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics) -> String {
        metrics.pushed()
    }

    #[test]
    fn calls_are_counted_per_method_protocol_and_code_and_made_up_methods_as_unknown() {
        let metrics = Metrics::new();
        let ms = Duration::from_millis(1);
        let call = |rpc, protocol, code| {
            metrics.record_call(metrics.call_key(rpc, protocol), code, ms);
        };
        call("GetTimesheet", Protocol::Json, tonic::Code::Ok);
        call("GetTimesheet", Protocol::Json, tonic::Code::Ok);
        call("GetTimesheet", Protocol::Grpc, tonic::Code::NotFound);
        for made_up in ["Nope", "Nope2", "", "zzz"] {
            let key = metrics.call_key(made_up, Protocol::GrpcWeb);
            assert_eq!(metrics.method_label(key), "unknown");
            metrics.record_call(key, tonic::Code::Unimplemented, ms);
        }
        let text = text(&metrics);
        for line in [
            r#"timesheets_requests_total{method="GetTimesheet",protocol="json",code="OK"} 2"#,
            r#"timesheets_requests_total{method="GetTimesheet",protocol="grpc",code="NOT_FOUND"} 1"#,
            r#"timesheets_requests_total{method="unknown",protocol="grpc-web",code="UNIMPLEMENTED"} 4"#,
            r#"timesheets_request_duration_seconds_count{method="GetTimesheet",protocol="json"} 2"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("Nope"), "{text}");
    }

    #[test]
    fn protocols_index_their_own_series() {
        for (index, protocol) in Protocol::ALL.into_iter().enumerate() {
            assert_eq!(protocol as usize, index);
        }
    }
}
