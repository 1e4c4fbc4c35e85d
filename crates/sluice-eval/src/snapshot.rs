//! An immutable, compiled flag set: what every evaluation reads.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::context::Context;
use crate::def::{FlagSetDef, FlagState};
use crate::def_parse::same_kind;
use crate::error::{DefinitionError, ErrorCode};
use crate::evaluation::{Evaluation, FlagType};
use crate::rule::{CompileOptions, Compiler, Node};

mod flag;
mod wire;

pub use wire::Located;

/// How `fractional` maps users to buckets, chosen per flag by its metadata key
/// [`HashVersion::METADATA_KEY`] (`1` or `2`). A flag without the key is v2, and stays v2
/// whatever later versions add: a new algorithm is taken by marking a flag, never by
/// upgrading the server, so no flag's users are re-bucketed silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashVersion {
    /// flagd's legacy float bucketing (the testbed's `@fractional-v1`): the hash as a
    /// signed 32-bit integer, `abs(h) / i32::MAX * 100`, against cumulative percentages
    /// `weight * 100 / total`.
    V1,
    /// flagd's integer bucketing (the testbed's `@fractional-v2`):
    /// `(murmur3_x86_32(key, 0) as u64 * total) >> 32` against cumulative weights.
    #[default]
    V2,
}

impl HashVersion {
    /// The flag metadata key that records a flag's version.
    pub const METADATA_KEY: &'static str = "fractionalVersion";

    /// The version a flag's own metadata records (v2 without the key); an error names
    /// what is wrong with the value.
    pub fn of_metadata(metadata: Option<&Map<String, Value>>) -> Result<Self, String> {
        let Some(v) = metadata.and_then(|m| m.get(Self::METADATA_KEY)) else {
            return Ok(Self::default());
        };
        match v.as_i64() {
            Some(1) => Ok(Self::V1),
            Some(2) => Ok(Self::V2),
            _ => Err(format!(
                "`{}` must be 1 or 2 (the fractional bucketing version), not {v}",
                Self::METADATA_KEY
            )),
        }
    }

    /// The number the metadata key holds.
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// Extra evaluation layers run before targeting (expiring per-key targets,
/// staged rollouts). None exist yet; a compiled flag carries a list of them so
/// they slot in without reshaping evaluation.
#[derive(Debug)]
pub(crate) enum Layer {}

#[derive(Debug)]
enum Rule {
    /// No targeting: the default variant.
    Static,
    Targeting(Node),
    /// Targeting that failed to compile (lenient loading only): `PARSE_ERROR`.
    Broken(String),
}

#[derive(Debug)]
struct CompiledFlag {
    key: Box<str>,
    /// `key` as a JSON string, for `$flagd.flagKey`.
    key_value: Value,
    state: FlagState,
    /// In definition order. INVARIANT: `Node::Variant` indices point here.
    variants: Box<[(Box<str>, Value)]>,
    default_variant: Option<u32>,
    layers: Box<[Layer]>,
    rule: Rule,
    hash_version: HashVersion,
    /// Flag metadata merged over flag-set metadata.
    metadata: Map<String, Value>,
    /// Some variant's value has another type than the default variant's (only leniently
    /// loaded flags): bulk evaluation must check each answer's type (see
    /// [`Snapshot::evaluate_all`]). Without it the check cannot fail and is skipped.
    mixed_kinds: bool,
    /// A later flag of the same key (lenient merging) took the key: this one is evaluated in
    /// bulk, but [`Snapshot::flag_index`] names the other.
    shadowed: bool,
    /// Its answer's fixed JSON, for bulk answers.
    wire: wire::FlagWire,
}

/// A compiled flag set. Immutable and `Send + Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct Snapshot {
    revision: u64,
    flags: Box<[CompiledFlag]>,
    index: FxHashMap<Box<str>, u32>,
    metadata: Map<String, Value>,
    /// Borrowed by evaluations of unknown flags.
    no_metadata: Map<String, Value>,
    /// Some rule may read `$flagd.timestamp`: answers can change with time alone.
    reads_time: bool,
}

impl Snapshot {
    /// Compiles a validated definition; any rule error rejects the whole set.
    pub fn compile(def: &FlagSetDef, revision: u64) -> Result<Self, DefinitionError> {
        def.validate()?;
        Self::build(def, revision, CompileOptions::STRICT, false)
    }

    /// Compiles as flagd loads files: a flag whose targeting does not compile
    /// answers `PARSE_ERROR`, and the other flags are served.
    pub fn compile_lenient(def: &FlagSetDef, revision: u64) -> Self {
        match Self::build(def, revision, CompileOptions::LENIENT, true) {
            Ok(s) => s,
            // INVARIANT: with `isolate_errors` set, `build` never fails.
            Err(_) => Self::build_empty(revision, def.metadata().clone()),
        }
    }

    fn build_empty(revision: u64, metadata: Map<String, Value>) -> Self {
        Self {
            revision,
            flags: Box::new([]),
            index: FxHashMap::default(),
            metadata,
            no_metadata: Map::new(),
            reads_time: false,
        }
    }

