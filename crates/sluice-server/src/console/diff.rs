//! A flag change's before and after as a readable diff: both definitions pretty-printed,
//! compared line by line (`similar`, the diff `insta` uses), with three lines of context.
//! Each line carries its sign as text (`-`, `+`), so it reads without colour.

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// One line of a diff.
pub struct DiffLine {
    /// `del`, `ins`, `same` or `gap` (lines left out between two hunks).
    pub tag: &'static str,
    /// The line with its sign: `- "state": "ENABLED",`.
    pub text: String,
}

fn pretty(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The diff of an entry's `before` and `after`, if its details hold both keys (flag
/// changes, creations and deletions do); none otherwise.
pub fn of_details(details: &Value) -> Vec<DiffLine> {
    let (Some(before), Some(after)) = (details.get("before"), details.get("after")) else {
        return Vec::new();
    };
    let (old, new) = (pretty(before), pretty(after));
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push(DiffLine {
                tag: "gap",
                text: "  …".into(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let (tag, sign) = match change.tag() {
                    ChangeTag::Delete => ("del", '-'),
                    ChangeTag::Insert => ("ins", '+'),
                    ChangeTag::Equal => ("same", ' '),
                };
                out.push(DiffLine {
                    tag,
                    text: format!("{sign} {}", change.value().trim_end_matches('\n')),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_toggle_shows_the_state_line_removed_and_added() {
        let d = json!({
            "before": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
            "after": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
        });
        let lines = of_details(&d);
        let changed: Vec<(&str, &str)> = lines
            .iter()
            .filter(|l| l.tag != "same")
            .map(|l| (l.tag, l.text.as_str()))
            .collect();
        assert_eq!(
            changed,
            [
                ("del", r#"-   "state": "ENABLED","#),
                ("ins", r#"+   "state": "DISABLED","#)
            ]
        );
    }

    #[test]
    fn a_creation_is_all_added_and_other_entries_have_no_diff() {
        let lines = of_details(&json!({"before": null, "after": {"state": "ENABLED"}}));
        assert!(lines.iter().all(|l| l.tag == "ins"), "only additions");
        assert!(of_details(&json!({"grant": "req-1"})).is_empty());
    }
}
