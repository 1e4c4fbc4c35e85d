//! Compiled flag snapshots per environment, and the change feed SSE subscribers listen to.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_eval::layers::{CompiledLayers, FlagLayers, LayerHit};
use sluice_eval::stored;
use sluice_eval::{Context, Evaluation, Reason, Snapshot};
use sluice_store::{Store, StoreError, StoredFlagSet};
use std::collections::HashMap;
use std::sync::Arc;

/// One environment's compiled flags, with Sluice's layers (expiring targets, staged rollouts).
#[derive(Debug)]
pub struct EnvFlags {
    pub environment: String,
    pub revision: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub snapshot: Snapshot,
    /// Layers of the flags that have any.
    pub layers: HashMap<String, CompiledLayers>,
    /// Variants of those flags, to answer a layer hit.
    variants: HashMap<String, serde_json::Map<String, Value>>,
    /// Every moment at which some answer in this environment may change, sorted.
    boundaries: Vec<i64>,
    /// Bulk answers already rendered (see [`AnswerCache`]).
    pub answers: AnswerCache,
    /// Canonical context digests by request body (see [`ContextMemo`]).
    pub contexts: ContextMemo,
    /// Evaluation counters (see [`crate::insight`]).
    pub tally: Arc<crate::insight::Tally>,
}

/// The canonical digest of the context of request bodies seen before, keyed by a keyed 128-bit
/// hash of the body bytes ([`crate::keyed::KeyedHash`]: nobody can aim one body at another's
/// entry). A client polling with the same body — the usual OFREP web client, with
/// `If-None-Match` — gets its ETag without its context being parsed, canonicalised and hashed
/// again. Only bodies that parsed are kept; bounded, emptied when full; it lives and dies with
/// one [`EnvFlags`].
#[derive(Debug, Default)]
pub struct ContextMemo {
    keys: crate::keyed::KeyedHash,
    /// Keys are already keyed hashes: a fast hash of them is safe.
    map: std::sync::RwLock<rustc_hash::FxHashMap<u128, [u8; 32]>>,
}

/// Request bodies remembered per environment (~80 bytes each).
const CONTEXT_MEMO_ENTRIES: usize = 65_536;

impl ContextMemo {
    pub fn key(&self, body: &[u8]) -> u128 {
        self.keys.of(body)
    }

    pub fn get(&self, key: u128) -> Option<[u8; 32]> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key).copied()
    }

    pub fn put(&self, key: u128, digest: [u8; 32]) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CONTEXT_MEMO_ENTRIES {
            map.clear();
        }
        map.insert(key, digest);
    }
}

/// Rendered bulk answers by ETag (keyed by the tag's whole digest). The tag covers everything an answer depends on but the
/// revision — the layer epoch, the current second when some rule reads the time, and the
/// context — and the cache lives and dies with one [`EnvFlags`], that is with one revision.
/// So a hit is the answer evaluation would give, without evaluating: what many clients
/// sharing a context (anonymous visitors, one region's users) or polling without
/// `If-None-Match` get. Bounded in bytes; emptied when full.
#[derive(Debug, Default)]
pub struct AnswerCache {
    /// Keys are SHA-256 digests: a fast hash of them is safe.
    inner: std::sync::RwLock<(rustc_hash::FxHashMap<[u8; 32], CachedAnswer>, usize)>,
}

/// A rendered bulk answer and what it answered, flag by flag, as evaluation counters count
/// it (see [`crate::insight::Tally::code`]): a cached answer is counted like a fresh one.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub body: axum::body::Bytes,
    pub codes: Arc<[u64]>,
}

/// Bytes of rendered answers kept per environment.
const ANSWER_CACHE_BYTES: usize = 8 << 20;

impl AnswerCache {
    /// `key`: the whole SHA-256 digest behind the ETag.
    pub fn get(&self, key: &[u8; 32]) -> Option<CachedAnswer> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.0.get(key).cloned()
    }

    pub fn put(&self, key: [u8; 32], answer: CachedAnswer) {
        let size = answer.body.len() + answer.codes.len() * 8;
        if size > ANSWER_CACHE_BYTES / 16 {
            // An environment this large would churn the cache; evaluate each time.
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.1 + size > ANSWER_CACHE_BYTES {
            inner.0.clear();
            inner.1 = 0;
        }
        inner.1 += size;
        if let Some(old) = inner.0.insert(key, answer) {
            inner.1 -= old.body.len() + old.codes.len() * 8;
        }
    }
}

