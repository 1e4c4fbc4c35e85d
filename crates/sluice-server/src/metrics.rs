//! Every metric Sluice exports, declared in one place with its help text.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
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
                "sluice_refusals_total",
                "Requests refused by policy (403 and refused access requests)."
            );
            describe_counter!(
                "sluice_auth_failures_total",
                "Failed authentications (an unknown, revoked or expired token)."
            );
            describe_counter!(
                "sluice_checkpoints_total",
                "Signed audit checkpoints written."
            );
            describe_counter!(
                "sluice_witness_failures_total",
                "Checkpoints that could not be appended to the witness file or POSTed to the witness URL."
            );
            describe_counter!(
                "sluice_notifications_delivered_total",
                "Notifications delivered (a sink answered 2xx)."
            );
            describe_counter!(
                "sluice_notifications_failed_total",
                "Notification delivery attempts that failed (each is retried, or dead-lettered after the limit)."
            );
            describe_counter!(
                "sluice_notifications_dead_total",
                "Notifications given up on after the attempt limit."
            );
            describe_gauge!(
                "sluice_notifications_pending",
                "Notifications in the outbox waiting for delivery (all instances)."
            );
            describe_gauge!(
                "sluice_notifications_dead",
                "Notifications in the outbox given up on (all instances), until retried."
            );
            describe_counter!(
                "sluice_guard_breaches_total",
                "Rollouts a guard paused or rolled back, by action."
            );
            describe_counter!(
                "sluice_guard_holds_total",
                "Guard readings that held a rollout at a due step (a guard could not be evaluated)."
            );
            describe_counter!(
                "sluice_access_syncs_total",
                "Other instances' access changes taken, by what was read: only the grants that moved, or everything (a policy, principal, token or gateway change, or a long gap)."
            );
            describe_histogram!(
                "sluice_notification_lag_seconds",
                "From the audited change to its notification's delivery."
            );
            Some(handle)
        })
        .clone()
}

pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// One route's handles, registered once; the request path only increments them.
struct RouteMetrics {
    duration: metrics::Histogram,
    /// `1xx` … `5xx`.
    by_class: [metrics::Counter; 5],
}

/// Route patterns are the router's own strings, so a fast hash is safe.
type RouteCache = std::sync::RwLock<rustc_hash::FxHashMap<String, RouteMetrics>>;

fn route_metrics(route: &str) -> RouteMetrics {
    let owned = route.to_owned();
    let class = |c: u16| counter!("sluice_http_requests_total", "route" => owned.clone(), "status" => format!("{c}xx"));
    RouteMetrics {
        duration: histogram!("sluice_http_request_duration_seconds", "route" => owned.clone()),
        by_class: [class(1), class(2), class(3), class(4), class(5)],
    }
}

/// Records one answered request. Handles are looked up by route in a read-mostly map, so the
/// hot path does no label formatting and no allocation.
pub fn http(route: &str, status: u16, seconds: f64) {
    static CACHE: OnceLock<RouteCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let class = usize::from((status / 100).clamp(1, 5) - 1);
    {
        let map = cache.read().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(route) {
            m.by_class[class].increment(1);
            m.duration.record(seconds);
            return;
        }
    }
    let m = route_metrics(route);
    m.by_class[class].increment(1);
    m.duration.record(seconds);
    let mut map = cache.write().unwrap_or_else(|e| e.into_inner());
    // Routes are the router's patterns (or "unmatched"), so the map stays small.
    map.entry(route.to_owned()).or_insert(m);
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

/// One sync that found other instances' access changes (see `App::sync`).
pub fn access_synced(grants_alone: bool) {
    counter!("sluice_access_syncs_total", "read" => if grants_alone { "grants" } else { "whole" })
        .increment(1);
}

pub fn reaped(n: usize) {
    counter!("sluice_reaper_recorded_total").increment(n as u64);
}

pub fn guard_breached(rolled_back: bool) {
    let action = if rolled_back { "rollback" } else { "pause" };
    counter!("sluice_guard_breaches_total", "action" => action).increment(1);
}

pub fn guard_held() {
    counter!("sluice_guard_holds_total").increment(1);
}

pub fn refused() {
    counter!("sluice_refusals_total").increment(1);
}

pub fn auth_failed() {
    counter!("sluice_auth_failures_total").increment(1);
}

pub fn checkpoint() {
    counter!("sluice_checkpoints_total").increment(1);
}

pub fn witness_failed() {
    counter!("sluice_witness_failures_total").increment(1);
}

pub fn notification_delivered(lag_seconds: f64) {
    counter!("sluice_notifications_delivered_total").increment(1);
    histogram!("sluice_notification_lag_seconds").record(lag_seconds);
}

pub fn notification_failed() {
    counter!("sluice_notifications_failed_total").increment(1);
}

pub fn notification_dead() {
    counter!("sluice_notifications_dead_total").increment(1);
}

pub fn notifications_pending(pending: i64, dead: i64) {
    gauge!("sluice_notifications_pending").set(pending as f64);
    gauge!("sluice_notifications_dead").set(dead as f64);
}

/// The route a request was answered on, for its metrics.
pub enum RouteName {
    /// By the router.
    Matched(axum::extract::MatchedPath),
    /// Before it (see [`crate::evaluations`]).
    Fixed(&'static str),
}

impl RouteName {
    pub fn as_str(&self) -> &str {
        match self {
            RouteName::Matched(m) => m.as_str(),
            RouteName::Fixed(r) => r,
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer being made, counted and timed under its route by [`http`] once made.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        route: Option<RouteName>,
        start: std::time::Instant,
    }
}

impl<F> Timed<F> {
    /// Starts the clock on `inner`, answered on `route` (`None`: no route matched).
    pub fn new(inner: F, route: Option<RouteName>) -> Self {
        Timed {
            inner,
            route,
            start: std::time::Instant::now(),
        }
    }
}

impl<F, E> std::future::Future for Timed<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = Result<axum::response::Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &out {
            http(
                this.route.as_ref().map_or("unmatched", RouteName::as_str),
                resp.status().as_u16(),
                this.start.elapsed().as_secs_f64(),
            );
        }
        std::task::Poll::Ready(out)
    }
}