    fn build(
        def: &FlagSetDef,
        revision: u64,
        opts: CompileOptions,
        isolate_errors: bool,
    ) -> Result<Self, DefinitionError> {
        let mut flags = Vec::with_capacity(def.flags.len());
        let mut index = FxHashMap::default();
        let mut reads_time = false;
        for (key, flag) in &def.flags {
            let version = HashVersion::of_metadata(flag.metadata.as_ref());
            let hash_version = version.clone().unwrap_or_default();
            let mut compiler = Compiler::new(def, key, flag, opts);
            compiler.hash_version = hash_version;
            let compiled = match version {
                Ok(_) => compiler.compile_flag_rule(),
                Err(reason) => Err(DefinitionError {
                    path: format!("$.flags.{key}.metadata.{}", HashVersion::METADATA_KEY),
                    reason,
                }),
            };
            reads_time |= compiler.reads_time;
            let rule = match compiled {
                Ok(Some(node)) => Rule::Targeting(node),
                Ok(None) => Rule::Static,
                Err(e) if isolate_errors => Rule::Broken(e.to_string()),
                Err(e) => return Err(e),
            };
            let mut metadata = def.metadata.clone();
            if let Some(m) = &flag.metadata {
                metadata.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let default_variant = flag
                .default_variant
                .name()
                .and_then(|n| flag.variants.keys().position(|k| k == n))
                .and_then(|i| u32::try_from(i).ok());
            let Ok(pos) = u32::try_from(flags.len()) else {
                return Err(DefinitionError {
                    path: "$.flags".to_owned(),
                    reason: "too many flags".to_owned(),
                });
            };
            let variants: Box<[(Box<str>, Value)]> = flag
                .variants
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.clone()))
                .collect();
            let mixed_kinds = default_variant
                .and_then(|i| variants.get(i as usize))
                .is_some_and(|(_, d)| variants.iter().any(|(_, v)| !same_kind(v, d)));
            // A later duplicate key (only possible through lenient merging) wins.
            index.insert(key.as_str().into(), pos);
            let wire = wire::FlagWire::new(key, &variants, &metadata);
            flags.push(CompiledFlag {
                key: key.as_str().into(),
                key_value: Value::String(key.clone()),
                state: flag.state,
                variants,
                default_variant,
                layers: Box::new([]),
                rule,
                hash_version,
                metadata,
                mixed_kinds,
                shadowed: false,
                wire,
            });
        }
        for (at, f) in flags.iter_mut().enumerate() {
            f.shadowed = index.get(&f.key).is_none_or(|&i| i as usize != at);
        }
        Ok(Self {
            revision,
            flags: flags.into(),
            index,
            metadata: def.metadata.clone(),
            no_metadata: Map::new(),
            reads_time,
        })
    }

    /// Whether some rule may read `$flagd.timestamp`, so that an answer can change with time
    /// alone (a cache of answers must then expire with the second).
    pub fn reads_time(&self) -> bool {
        self.reads_time
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// This snapshot, recorded at `revision`: for a compile made before its revision was
    /// known (an import validates by compiling, then stores, then serves that compile).
    pub fn at_revision(mut self, revision: u64) -> Self {
        self.revision = revision;
        self
    }

    /// Flag keys in definition order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| &*f.key)
    }

    /// Flag-set metadata.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The bucketing algorithm a flag's `fractional` uses.
    pub fn hash_version(&self, key: &str) -> Option<HashVersion> {
        self.get(key).map(|f| f.hash_version)
    }

    /// Why a flag fails to compile, for flags loaded leniently.
    pub fn broken_flags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.flags.iter().filter_map(|f| match &f.rule {
            Rule::Broken(why) => Some((&*f.key, why.as_str())),
            _ => None,
        })
    }

    /// A flag's position in definition order: a small id that stays the same for this
    /// snapshot's life (evaluation counters key on it rather than on the key's text).
    pub fn flag_index(&self, key: &str) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// The position of `variant` among the variants of the flag at `index`.
    pub fn variant_index(&self, index: u32, variant: &str) -> Option<u16> {
        let flag = self.flags.get(index as usize)?;
        let i = flag
            .variants
            .iter()
            .position(|(name, _)| &**name == variant)?;
        u16::try_from(i).ok()
    }

    /// Each flag's key and variant names, in definition order (the positions
    /// [`Snapshot::flag_index`] and [`Snapshot::variant_index`] give).
    pub fn flag_names(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
        self.flags
            .iter()
            .map(|f| (&*f.key, f.variants.iter().map(|(name, _)| &**name)))
    }

    fn get(&self, key: &str) -> Option<&CompiledFlag> {
        let i = *self.index.get(key)?;
        self.flags.get(i as usize)
    }

    /// Evaluates one flag. `now_unix` is `$flagd.timestamp` (seconds).
    pub fn evaluate<'a>(&'a self, key: &'a str, ctx: &Context, now_unix: i64) -> Evaluation<'a> {
        match self.get(key) {
            Some(flag) => flag.evaluate(ctx, now_unix),
            None => Evaluation::failed(
                key,
                &self.no_metadata,
                ErrorCode::FlagNotFound,
                "flag not found",
            ),
        }
    }

    /// [`Snapshot::evaluate`] for a typed resolver: a value of another type is `TYPE_MISMATCH`.
    pub fn evaluate_typed<'a>(
        &'a self,
        key: &'a str,
        ctx: &Context,
        now_unix: i64,
        ty: FlagType,
    ) -> Evaluation<'a> {
        self.evaluate(key, ctx, now_unix).expect_type(ty)
    }

    /// Evaluates every flag, in definition order, each as the type of its default variant:
    /// as flagd's bulk evaluation (`ResolveAllValues` resolves each flag as that type), a
    /// variant of another type is an error, `GENERAL` as flagd's OFREP service writes its
    /// `TYPE_MISMATCH`. Only leniently loaded flags can have variants of mixed types.
    pub fn evaluate_all<'a>(&'a self, ctx: &Context, now_unix: i64) -> Vec<Evaluation<'a>> {
        self.flags
            .iter()
            .map(|f| {
                let mut e = f.evaluate(ctx, now_unix);
                // INVARIANT: an evaluation's value is one of its flag's variants, so without
                // variants of mixed types it has the default's type.
                if f.mixed_kinds {
                    f.as_default_type(&mut e);
                }
                e
            })
            .collect()
    }
}
