//! `sluice apply`: validate, show the diff, ask before taking anything away, apply.

use crate::cli::{Output, Remote};
use crate::client::client;
use crate::output::emit;
use anyhow::{bail, Context};
use reqwest::Method;
use sluice_api::policy::{ApplyPolicy, PolicyApplied};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

fn print_diff(v: &PolicyApplied) {
    if v.diff.is_empty() {
        outln!("no changes");
    }
    for d in &v.diff {
        outln!("{d}");
    }
}

/// Asks on the terminal whether to go on; `false` for anything but yes.
fn confirm(removals: &[String]) -> anyhow::Result<bool> {
    let mut err = std::io::stderr();
    writeln!(
        err,
        "\nThis change takes away:\n  {}\nPrincipals removed lose their grants and tokens; an environment no longer protected \
         lets flag changes through without a grant.",
        removals.join("\n  ")
    )?;
    write!(err, "Apply it? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub async fn apply(file: &Path, dry_run: bool, yes: bool, r: Remote) -> anyhow::Result<()> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let c = client(&r);
    // Always look first: the diff is what a person confirms, against the policy it was
    // computed from (`base_hash`), so a policy changed in between is refused, not overwritten.
    let preview: PolicyApplied = c
        .send(
            Method::POST,
            "/v1/policy",
            Some(&ApplyPolicy {
                source: source.clone(),
                dry_run: true,
                base_hash: None,
            }),
        )
        .await?;
    if dry_run {
        return emit(r.output, &preview, |v| {
            print_diff(v);
            outln!("dry run: nothing applied");
        });
    }
    let removals = &preview.removals;
    if !removals.is_empty() && !yes {
        if !std::io::stdin().is_terminal() {
            if r.output == Output::Table {
                print_diff(&preview);
            }
            bail!(
                "nothing applied: this policy takes away {} ({}), and there is no terminal to \
                 confirm it on; check the diff, then run again with --yes",
                removals.len(),
                removals.join("; ")
            );
        }
        print_diff(&preview);
        if !confirm(removals)? {
            bail!("nothing applied");
        }
    }
    let v: PolicyApplied = c
        .send(
            Method::POST,
            "/v1/policy",
            Some(&ApplyPolicy {
                source,
                dry_run: false,
                base_hash: Some(preview.base_hash.clone()),
            }),
        )
        .await?;
    emit(r.output, &v, |v| {
        print_diff(v);
        match v.version {
            Some(n) => outln!("applied policy version {n} (sha256 {})", v.hash),
            None => outln!("dry run: nothing applied"),
        }
    })
}
