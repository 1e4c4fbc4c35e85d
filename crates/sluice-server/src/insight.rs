//! Flag insight: how often each flag answered which variant for which reason, and when each
//! flag and each client key last evaluated — counted on the OFREP path, kept in memory,
//! added to the store in batches (one transaction per flush, never a write per evaluation)
//! and exported to `/metrics` under a cap on the number of label sets.
//!
//! The hot path is one uncontended lock and one hash-map update per evaluation (one lock for
//! a whole bulk answer): each compiled environment has a [`Tally`] whose counters are keyed by
//! a packed integer — the flag's position in the snapshot, the variant's position in the flag,
//! the reason — in a few shards, each thread always taking the same one. Names are only looked
//! up when the counters are drained. A tally lives as long as its snapshot *and* until it has
//! been drained once after the snapshot was replaced, so a swap loses nothing.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use sluice_eval::{Evaluation, Located, Reason, Snapshot};
use sluice_store::{ClientEvaluations, EvaluationCount, Store, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shards of each counter map; a thread always uses the same one.
const SHARDS: usize = 8;

/// Label sets of `sluice_flag_evaluations_total` exported by default; evaluations past the
/// cap are counted in `sluice_flag_evaluations_overflow_total`.
pub const DEFAULT_SERIES_CAP: usize = 2_000;

/// Milliseconds in a (UTC) day: counts are kept per day.
const DAY_MS: i64 = 86_400_000;

/// The variant position of an answer without a variant.
const NO_VARIANT: u64 = 0xFFFF;

const REASONS: [Reason; 6] = [
    Reason::Static,
    Reason::TargetingMatch,
    Reason::Split,
    Reason::Disabled,
    Reason::Default,
    Reason::Error,
];

fn reason_code(r: Reason) -> u64 {
    match r {
        Reason::Static => 0,
        Reason::TargetingMatch => 1,
        Reason::Split => 2,
        Reason::Disabled => 3,
        Reason::Default => 4,
        Reason::Error => 5,
    }
}

fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    MINE.with(|m| *m)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many, and the latest moment (milliseconds since the epoch).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cell {
    count: u64,
    last_ms: i64,
}

impl Cell {
    fn add(&mut self, count: u64, last_ms: i64) {
        self.count += count;
        self.last_ms = self.last_ms.max(last_ms);
    }
}

/// One lock per cache line, so two threads' shards never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard<T>(Mutex<T>);

/// A flag's key and its variants' names.
type FlagNames = (Box<str>, Box<[Box<str>]>);

/// Cached bulk answers counted whole: (codes, count and last) by (address, day).
type AnswerCounts = FxHashMap<(usize, i64), (Arc<[u64]>, Cell)>;

/// Distinct cached answers counted whole per shard between two drains (each holds its codes,
/// 8 bytes a flag); past it, answers are counted flag by flag.
const CACHED_ANSWERS: usize = 256;

/// Client keys by token id: (environment, evaluations and the last).
type ClientCounts = FxHashMap<String, (String, Cell)>;

/// The evaluation counters of one compiled environment.
#[derive(Debug)]
pub struct Tally {
    environment: String,
    /// Each flag's key and variant names, by position in the snapshot.
    names: Box<[FlagNames]>,
    /// By answer code and UTC day (days since 1970-01-01) of the evaluation.
    shards: [Shard<FxHashMap<(u64, i64), Cell>>; SHARDS],
    /// Bulk answers served again, by the address of their codes and the day (see
    /// [`Tally::count_cached`]).
    answers: [Shard<AnswerCounts>; SHARDS],
    /// Evaluations of keys the environment does not have.
    unknown: AtomicU64,
}

impl Tally {
    pub fn new(environment: &str, snapshot: &Snapshot) -> Tally {
        Tally {
            environment: environment.to_owned(),
            names: snapshot
                .flag_names()
                .map(|(key, variants)| (key.into(), variants.map(Box::from).collect()))
                .collect(),
            shards: Default::default(),
            answers: Default::default(),
            unknown: AtomicU64::new(0),
        }
    }

    /// What is counted of one answer: the flag's position, the variant's, the reason, packed;
    /// `None` for a flag the snapshot does not have.
    pub fn code(snapshot: &Snapshot, e: &Evaluation<'_>) -> Option<u64> {
        let flag = snapshot.flag_index(e.key)?;
        let variant = e.variant.and_then(|v| snapshot.variant_index(flag, v));
        Some(Self::code_of(Located { flag, variant }, e.reason))
    }

    /// [`Tally::code`] of an answer already located in its snapshot (no lookup by key).
    pub fn code_of(place: Located, reason: Reason) -> u64 {
        let variant = place.variant.map_or(NO_VARIANT, u64::from);
        (u64::from(place.flag) << 24) | (variant << 8) | reason_code(reason)
    }

    /// Counts one answer at `at_ms`.
    pub fn count(&self, code: Option<u64>, at_ms: i64) {
        match code {
            Some(code) => {
                let day = at_ms.div_euclid(DAY_MS);
                let mut map = lock(&self.shards[my_shard()].0);
                map.entry((code, day)).or_default().add(1, at_ms);
            }
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a bulk answer's flags at `at_ms`, under one lock: one update per flag.
    pub fn count_all(&self, codes: &[u64], at_ms: i64) {
        let day = at_ms.div_euclid(DAY_MS);
        let mut map = lock(&self.shards[my_shard()].0);
        for code in codes {
            map.entry((*code, day)).or_default().add(1, at_ms);
        }
    }

    /// Counts a bulk answer served again (from the answer cache, or as a `304`): one update
    /// for the whole answer, keyed by the identity of its codes (held here, so the address
    /// cannot be reused meanwhile), spread over its flags when drained. Past
    /// [`CACHED_ANSWERS`] distinct answers in a shard, counted flag by flag.
    pub fn count_cached(&self, codes: &Arc<[u64]>, at_ms: i64) {
        let day = at_ms.div_euclid(DAY_MS);
        let id = Arc::as_ptr(codes).cast::<u64>() as usize;
        {
            let mut map = lock(&self.answers[my_shard()].0);
            if let Some((_, cell)) = map.get_mut(&(id, day)) {
                cell.add(1, at_ms);
                return;
            }
            if map.len() < CACHED_ANSWERS {
                let mut cell = Cell::default();
                cell.add(1, at_ms);
                map.insert((id, day), (codes.clone(), cell));
                return;
            }
        }
        self.count_all(codes, at_ms);
    }

    /// Takes what was counted, by name.
    fn drain(&self, mut each: impl FnMut(&str, &str, Reason, i64, Cell)) -> u64 {
        let mut all: FxHashMap<(u64, i64), Cell> = FxHashMap::default();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *lock(&shard.0));
            for (k, cell) in taken {
                all.entry(k).or_default().add(cell.count, cell.last_ms);
            }
        }
        for shard in &self.answers {
            let taken = std::mem::take(&mut *lock(&shard.0));
            for ((_, day), (codes, cell)) in taken {
                for code in codes.iter() {
                    all.entry((*code, day))
                        .or_default()
                        .add(cell.count, cell.last_ms);
                }
            }
        }
        for ((code, day), cell) in all {
            let flag = usize::try_from(code >> 24).unwrap_or(usize::MAX);
            let Some((key, variants)) = self.names.get(flag) else {
                continue;
            };
            let v = (code >> 8) & 0xFFFF;
            let variant = if v == NO_VARIANT {
                ""
            } else {
                usize::try_from(v)
                    .ok()
                    .and_then(|v| variants.get(v))
                    .map_or("", |n| &**n)
            };
            let reason = usize::try_from(code & 0xFF)
                .ok()
                .and_then(|r| REASONS.get(r))
                .copied()
                .unwrap_or(Reason::Error);
            each(key, variant, reason, day, cell);
        }
        self.unknown.swap(0, Ordering::Relaxed)
    }
}

/// Counts drained and not yet stored, as rows: per flag, and per client key.
pub type Batch = (Vec<EvaluationCount>, Vec<ClientEvaluations>);

/// Counts not yet in the store, by environment, flag, variant, reason and day.
type PendingCounts = FxHashMap<(String, String, String, Reason, i64), Cell>;

/// Since this instance started, for `/metrics`.
#[derive(Debug, Default)]
struct Totals {
    series: BTreeMap<(String, String, String, &'static str), u64>,
    overflow: u64,
    unknown: BTreeMap<String, u64>,
}

/// Every environment's counters, and what was drained from them but not yet stored.
#[derive(Debug)]
pub struct Insight {
    enabled: AtomicBool,
    live: Mutex<Vec<Arc<Tally>>>,
    /// Client keys by token id: (environment, evaluations, last).
    clients: [Shard<ClientCounts>; SHARDS],
    pending: Mutex<(PendingCounts, ClientCounts)>,
    totals: Mutex<Totals>,
    series_cap: AtomicUsize,
    /// One flush at a time (the timer's, shutdown's, a reader's).
    flushing: tokio::sync::Mutex<()>,
}

impl Default for Insight {
    fn default() -> Self {
        Insight {
            enabled: AtomicBool::new(true),
            live: Mutex::default(),
            clients: Default::default(),
            pending: Mutex::default(),
            totals: Mutex::default(),
            series_cap: AtomicUsize::new(DEFAULT_SERIES_CAP),
            flushing: tokio::sync::Mutex::new(()),
        }
    }
}

impl Insight {
    /// Whether evaluations are counted (on unless turned off, e.g. to measure what counting
    /// costs).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// At most `cap` label sets of `sluice_flag_evaluations_total`.
    pub fn set_series_cap(&self, cap: usize) {
        self.series_cap.store(cap, Ordering::Relaxed);
    }

    /// Follows a freshly installed environment's counters until they are drained for good.
    pub fn watch(&self, tally: Arc<Tally>) {
        lock(&self.live).push(tally);
    }

    /// Records that a client key evaluated at `at_ms`.
    pub fn client(&self, token_id: &str, environment: &str, evaluations: u64, at_ms: i64) {
        let mut map = lock(&self.clients[my_shard()].0);
        match map.get_mut(token_id) {
            Some((_, cell)) => cell.add(evaluations, at_ms),
            None => {
                let mut cell = Cell::default();
                cell.add(evaluations, at_ms);
                map.insert(token_id.to_owned(), (environment.to_owned(), cell));
            }
        }
    }

    /// Moves what the counters hold into the pending batch and the totals; drops the
    /// counters of environments no snapshot holds any more once they are drained.
    pub fn drain(&self) {
        let tallies: Vec<Arc<Tally>> = lock(&self.live).clone();
        let mut pending = lock(&self.pending);
        let mut totals = lock(&self.totals);
        let cap = self.series_cap.load(Ordering::Relaxed);
        let (counts, clients) = &mut *pending;
        let mut take = |t: &Tally| {
            let env = &t.environment;
            let unknown = t.drain(|flag, variant, reason, day, cell| {
                counts
                    .entry((
                        env.clone(),
                        flag.to_owned(),
                        variant.to_owned(),
                        reason,
                        day,
                    ))
                    .or_default()
                    .add(cell.count, cell.last_ms);
                let key = (
                    env.clone(),
                    flag.to_owned(),
                    variant.to_owned(),
                    reason.as_str(),
                );
                let series = totals.series.len();
                match totals.series.get_mut(&key) {
                    Some(n) => *n += cell.count,
                    None if series < cap => {
                        totals.series.insert(key, cell.count);
                    }
                    None => totals.overflow += cell.count,
                }
            });
            if unknown > 0 {
                *totals.unknown.entry(env.clone()).or_default() += unknown;
            }
        };
        for t in &tallies {
            take(t);
        }
        drop(tallies);
        // INVARIANT: a tally only this list holds belongs to no snapshot, so nothing counts
        // into it any more: drained once more (what was counted since the pass above), it is
        // done with.
        let mut live = lock(&self.live);
        live.retain(|t| {
            if Arc::strong_count(t) > 1 {
                return true;
            }
            take(t);
            false
        });
        drop(live);
        for shard in &self.clients {
            let taken = std::mem::take(&mut *lock(&shard.0));
            for (token, (env, cell)) in taken {
                clients
                    .entry(token)
                    .or_insert_with(|| (env, Cell::default()))
                    .1
                    .add(cell.count, cell.last_ms);
            }
        }
    }

    /// Drains the counters and adds the pending batch to the store in one transaction. On
    /// failure the batch is kept for the next flush.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let (rows, client_rows) = self.take_batch();
        if rows.is_empty() && client_rows.is_empty() {
            return Ok(());
        }
        if let Err(e) = store.add_evaluations(&rows, &client_rows).await {
            self.put_back(rows, client_rows);
            return Err(e);
        }
        Ok(())
    }

    /// Sends the pending batch with `send` (an edge's report to its central server), one at a
    /// time with [`Insight::flush`]; on failure the batch is kept for the next time.
    pub async fn flush_with<E, F>(&self, send: impl FnOnce(Batch) -> F) -> Result<(), E>
    where
        F: std::future::Future<Output = Result<(), (E, Batch)>>,
    {
        let _one = self.flushing.lock().await;
        let batch = self.take_batch();
        if batch.0.is_empty() && batch.1.is_empty() {
            return Ok(());
        }
        send(batch).await.map_err(|(e, (rows, clients))| {
            self.put_back(rows, clients);
            e
        })
    }

    /// Drains the counters and takes the pending batch, as rows.
    fn take_batch(&self) -> Batch {
        self.drain();
        let (counts, clients) = std::mem::take(&mut *lock(&self.pending));
        let rows: Vec<EvaluationCount> = counts
            .iter()
            .map(
                |((env, flag, variant, reason, day), cell)| EvaluationCount {
                    environment: env.clone(),
                    flag_key: flag.clone(),
                    variant: variant.clone(),
                    reason: reason.as_str().to_owned(),
                    day: *day,
                    count: i64::try_from(cell.count).unwrap_or(i64::MAX),
                    last_at: at(cell.last_ms),
                },
            )
            .collect();
        let client_rows: Vec<ClientEvaluations> = clients
            .iter()
            .map(|(token, (env, cell))| ClientEvaluations {
                token_id: token.clone(),
                environment: env.clone(),
                count: i64::try_from(cell.count).unwrap_or(i64::MAX),
                last_at: at(cell.last_ms),
            })
            .collect();
        (rows, client_rows)
    }

    /// Puts a batch that could not be stored back into the pending one.
    fn put_back(&self, rows: Vec<EvaluationCount>, clients: Vec<ClientEvaluations>) {
        let mut pending = lock(&self.pending);
        for r in rows {
            let reason = REASONS
                .iter()
                .copied()
                .find(|x| x.as_str() == r.reason)
                .unwrap_or(Reason::Error);
            pending
                .0
                .entry((r.environment, r.flag_key, r.variant, reason, r.day))
                .or_default()
                .add(
                    u64::try_from(r.count).unwrap_or(0),
                    r.last_at.timestamp_millis(),
                );
        }
        for c in clients {
            pending
                .1
                .entry(c.token_id)
                .or_insert_with(|| (c.environment, Cell::default()))
                .1
                .add(
                    u64::try_from(c.count).unwrap_or(0),
                    c.last_at.timestamp_millis(),
                );
        }
    }

    /// The Prometheus text of the evaluation counters since this instance started.
    pub fn render(&self) -> String {
        self.drain();
        let totals = lock(&self.totals);
        let cap = self.series_cap.load(Ordering::Relaxed);
        let mut out = String::with_capacity(256 + totals.series.len() * 96);
        let _ = writeln!(
            out,
            "# HELP sluice_flag_evaluations_total Flag evaluations answered over OFREP by this instance, by environment, flag, variant and reason (at most {cap} label sets; the rest are in sluice_flag_evaluations_overflow_total)."
        );
        out.push_str("# TYPE sluice_flag_evaluations_total counter\n");
        for ((env, flag, variant, reason), n) in &totals.series {
            out.push_str("sluice_flag_evaluations_total{environment=\"");
            escape(&mut out, env);
            out.push_str("\",flag=\"");
            escape(&mut out, flag);
            out.push_str("\",variant=\"");
            escape(&mut out, variant);
            let _ = writeln!(out, "\",reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP sluice_flag_evaluations_overflow_total Flag evaluations counted past the label-set cap of sluice_flag_evaluations_total.\n");
        out.push_str("# TYPE sluice_flag_evaluations_overflow_total counter\n");
        let _ = writeln!(
            out,
            "sluice_flag_evaluations_overflow_total {}",
            totals.overflow
        );
        out.push_str("# HELP sluice_flag_evaluations_unknown_total Evaluations of flag keys the environment does not have (the key is not a label).\n");
        out.push_str("# TYPE sluice_flag_evaluations_unknown_total counter\n");
        for (env, n) in &totals.unknown {
            out.push_str("sluice_flag_evaluations_unknown_total{environment=\"");
            escape(&mut out, env);
            let _ = writeln!(out, "\"}} {n}");
        }
        out
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    sluice_core::clock::from_ms(ms)
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_eval::FlagSetDef;

    fn snapshot() -> Snapshot {
        let doc = serde_json::json!({"flags": {
            "a": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "b\"q": {"state": "DISABLED", "variants": {"x": 1}, "defaultVariant": "x"}
        }});
        let def = FlagSetDef::from_value(doc).unwrap();
        Snapshot::compile(&def, 1).unwrap()
    }

    #[test]
    fn counts_are_drained_by_name_and_capped_in_the_metrics() {
        let snap = snapshot();
        let tally = Arc::new(Tally::new("prod", &snap));
        let insight = Insight::default();
        insight.watch(tally.clone());
        let ctx = sluice_eval::Context::empty();
        let count = |key: &str| {
            let e = snap.evaluate(key, &ctx, 0);
            tally.count(Tally::code(&snap, &e), 5_000);
        };
        // With a cap of one label set, the first drained takes it.
        insight.set_series_cap(1);
        count("a");
        count("a");
        insight.render();
        count("b\"q");
        count("nope");
        // A bulk answer served again twice: counted whole, spread over its flags when drained.
        let codes: Arc<[u64]> = ["a", "b\"q"]
            .iter()
            .filter_map(|k| Tally::code(&snap, &snap.evaluate(k, &ctx, 0)))
            .collect();
        tally.count_cached(&codes, 5_000);
        tally.count_cached(&codes, 5_000);
        let text = insight.render();
        assert!(text.contains(
            "sluice_flag_evaluations_total{environment=\"prod\",flag=\"a\",variant=\"on\",reason=\"STATIC\"} 4"
        ), "{text}");
        assert!(
            text.contains("sluice_flag_evaluations_overflow_total 3"),
            "{text}"
        );
        assert!(
            text.contains("sluice_flag_evaluations_unknown_total{environment=\"prod\"} 1"),
            "{text}"
        );
        // The snapshot is gone: the tally is drained once more, then dropped.
        tally.count(Tally::code(&snap, &snap.evaluate("a", &ctx, 0)), 6_000);
        drop(tally);
        insight.drain();
        assert!(lock(&insight.live).is_empty());
        let pending = lock(&insight.pending);
        let cell = pending.0[&(
            "prod".to_owned(),
            "a".to_owned(),
            "on".to_owned(),
            Reason::Static,
            0,
        )];
        assert_eq!(
            cell,
            Cell {
                count: 5,
                last_ms: 6_000
            }
        );
    }
}