impl EnvFlags {
    /// Evaluates one flag at `now`: layers first (unless the flag is off or broken), then the
    /// flag's own targeting.
    pub fn evaluate<'a>(
        &'a self,
        key: &'a str,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'a> {
        let e = self.snapshot.evaluate(key, ctx, now.timestamp());
        self.layer(e, ctx, now)
    }

    pub fn evaluate_all<'a>(&'a self, ctx: &Context, now: DateTime<Utc>) -> Vec<Evaluation<'a>> {
        let all = self.snapshot.evaluate_all(ctx, now.timestamp());
        if self.layers.is_empty() {
            return all;
        }
        all.into_iter().map(|e| self.layer(e, ctx, now)).collect()
    }

    fn layer<'a>(
        &'a self,
        mut e: Evaluation<'a>,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Evaluation<'a> {
        let Some(layers) = self.layers.get(e.key) else {
            return e;
        };
        if e.error.is_some() || e.reason == Reason::Disabled {
            return e;
        }
        let hit = layers.hit(e.key, ctx.targeting_key(), now.timestamp_millis());
        let (variant, reason) = match hit {
            Some(LayerHit::Target { variant }) => (variant, Reason::TargetingMatch),
            Some(LayerHit::Rollout { variant }) => (variant, Reason::Split),
            None => return e,
        };
        if let Some(value) = self.variants.get(e.key).and_then(|m| m.get(variant)) {
            e.value = Some(value);
            e.variant = Some(variant);
            e.reason = reason;
        }
        e
    }

    /// How many change moments have passed: part of the bulk ETag, so a cached answer that
    /// depended on a target or a rollout step is never served after it changes.
    pub fn epoch(&self, now: DateTime<Utc>) -> usize {
        self.boundaries
            .partition_point(|b| *b <= now.timestamp_millis())
    }

    /// The next moment at which some answer may change.
    pub fn next_boundary(&self, now: DateTime<Utc>) -> Option<i64> {
        self.boundaries.get(self.epoch(now)).copied()
    }
}

/// Every environment's compiled flags, swapped whole on change.
#[derive(Debug, Default)]
pub struct FlagSnapshots {
    /// Environment names are the administrators' (client keys name one), so a fast hash is safe.
    pub envs: rustc_hash::FxHashMap<String, Arc<EnvFlags>>,
}

/// Sent to SSE subscribers when an environment's flags change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagEvent {
    pub environment: String,
    pub revision: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Compiles a stored set as it was imported (see [`stored::compile_stored`]), saying so loudly
/// when it no longer compiles that way. Consumes the set: its definitions move into the
/// compiler.
fn compile_stored(set: StoredFlagSet, revision: u64) -> Snapshot {
    let env = set.environment.clone();
    let c = stored::compile_stored(set.into_document(), revision);
    if let Some(e) = &c.fallback {
        if c.lenient {
            tracing::error!(environment = %env, error = %e, "stored flags of {env} do not parse: {e}");
        } else {
            tracing::error!(environment = %env, error = %e, "stored flags of {env} do not compile: {e}");
        }
    }
    c.snapshot
}

/// One environment's compiled flags from its stored set, which it consumes (an edge compiles
/// what it syncs through here too, so both answer alike).
pub fn compile(set: StoredFlagSet, layers: &[(String, String, Value)]) -> EnvFlags {
    let (environment, revision, updated_at) =
        (set.environment.clone(), set.revision, set.updated_at);
    let layered = Layered::compile(&environment, layers, |key| {
        let f = set.flags.iter().find(|f| f.key == key)?;
        f.definition.get("variants")?.as_object().cloned()
    });
    // Lenient imports compile as flagd loads files (see [`compile_stored`]).
    let snapshot = compile_stored(set, u64::try_from(revision).unwrap_or(0));
    layered.into_env(environment, revision, updated_at, snapshot)
}

/// An environment's layers, compiled, with what answering a layer hit needs.
pub struct Layered {
    layers: HashMap<String, CompiledLayers>,
    variants: HashMap<String, serde_json::Map<String, Value>>,
    boundaries: Vec<i64>,
}

