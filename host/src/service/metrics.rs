//! `/metrics`: the queue and the sandbox's health in Prometheus's text
//! format, read from the store at each scrape (so every API replica says
//! the same).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Health;
use super::store::QueueStats;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// The metrics text for `stats` and `health`.
///
/// # Errors
/// When encoding fails.
pub fn render(stats: &QueueStats, health: &Health) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("agh");
    let gauge = |value: i64| {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        gauge
    };
    registry.register(
        "queue_depth",
        "Submissions waiting for a grading slot",
        gauge(stats.queued),
    );
    registry.register("running", "Submissions being graded", gauge(stats.running));
    let oldest: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    oldest.set(stats.oldest_queued_seconds);
    registry.register(
        "oldest_queued_seconds",
        "Age of the oldest waiting submission",
        oldest,
    );
    let results = Family::<StatusLabel, Gauge>::default();
    for (status, count) in &stats.done_by_status {
        results
            .get_or_create(&StatusLabel {
                status: status.clone(),
            })
            .set(*count);
    }
    registry.register("results", "Results recorded, by status", results);
    registry.register(
        "sandbox_healthy",
        "1 when the last health check proved sandboxes safe",
        gauge(i64::from(health.ok)),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}
