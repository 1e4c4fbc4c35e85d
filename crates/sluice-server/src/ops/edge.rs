//! What the central server does for its edges (`sluice edge`): the snapshot of an edge key's
//! environments, and the evaluation counts an edge reports, added to the same tables as this
//! server's own (see [`crate::insight`]).

use crate::app::App;
use crate::ops::{Input, OpError};
use sluice_api::edge::{
    EdgeClientKey, EdgeEnvironment, EdgeEvaluations, EdgeFlag, EdgeFlagSet, EdgeSnapshot,
};
use sluice_store::{ClientEvaluations, EvaluationCount};
use std::collections::BTreeSet;

/// The reasons an evaluation count may carry (OFREP's).
const REASONS: [&str; 6] = [
    "STATIC",
    "TARGETING_MATCH",
    "SPLIT",
    "DISABLED",
    "DEFAULT",
    "ERROR",
];

impl App {
    /// The snapshot of `environments` (an edge key's, or one of them) as the store holds them
    /// now: for each, the stored flags and layers, the policy's static context and the client
    /// keys live now whose principal the policy still declares (as [`crate::auth`] accepts them).
    pub async fn edge_snapshot(&self, environments: &[&str]) -> Result<EdgeSnapshot, OpError> {
        let now = self.now();
        let policy = self.policy();
        let mut out = Vec::with_capacity(environments.len());
        for env in environments {
            // INVARIANT: layers before definitions, as `flags::load` reads them.
            let layers = self.store.flag_layers_in(env).await?;
            let set = self.store.flag_set(env).await?;
            let clients = self
                .store
                .client_keys_in(env, now)
                .await?
                .into_iter()
                .filter(|(_, _, p)| {
                    p.source == "bootstrap" || policy.principals().any(|(n, _)| n == p.name)
                })
                .map(|(row, hash, _)| EdgeClientKey {
                    id: row.id,
                    hash,
                    expires_at: row.expires_at,
                    context: row.context,
                })
                .collect();
            out.push(EdgeEnvironment {
                environment: (*env).to_owned(),
                flags: set.map(|s| EdgeFlagSet {
                    revision: s.revision,
                    updated_at: s.updated_at,
                    updated_by: s.updated_by,
                    document: s.document,
                    flags: s
                        .flags
                        .into_iter()
                        .map(|f| EdgeFlag {
                            key: f.key,
                            revision: f.revision,
                            definition: f.definition,
                        })
                        .collect(),
                }),
                layers: layers
                    .into_iter()
                    .filter(|(e, _, _)| e == *env)
                    .map(|(_, key, body)| (key, body))
                    .collect(),
                context: policy.static_context(env).cloned().unwrap_or_default(),
                context_from_headers: policy.context_from_headers(env).clone(),
                clients,
            });
        }
        Ok(EdgeSnapshot { environments: out })
    }

    /// Adds an edge's evaluation counts. Every count must be of one of the key's
    /// `environments`, every client count of a client key of one of them, every reason an
    /// OFREP reason, every count positive; otherwise nothing is added.
    pub async fn edge_report(
        &self,
        environments: &[&str],
        report: EdgeEvaluations,
    ) -> Result<(), OpError> {
        let mine = |env: &str| environments.contains(&env);
        let mut rows = Vec::with_capacity(report.flags.len());
        for c in report.flags {
            if !mine(&c.environment) {
                return Err(OpError::Forbidden(format!(
                    "this edge key does not sync environment `{}`",
                    c.environment
                )));
            }
            if !REASONS.contains(&c.reason.as_str()) {
                return Err(OpError::invalid(
                    Input::Request,
                    format!("`{}` is not an OFREP reason", c.reason),
                ));
            }
            if c.count <= 0 {
                return Err(OpError::invalid(
                    Input::Request,
                    "an evaluation count is positive",
                ));
            }
            rows.push(EvaluationCount {
                environment: c.environment,
                flag_key: c.flag,
                variant: c.variant,
                reason: c.reason,
                day: c.day,
                count: c.count,
                last_at: c.last_at,
            });
        }
        let mut clients = Vec::with_capacity(report.clients.len());
        let mut checked = BTreeSet::new();
        for c in report.clients {
            if c.count <= 0 {
                return Err(OpError::invalid(
                    Input::Request,
                    "an evaluation count is positive",
                ));
            }
            if checked.insert(c.token_id.clone()) {
                let row = self.store.token(&c.token_id).await?;
                let ok = row.is_some_and(|t| {
                    t.kind == "client"
                        && t.environment.as_deref() == Some(c.environment.as_str())
                        && mine(&c.environment)
                });
                if !ok {
                    return Err(OpError::Forbidden(format!(
                        "`{}` is not a client key of this edge key's environments",
                        c.token_id
                    )));
                }
            }
            clients.push(ClientEvaluations {
                token_id: c.token_id,
                environment: c.environment,
                count: c.count,
                last_at: c.last_at,
            });
        }
        self.store.add_evaluations(&rows, &clients).await?;
        Ok(())
    }
}
