//! Guarded rollouts, the server's part: the Prometheus HTTP API client, the last readings of
//! every guard (kept in memory: each instance reads every guard itself, each interval), and
//! the background task that reads them. What the readings mean — breach, hold or advance — is
//! decided in `sluice_eval::layers` (pure); acting on it, and the task that reads them, is
//! `ops/guards.rs`.

use sluice_api::flags::{GuardState, GuardStatus, OnBreach as WireBreach};
use sluice_eval::layers::{OnBreach, Rollout, Verdict};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Where the guards' Prometheus is and how often they are read.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The Prometheus base URL, e.g. `http://127.0.0.1:9090` (its HTTP API is under
    /// `/api/v1/`).
    pub prometheus_url: String,
    /// How often every running guarded rollout's guards are read while a step holds; they are
    /// also read at the moment a step is due.
    pub interval: Duration,
}

/// The default interval between two readings.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// One guard's last reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub value: Result<f64, String>,
    pub sample: Option<Result<f64, String>>,
    pub verdict: Verdict,
    pub at_ms: i64,
}

/// A rollout's last readings, one per guard, and why it holds (if it does).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutReadings {
    /// Which rollout of the flag they belong to.
    pub started_at_ms: i64,
    pub guards: Vec<Reading>,
    pub held: Option<String>,
}

/// The guards' configuration on this instance and their last readings.
#[derive(Debug, Default)]
pub struct Guards {
    config: OnceLock<GuardConfig>,
    readings: Mutex<HashMap<(String, String), RolloutReadings>>,
    wake: Notify,
}

impl Guards {
    /// Set once, when the server runs with a Prometheus.
    pub fn configure(&self, config: GuardConfig) {
        let _ = self.config.set(config);
    }

    pub fn config(&self) -> Option<&GuardConfig> {
        self.config.get()
    }

    /// The last readings of the rollout of `env/key` that started at `started_at_ms`.
    pub fn readings(&self, env: &str, key: &str, started_at_ms: i64) -> Option<RolloutReadings> {
        let map = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(env.to_owned(), key.to_owned()))
            .filter(|r| r.started_at_ms == started_at_ms)
            .cloned()
    }

    pub fn record(&self, env: &str, key: &str, readings: RolloutReadings) {
        let mut map = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((env.to_owned(), key.to_owned()), readings);
    }

    /// Forgets the readings of rollouts no longer guarded and running.
    pub fn retain(&self, live: &std::collections::HashSet<(String, String)>) {
        let mut map = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| live.contains(k));
    }

    /// Reads the guards now (a guarded rollout started: its first reading need not wait).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`poke`](Self::poke) (one that came while nobody waited is kept).
    pub async fn poked(&self) {
        self.wake.notified().await;
    }
}

pub fn wire_breach(b: OnBreach) -> WireBreach {
    match b {
        OnBreach::Pause => WireBreach::Pause,
        OnBreach::Rollback => WireBreach::Rollback,
    }
}

/// Each guard of `r` with its last reading, if there is one.
pub fn guard_statuses(r: &Rollout, readings: Option<&RolloutReadings>) -> Vec<GuardStatus> {
    r.guards
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let reading = readings.and_then(|x| x.guards.get(i));
            let (state, reason) = match reading.map(|x| &x.verdict) {
                None => (GuardState::Unread, None),
                Some(Verdict::Pass) => (GuardState::Passing, None),
                Some(Verdict::Breach) => (GuardState::Breached, None),
                Some(Verdict::Unknown(why)) => (GuardState::Unknown, Some(why.clone())),
            };
            GuardStatus {
                query: g.condition.query.clone(),
                comparison: g.condition.comparison.as_str().to_owned(),
                threshold: g.condition.threshold,
                min_sample: g.min_sample.as_ref().map(ToString::to_string),
                on_breach: wire_breach(g.on_breach),
                state,
                value: reading.and_then(|x| x.value.as_ref().ok().copied()),
                sample: reading.and_then(|x| x.sample.as_ref()?.as_ref().ok().copied()),
                reason,
                read_at: reading.and_then(|x| chrono::DateTime::from_timestamp_millis(x.at_ms)),
            }
        })
        .collect()
}

/// The Prometheus HTTP API, for instant queries that must give one number.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    query_url: url::Url,
}

impl Prometheus {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Prometheus> {
        let base =
            crate::public_url(base).map_err(|e| anyhow::anyhow!("the Prometheus URL: {e}"))?;
        let query_url = url::Url::parse(&format!("{base}/api/v1/query"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Prometheus { http, query_url })
    }

    /// The value of an instant query: a scalar, or a vector of exactly one sample. Anything
    /// else — Prometheus unreachable, an error answer, no series, several — is why not.
    pub async fn query(&self, query: &str) -> Result<f64, String> {
        let resp = self
            .http
            .post(self.query_url.clone())
            .form(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("Prometheus unreachable: {}", root_cause(&e)))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("Prometheus answered {status} without JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "query error ({}): {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("no message")
            ));
        }
        one_number(&body["data"])
    }
}

/// The innermost error's text (reqwest's own says only "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// One number from a query's `data`: `{"resultType": "scalar", "result": [t, "v"]}` or a
/// vector of exactly one sample.
fn one_number(data: &serde_json::Value) -> Result<f64, String> {
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => &one["value"],
            Some([]) => return Err("empty result: no series matched".into()),
            Some(many) => {
                return Err(format!(
                    "{} series, not one number (aggregate the query, e.g. with sum)",
                    many.len()
                ))
            }
            None => return Err("a vector without a result".into()),
        },
        Some(other) => return Err(format!("a {other}, not one number")),
        None => return Err("an answer without a result type".into()),
    };
    let raw = sample[1]
        .as_str()
        .ok_or_else(|| "a sample without a value".to_owned())?;
    raw.parse::<f64>()
        .map_err(|_| format!("the value `{raw}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_number_or_why_not() {
        let scalar = json!({"resultType": "scalar", "result": [1.0, "0.25"]});
        assert_eq!(one_number(&scalar), Ok(0.25));
        let one = json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "3"]}]});
        assert_eq!(one_number(&one), Ok(3.0));
        let nan =
            json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "NaN"]}]});
        assert!(one_number(&nan).is_ok_and(f64::is_nan));
        let empty = json!({"resultType": "vector", "result": []});
        assert!(one_number(&empty).is_err_and(|e| e.contains("empty")));
        let two =
            json!({"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]});
        assert!(one_number(&two).is_err_and(|e| e.contains("2 series")));
        let matrix = json!({"resultType": "matrix", "result": []});
        assert!(one_number(&matrix).is_err_and(|e| e.contains("matrix")));
    }
}
