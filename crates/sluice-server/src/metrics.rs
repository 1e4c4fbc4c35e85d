//! Every metric Sluice exports, declared in one place with its help text.

use metrics::{counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sluice_core::decision::Decision;
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            describe_counter!(
                "sluice_http_requests_total",
                "HTTP requests answered, by route and status class."
            );
            describe_histogram!(
                "sluice_http_request_duration_seconds",
                "HTTP request latency, by route."
            );
            describe_counter!("sluice_decisions_total", "Access decisions, by outcome.");
            describe_counter!("sluice_audit_entries_total", "Audit entries written.");
            describe_counter!(
                "sluice_reaper_recorded_total",
                "Expiries and time-outs recorded by the reaper."
            );
            describe_counter!(
                "sluice_checkpoints_total",
                "Signed audit checkpoints written."
            );
            Some(handle)
        })
        .clone()
}

pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

pub fn http(route: &str, status: u16, seconds: f64) {
    let class = format!("{}xx", status / 100);
    counter!("sluice_http_requests_total", "route" => route.to_owned(), "status" => class)
        .increment(1);
    histogram!("sluice_http_request_duration_seconds", "route" => route.to_owned()).record(seconds);
}

pub fn decisions(ds: &[Decision]) {
    for d in ds {
        counter!("sluice_decisions_total", "outcome" => if d.allowed { "allow" } else { "deny" })
            .increment(1);
    }
}

pub fn audit_entries(n: usize) {
    counter!("sluice_audit_entries_total").increment(n as u64);
}

pub fn reaped(n: usize) {
    counter!("sluice_reaper_recorded_total").increment(n as u64);
}

pub fn checkpoint() {
    counter!("sluice_checkpoints_total").increment(1);
}
