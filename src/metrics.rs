//! Prometheus metrics, served at `/metrics` in the text exposition format. Every metric
//! name starts with `reseat_`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::queue::QueueStats;

type Labels = Vec<(&'static str, String)>;

/// The process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_duration: Family<Labels, Histogram>,
    queue_jobs: Family<Labels, Gauge>,
    job_failures: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("reseat");
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by route, method and status",
            http_requests.clone(),
        );
        let http_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to serve HTTP requests, by route",
            http_duration.clone(),
        );
        let queue_jobs = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in the durable queue, by state (queued, running, done, dead)",
            queue_jobs.clone(),
        );
        let job_failures = Family::<Labels, Counter>::default();
        registry.register(
            "queue_job_failures",
            "Failed job attempts, by job kind",
            job_failures.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                queue_jobs,
                job_failures,
            }),
        }
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.inner
            .http_requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
        self.inner
            .http_duration
            .get_or_create(&vec![("route", route.to_string())])
            .observe(elapsed.as_secs_f64());
    }

    pub fn job_failed(&self, kind: &str) {
        self.inner
            .job_failures
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn set_queue_stats(&self, stats: &QueueStats) {
        for (state, count) in [
            ("queued", stats.queued),
            ("running", stats.running),
            ("done", stats.done),
            ("dead", stats.dead),
        ] {
            self.inner
                .queue_jobs
                .get_or_create(&vec![("state", state.to_string())])
                .set(count);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}
