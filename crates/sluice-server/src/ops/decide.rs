use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Input, OpError};
use serde_json::{json, Value};
use sluice_audit::NewEntry;
use sluice_core::condition::Facts;
use sluice_core::decision::Decision;
use sluice_core::scope::MAX_NAME_BYTES;

/// One question: may `subject` do `action` on `resource` now?
#[derive(Debug, Clone)]
pub struct Question {
    pub subject: String,
    pub action: String,
    pub resource: String,
    /// What the question says besides the names, which conditions read (`Value::Null` when
    /// absent): AuthZEN's `subject.type` is checked against the principal's kind.
    pub subject_type: Option<String>,
    pub subject_properties: Value,
    pub resource_properties: Value,
    pub action_properties: Value,
    pub context: Value,
}

impl Question {
    /// A question by names alone.
    pub fn names(subject: &str, action: &str, resource: &str) -> Question {
        Question {
            subject: subject.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            subject_type: None,
            subject_properties: Value::Null,
            resource_properties: Value::Null,
            action_properties: Value::Null,
            context: Value::Null,
        }
    }

    /// What the question says besides the names, as conditions read it.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            // A question with a subject type is an AuthZEN one: its subject id is compared exactly.
            exact_subject: self.subject_type.is_some(),
            subject_type: self.subject_type.as_deref(),
            subject_properties: Some(&self.subject_properties),
            resource_properties: Some(&self.resource_properties),
            action_properties: Some(&self.action_properties),
            context: Some(&self.context),
        }
    }
}

impl Question {
    /// Refuses names longer than [`MAX_NAME_BYTES`]: a question is answered in time bounded by
    /// the policy, never by what the caller sends.
    pub fn check_lengths(&self) -> Result<(), OpError> {
        for (what, name) in [
            ("subject", &self.subject),
            ("action", &self.action),
            ("resource", &self.resource),
        ] {
            if name.len() > MAX_NAME_BYTES {
                return Err(OpError::invalid(
                    Input::NameLength,
                    format!(
                        "the {what} name is {} bytes long; names may be at most {MAX_NAME_BYTES} bytes",
                        name.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl App {
    /// Answers questions from the current snapshot and records them in the audit trail (denies
    /// always, allows when the policy says so) in one transaction. If the record cannot be
    /// written, no answer is given: the caller gets an error, never an unaudited allow.
    pub async fn decide(
        &self,
        caller: &Caller,
        questions: &[Question],
    ) -> Result<Vec<Decision>, OpError> {
        for q in questions {
            q.check_lengths()?;
            self.may_ask_about(caller, &q.subject)?;
        }
        let snap = self.access.load();
        let now = self.now();
        let decisions: Vec<Decision> = questions
            .iter()
            .map(|q| snap.decide_with_facts(&q.subject, &q.action, &q.resource, now, &q.facts()))
            .collect();
        let record_allows = snap.policy().doc.audit.record_allowed_decisions;
        let to_record: Vec<_> = questions
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| !d.allowed || record_allows)
            .collect();
        if !to_record.is_empty() {
            let mut tx = self.store.begin().await?;
            for (q, d) in to_record {
                let action = if d.allowed {
                    "decision.allow"
                } else {
                    "decision.deny"
                };
                let entry = NewEntry::new(&caller.name, action)
                    .resource(&q.resource)
                    .details(json!({"subject": q.subject, "action": q.action, "reason": d.reason}));
                tx.audit(now, entry).await?;
            }
            tx.commit().await?;
        }
        crate::metrics::decisions(&decisions);
        Ok(decisions)
    }
}

/// One page of a subject search.
#[derive(Debug, Clone)]
pub struct SubjectPage {
    /// The subject ids allowed, in byte order.
    pub ids: Vec<String>,
    /// Where the next page starts, when there is one.
    pub next: Option<usize>,
}

impl App {
    /// AuthZEN subject search: which subject ids of `subject_type` may do the question's action
    /// on its resource now? Every id the policy knows — each principal's name and each declared
    /// `subject_ids` entry — is decided as an evaluation would decide it (exact ids, the type
    /// checked, conditions evaluated), so the answer is the same as asking one by one. The ids
    /// are sorted; `start` is an offset into the allowed ones. A search is not a decision and
    /// is not recorded in the audit trail.
    pub fn search_subjects(
        &self,
        subject_type: &str,
        q: &Question,
        start: usize,
        limit: usize,
    ) -> Result<SubjectPage, OpError> {
        q.check_lengths()?;
        let snap = self.access.load();
        let now = self.now();
        let policy = snap.policy();
        let candidates: std::collections::BTreeSet<&str> = policy
            .principals()
            .map(|(n, _)| n)
            .chain(policy.doc.subject_ids.keys().map(String::as_str))
            .collect();
        let facts = Facts {
            exact_subject: true,
            subject_type: Some(subject_type),
            ..q.facts()
        };
        let mut allowed = candidates.into_iter().filter(|id| {
            snap.decide_with_facts(id, &q.action, &q.resource, now, &facts)
                .allowed
        });
        let ids: Vec<String> = allowed
            .by_ref()
            .skip(start)
            .take(limit)
            .map(str::to_owned)
            .collect();
        let next = allowed.next().map(|_| start + ids.len());
        Ok(SubjectPage { ids, next })
    }
}
