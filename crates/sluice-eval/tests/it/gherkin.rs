//! A small reader for the Gherkin subset the flagd testbed uses: Feature,
//! Background, Scenario, Scenario Outline with Examples, tags, step data tables.

#[derive(Debug, Clone)]
pub struct Step {
    pub text: String,
    pub table: Vec<Vec<String>>,
}

/// One runnable scenario (an outline is expanded per example row).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub tags: Vec<String>,
    pub steps: Vec<Step>,
}

#[derive(Default)]
struct Outline {
    name: String,
    tags: Vec<String>,
    steps: Vec<Step>,
    examples: Vec<(Vec<String>, Vec<Vec<String>>)>,
    is_outline: bool,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('|') => cur.push('|'),
                Some('n') => cur.push('\n'),
                Some('\\') => cur.push('\\'),
                Some(other) => {
                    cur.push('\\');
                    cur.push(other);
                }
                None => cur.push('\\'),
            },
            '|' => out.push(std::mem::take(&mut cur).trim().to_owned()),
            c => cur.push(c),
        }
    }
    out
}

fn expand(feature_tags: &[String], background: &[Step], o: Outline, out: &mut Vec<Scenario>) {
    let mut tags = feature_tags.to_vec();
    tags.extend(o.tags.iter().cloned());
    let mut base = background.to_vec();
    if !o.is_outline {
        base.extend(o.steps);
        out.push(Scenario {
            name: o.name,
            tags,
            steps: base,
        });
        return;
    }
    for (ex_tags, rows) in &o.examples {
        let Some((header, data)) = rows.split_first() else {
            continue;
        };
        for row in data {
            let subst = |s: &str| {
                header.iter().zip(row).fold(s.to_owned(), |acc, (h, v)| {
                    acc.replace(&format!("<{h}>"), v)
                })
            };
            let steps = base
                .iter()
                .cloned()
                .chain(o.steps.iter().map(|st| {
                    Step {
                        text: subst(&st.text),
                        table: st
                            .table
                            .iter()
                            .map(|r| r.iter().map(|c| subst(c)).collect())
                            .collect(),
                    }
                }))
                .collect();
            let mut t = tags.clone();
            t.extend(ex_tags.iter().cloned());
            out.push(Scenario {
                name: format!("{} [{}]", o.name, row.join(", ")),
                tags: t,
                steps,
            });
        }
    }
}

/// Parses a feature file into runnable scenarios.
pub fn parse(text: &str) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut feature_tags = Vec::new();
    let mut pending_tags: Vec<String> = Vec::new();
    let mut background: Vec<Step> = Vec::new();
    let mut in_background = false;
    let mut current: Option<Outline> = None;
    let mut in_examples = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') {
            pending_tags.extend(
                line.split_whitespace()
                    .filter(|t| t.starts_with('@'))
                    .map(str::to_owned),
            );
            continue;
        }
        if line.starts_with("Feature:") {
            feature_tags = std::mem::take(&mut pending_tags);
            continue;
        }
        if line.starts_with("Background:") {
            in_background = true;
            continue;
        }
        let outline =
            line.starts_with("Scenario Outline:") || line.starts_with("Scenario Template:");
        if outline || line.starts_with("Scenario:") || line.starts_with("Example:") {
            if let Some(o) = current.take() {
                expand(&feature_tags, &background, o, &mut out);
            }
            in_background = false;
            in_examples = false;
            let name = line
                .split_once(':')
                .map_or("", |(_, n)| n)
                .trim()
                .to_owned();
            current = Some(Outline {
                name,
                tags: std::mem::take(&mut pending_tags),
                is_outline: outline,
                ..Outline::default()
            });
            continue;
        }
        if line.starts_with("Examples:") || line.starts_with("Scenarios:") {
            in_examples = true;
            if let Some(o) = current.as_mut() {
                o.examples
                    .push((std::mem::take(&mut pending_tags), Vec::new()));
            }
            continue;
        }
        if line.starts_with('|') {
            let row = cells(line);
            if in_examples {
                if let Some((_, rows)) = current.as_mut().and_then(|o| o.examples.last_mut()) {
                    rows.push(row);
                }
            } else {
                let steps = if in_background {
                    &mut background
                } else {
                    match current.as_mut() {
                        Some(o) => &mut o.steps,
                        None => continue,
                    }
                };
                if let Some(st) = steps.last_mut() {
                    st.table.push(row);
                }
            }
            continue;
        }
        let keyword = ["Given ", "When ", "Then ", "And ", "But ", "* "]
            .iter()
            .find(|k| line.starts_with(**k));
        if let Some(k) = keyword {
            let step = Step {
                text: line[k.len()..].trim().to_owned(),
                table: Vec::new(),
            };
            if in_background {
                background.push(step);
            } else if let Some(o) = current.as_mut() {
                o.steps.push(step);
            }
        }
    }
    if let Some(o) = current.take() {
        expand(&feature_tags, &background, o, &mut out);
    }
    out
}

/// The double-quoted parameters of a step, with `\"` and `\\` unescaped.
pub fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => s.push(n),
                    None => break,
                },
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

#[test]
fn reads_outlines_backgrounds_and_tags() {
    let text = "@f\nFeature: x\n  Background:\n    Given an evaluator\n  @s\n  Scenario Outline: o\n    Given a \"<k>\"\n    Then t\n      | a | b |\n      | 1 | <k> |\n    @e\n    Examples: one\n      | k |\n      | x\\|y |\n      | z |\n  Scenario: plain\n    When w\n";
    let s = parse(text);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].tags, ["@f", "@s", "@e"]);
    assert_eq!(s[0].steps[0].text, "an evaluator");
    assert_eq!(s[0].steps[1].text, "a \"x|y\"");
    assert_eq!(s[0].steps[2].table[1], ["1", "x|y"]);
    assert_eq!(s[2].tags, ["@f"]);
    assert_eq!(s[2].steps.len(), 2);
    assert_eq!(quoted(r#"v "a\"b" and "c""#), ["a\"b", "c"]);
}
