//! The answer of one evaluation.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ErrorCode;

/// Why an evaluation answered as it did (OpenFeature reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no targeting: its default variant.
    Static,
    /// Targeting chose the variant.
    TargetingMatch,
    /// Targeting chose the variant through `fractional`.
    Split,
    /// The flag is disabled: no value, the caller uses its code default.
    Disabled,
    /// Targeting chose nothing: the default variant, or no value if the flag has none.
    Default,
    /// See `Evaluation::error`.
    Error,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
            Self::Default => "DEFAULT",
            Self::Error => "ERROR",
        }
    }
}

/// The result of evaluating one flag.
///
/// Shaped for speed: everything is borrowed from the [`crate::Snapshot`]
/// (values, variant names, pre-merged metadata, the reason a flag failed to
/// compile) or from the caller (`key`), so a successful evaluation allocates
/// nothing. Only errors found while evaluating carry an owned message. Use
/// [`crate::ofrep`] to turn it into wire JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'a> {
    pub key: &'a str,
    /// `None` when the caller must use its code default (disabled flag, no
    /// default variant, or an error).
    pub value: Option<&'a Value>,
    pub variant: Option<&'a str>,
    pub reason: Reason,
    /// Flag metadata merged over flag-set metadata.
    pub metadata: &'a Map<String, Value>,
    pub error: Option<(ErrorCode, Cow<'a, str>)>,
}

/// The value type a typed OpenFeature resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl FlagType {
    /// Whether `v` can be returned to a resolver of this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            Self::Boolean => v.is_boolean(),
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Float => v.is_number(),
            Self::Object => v.is_object() || v.is_array(),
        }
    }
}

impl<'a> Evaluation<'a> {
    pub(crate) fn failed(
        key: &'a str,
        metadata: &'a Map<String, Value>,
        code: ErrorCode,
        message: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self {
            key,
            value: None,
            variant: None,
            reason: Reason::Error,
            metadata,
            error: Some((code, message.into())),
        }
    }

    /// Turns a value of the wrong type into `TYPE_MISMATCH` (for typed resolvers).
    pub fn expect_type(mut self, ty: FlagType) -> Self {
        if let Some(v) = self.value {
            if !ty.accepts(v) {
                self.value = None;
                self.variant = None;
                self.reason = Reason::Error;
                self.error = Some((
                    ErrorCode::TypeMismatch,
                    Cow::Owned(format!("flag value is not of type {ty:?}")),
                ));
            }
        }
        self
    }
}
