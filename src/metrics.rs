//! Prometheus metrics at `GET /metrics`, with an explicit registry.
//!
//! Request, auth-failure and shedding counters are pushed as calls happen;
//! gauges and counters owned by other components (JWKS fetches, key counts,
//! database pools) are read from them at scrape time, so those components
//! need not know about metrics at all.

use std::{sync::Arc, time::Duration};

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
    storage::{GROUP_SIZE_BOUNDS, Store, WriteStats},
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
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s in doublings: covers a cached read and a stuck call.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    auth_failures: Family<ReasonLabels, Counter>,
    shed: Counter,
    jwks_fetches: Family<IssuerResultLabels, Counter>,
    signing_keys: Family<IssuerLabels, Gauge>,
    pool: Family<PoolLabels, Gauge>,
    write_group_sizes: GroupSizes,
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
        Arc::new(Self {
            registry,
            requests,
            latency,
            auth_failures,
            shed,
            jwks_fetches,
            signing_keys,
            pool,
            write_group_sizes,
        })
    }

    /// One finished call of `rpc` (the method's short name, as in the
    /// request span).
    pub fn record_call(
        &self,
        rpc: &str,
        protocol: &'static str,
        code: tonic::Code,
        elapsed: Duration,
    ) {
        let method = rpc.to_owned();
        self.latency
            .get_or_create(&LatencyLabels {
                method: method.clone(),
                protocol,
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                protocol,
                code: crate::transcode::code_name(code),
            })
            .inc();
    }

    pub fn record_auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn record_shed(&self) {
        self.shed.inc();
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
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &self.registry) {
            tracing::error!(%err, "encoding metrics");
        }
        out
    }
}