impl Layered {
    /// Compiles the layers of `environment`'s flags; `variants` gives a flag's variants.
    pub fn compile(
        environment: &str,
        layers: &[(String, String, Value)],
        variants: impl Fn(&str) -> Option<serde_json::Map<String, Value>>,
    ) -> Layered {
        let mut compiled = HashMap::new();
        let mut by_key = HashMap::new();
        let mut boundaries = Vec::new();
        for (env, key, body) in layers {
            if env != environment {
                continue;
            }
            let Ok(stored) = serde_json::from_value::<FlagLayers>(body.clone()) else {
                tracing::error!(environment = %env, flag = %key, "stored layers of {key} are not valid; ignored");
                continue;
            };
            let c = CompiledLayers::compile(&stored);
            if c.is_empty() {
                continue;
            }
            if let Some(v) = variants(key) {
                by_key.insert(key.clone(), v);
            }
            boundaries.extend(c.boundaries().iter().copied());
            compiled.insert(key.clone(), c);
        }
        boundaries.sort_unstable();
        boundaries.dedup();
        Layered {
            layers: compiled,
            variants: by_key,
            boundaries,
        }
    }

    /// The environment's compiled flags: `snapshot` with these layers over it.
    pub fn into_env(
        self,
        environment: String,
        revision: i64,
        updated_at: DateTime<Utc>,
        snapshot: Snapshot,
    ) -> EnvFlags {
        let tally = Arc::new(crate::insight::Tally::new(&environment, &snapshot));
        EnvFlags {
            tally,
            environment,
            revision,
            updated_at,
            snapshot,
            layers: self.layers,
            variants: self.variants,
            boundaries: self.boundaries,
            answers: AnswerCache::default(),
            contexts: ContextMemo::default(),
        }
    }
}

pub async fn load(store: &Store) -> Result<FlagSnapshots, StoreError> {
    // INVARIANT: layers before definitions. The two reads are not one view, and a completing
    // rollout retires its layer and makes its variant the default in one commit; read in this
    // order, a commit landing between them gives the old layer (100%: everyone gets the
    // variant) with the new definition (the variant is the default) — the same answers —
    // never the old definition without the layer.
    let layers = store.flag_layers().await?;
    let sets = store.flag_sets().await?;
    Ok(FlagSnapshots {
        envs: sets
            .into_iter()
            .map(|s| (s.environment.clone(), Arc::new(compile(s, &layers))))
            .collect(),
    })
}

/// One environment's compiled flags, reading that environment's rows only.
pub async fn load_env(store: &Store, environment: &str) -> Result<Option<EnvFlags>, StoreError> {
    // INVARIANT: layers before definitions, as in [`load`].
    let layers = store.flag_layers_in(environment).await?;
    let set = store.flag_set(environment).await?;
    Ok(set.map(|s| compile(s, &layers)))
}

/// Recompiles the environments whose stored revision is not `in_hand` — neither installed nor
/// about to be by the writer that stored it — and only those: a change to one environment
/// reads and compiles that environment. Returns the recompiled environments. (Environments are
/// never deleted, so none is dropped.) `in_hand` is asked after the revisions are read.
pub async fn changed(
    store: &Store,
    in_hand: impl Fn(&str, i64) -> bool,
) -> Result<Vec<Arc<EnvFlags>>, StoreError> {
    let mut fresh = Vec::new();
    for (env, revision) in store.flag_revisions().await? {
        if in_hand(&env, revision) {
            continue;
        }
        if let Some(f) = load_env(store, &env).await? {
            fresh.push(Arc::new(f));
        }
    }
    Ok(fresh)
}

impl FlagSnapshots {
    /// These snapshots with `fresh` swapped in, each only over an older revision of its
    /// environment: two refreshes finishing out of order never put an older compile back.
    pub fn with(&self, fresh: &[Arc<EnvFlags>]) -> FlagSnapshots {
        let mut envs = self.envs.clone();
        for f in fresh {
            if envs
                .get(&f.environment)
                .is_none_or(|old| old.revision < f.revision)
            {
                envs.insert(f.environment.clone(), f.clone());
            }
        }
        FlagSnapshots { envs }
    }
}
