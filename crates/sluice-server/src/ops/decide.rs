use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Input, OpError};
use serde_json::{json, Value};
use sluice_audit::NewEntry;
use sluice_core::condition::Facts;
use sluice_core::decision::Decision;
use sluice_core::explain::Explanation;
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
    /// Answer with an [`Explanation`] too (AuthZEN `context.sluice_explain`).
    pub explain: bool,
}

/// A decision, with its explanation when the question asked for one.
#[derive(Debug, Clone)]
pub struct Answer {
    pub decision: Decision,
    pub explanation: Option<Explanation>,
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
            explain: false,
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
    /// Answers questions from the current snapshot, explaining those that ask for it, and
    /// records them in the audit trail (denies always, allows when the policy says so) in one
    /// transaction, shared with concurrent callers' decisions (`Store::record`). If the
    /// record cannot be written, no answer is given: the caller gets an error, never an
    /// unaudited allow.
    pub async fn decide(
        &self,
        caller: &Caller,
        questions: &[Question],
    ) -> Result<Vec<Answer>, OpError> {
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
        let entries: Vec<NewEntry> = to_record
            .into_iter()
            .map(|(q, d)| {
                let action = if d.allowed {
                    "decision.allow"
                } else {
                    "decision.deny"
                };
                NewEntry::new(&caller.name, action)
                    .resource(&q.resource)
                    .details(json!({"subject": q.subject, "action": q.action, "reason": d.reason}))
            })
            .collect();
        // Shared with concurrent callers' decisions (one transaction per group); returns once
        // durable.
        self.store.record(now, entries).await?;
        crate::metrics::decisions(&decisions);
        Ok(questions
            .iter()
            .zip(decisions)
            .map(|(q, decision)| Answer {
                explanation: q.explain.then(|| {
                    snap.explain(
                        &decision,
                        &q.subject,
                        &q.action,
                        &q.resource,
                        q.subject_type.is_some(),
                    )
                }),
                decision,
            })
            .collect())
    }
}
