//! The policy file: groups, members, environments, standing permissions and entitlements,
//! declared as code (YAML) and validated completely before anything changes.

use crate::duration::Duration;
use crate::scope::{normalize, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The policy document as written by people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Principals that administer Sluice (besides the bootstrap administrator).
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentDoc>,
    #[serde(default)]
    pub permissions: Vec<PermissionDoc>,
    #[serde(default)]
    pub entitlements: Vec<Entitlement>,
    #[serde(default)]
    pub audit: AuditSettings,
    /// Attributes of principals, by principal name: what conditions read as `principal.NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// More AuthZEN `subject.type` names, each naming a principal kind (`user` or `service`),
    /// besides `user` (users) and `service_account`/`service` (service accounts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject_types: BTreeMap<String, PrincipalKind>,
    /// External subject ids (as an identity provider names them, compared exactly) → principal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subject_ids: BTreeMap<String, String>,
    /// Groups of the identity provider (as its groups claim names them, compared exactly) →
    /// the Sluice groups their members belong to while signed in through it. A person signed
    /// in through the identity provider need not be declared under `users`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idp_groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDoc {
    #[serde(default)]
    pub protected: bool,
    /// Who must agree to a proposed flag change (a change request) in this environment.
    /// Without it, proposals to the environment are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRule>,
    /// How long a change request waits for its approvals before it times out (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request_ttl: Option<Duration>,
    /// Static evaluation context: merged into the context of every flag evaluation in this
    /// environment, over the request's own values (as flagd's `--context-value`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Request headers copied into the context of every evaluation in this environment, as
    /// flagd's `--context-from-header`: header name → context key. A header's value wins over
    /// the static context and the request's own values; an absent header adds nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_from_headers: BTreeMap<String, String>,
}

impl EnvironmentDoc {
    /// How long a change request in this environment may wait for approval.
    pub fn change_request_ttl(&self) -> Duration {
        self.change_request_ttl.unwrap_or_else(default_pending_ttl)
    }
}

/// A standing permission: these subjects may always do these actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PermissionFields")]
pub struct PermissionDoc {
    /// `group:NAME`, `user:NAME` or a bare principal name.
    pub to: Vec<String>,
    #[serde(flatten)]
    pub scope: Scope,
}

/// A permission as written: its scope's fields beside `to`. Read field by field (not through
/// `flatten`, which buffers the map first), so a refused condition is reported at its own line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionFields {
    to: Vec<String>,
    resource: crate::scope::Pattern,
    actions: Vec<crate::scope::Pattern>,
    #[serde(default)]
    when: Option<crate::condition::Condition>,
}

impl From<PermissionFields> for PermissionDoc {
    fn from(f: PermissionFields) -> Self {
        PermissionDoc {
            to: f.to,
            scope: Scope {
                resource: f.resource,
                actions: f.actions,
                when: f.when,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Record allowed decisions too (denied ones are always recorded).
    #[serde(default = "yes")]
    pub record_allowed_decisions: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            record_allowed_decisions: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// What may be asked for, by whom, for how long, and who must agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub scopes: Vec<Scope>,
    /// Who may request it: `group:NAME`, `user:NAME` or a bare name; at least one principal.
    pub requesters: Vec<String>,
    pub max_duration: Duration,
    pub approval: ApprovalRule,
    #[serde(default)]
    pub auto_approve: Option<AutoApprove>,
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub reason: ReasonRule,
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    #[serde(default = "default_pending_ttl")]
    pub pending_ttl: Duration,
}

fn default_pending_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// How many distinct approvers must approve.
    #[serde(default = "one")]
    pub required: u32,
    /// Who may approve: `group:NAME`, `user:NAME` or a bare name.
    pub approvers: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApprove {
    /// The requester must be one of these.
    pub requester_in: Vec<String>,
    /// And ask for at most this long.
    pub max_duration: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonRule {
    #[default]
    Required,
    Optional,
}

/// A problem in a policy document, located by path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
    pub kind: PolicyErrorKind,
}

/// What kind of problem a [`PolicyError`] is; each has a stable code for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// Not a valid policy document: syntax, unknown names, bad values.
    Invalid,
    /// An approval rule needs more approvals than there are distinct eligible approvers.
    TooFewApprovers,
    /// An approval rule names a group with no members.
    EmptyApproverGroup,
    /// An entitlement's requesters resolve to nobody.
    NoRequesters,
    /// Every requester is an approver the rule needs, and nobody approves their own request.
    OnlySelfApproval,
    /// A condition (`when:`) is not a valid expression, or reads an unknown variable.
    InvalidCondition,
}

impl PolicyErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            PolicyErrorKind::Invalid => "invalid_policy",
            PolicyErrorKind::TooFewApprovers => "too_few_approvers",
            PolicyErrorKind::EmptyApproverGroup => "empty_approver_group",
            PolicyErrorKind::NoRequesters => "no_requesters",
            PolicyErrorKind::OnlySelfApproval => "only_self_approval",
            PolicyErrorKind::InvalidCondition => "invalid_condition",
        }
    }
}

impl PolicyError {
    /// The stable code of this kind of problem.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
    err_of(PolicyErrorKind::Invalid, path, message)
}

fn err_of(
    kind: PolicyErrorKind,
    path: impl Into<String>,
    message: impl Into<String>,
) -> PolicyError {
    PolicyError {
        path: path.into(),
        message: message.into(),
        kind,
    }
}

/// A validated policy with its lookups built.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub doc: PolicyDoc,
    /// sha256 of the source text, hex.
    pub hash: String,
    members: BTreeMap<String, BTreeSet<String>>,
    /// Who the identity provider put in which group, at their last sign-in or refresh
    /// (see [`Policy::with_idp_members`]); not part of the document, so not of its diff.
    idp: IdpMembers,
}

/// Members the identity provider gave groups (see [`Policy::with_idp_members`]).
#[derive(Debug, Clone, Default, PartialEq)]
struct IdpMembers {
    members: BTreeMap<String, BTreeSet<String>>,
    users: BTreeSet<String>,
}

impl Policy {
    /// Parses and validates a YAML policy. Nothing is applied unless this succeeds.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > 1024 * 1024 {
            return Err(err("$", "policy file is larger than 1 MiB"));
        }
        let doc: PolicyDoc = yaml_serde::from_str(text).map_err(|e| {
            let Some(l) = e.location() else {
                return err("$", e.to_string());
            };
            // The parser's message ends with the location too; say it once.
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            let message = message.replacen(&suffix, "", 1);
            if message.contains(crate::condition::REFUSED) {
                // The parser locates an error raised inside a mapping at the mapping's start;
                // the condition is its `when:` key, on that line or a later one.
                let line = text
                    .lines()
                    .enumerate()
                    .skip(l.line().saturating_sub(1))
                    .find(|(_, t)| t.contains("when:"))
                    .map_or(l.line(), |(i, _)| i + 1);
                return err_of(
                    PolicyErrorKind::InvalidCondition,
                    format!("line {line}"),
                    message,
                );
            }
            err(format!("line {} column {}", l.line(), l.column()), message)
        })?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        Self::from_doc(doc, hash)
    }

    /// An empty policy: nobody may request anything.
    pub fn empty() -> Policy {
        Policy {
            doc: PolicyDoc::default(),
            hash: String::new(),
            members: BTreeMap::new(),
            idp: IdpMembers::default(),
        }
    }

    /// This policy with the people signed in through the identity provider: each principal
    /// with the identity provider's groups it last carried, mapped through `idp_groups` to
    /// Sluice groups. An identity provider group the policy does not map grants nothing.
    pub fn with_idp_members<'a>(
        mut self,
        principals: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Policy {
        let mut idp = IdpMembers::default();
        for (name, idp_groups) in principals {
            idp.users.insert(name.to_owned());
            for target in idp_groups
                .iter()
                .filter_map(|g| self.doc.idp_groups.get(g))
                .flatten()
            {
                idp.members
                    .entry(target.clone())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        self.idp = idp;
        self
    }

    /// The Sluice groups the identity provider groups `idp_groups` map to.
    pub fn mapped_groups(&self, idp_groups: &[String]) -> BTreeSet<String> {
        idp_groups
            .iter()
            .filter_map(|g| self.doc.idp_groups.get(g))
            .flatten()
            .cloned()
            .collect()
    }

    /// Does the policy map any identity provider group (is sign-in through one meant)?
    pub fn maps_idp_groups(&self) -> bool {
        !self.doc.idp_groups.is_empty()
    }

    fn from_doc(mut doc: PolicyDoc, hash: String) -> Result<Policy, PolicyError> {
        let mut principals = BTreeSet::new();
        for (i, u) in doc
            .users
            .iter_mut()
            .chain(doc.service_accounts.iter_mut())
            .enumerate()
        {
            *u = normalize(u);
            check_name(&format!("principals[{i}]"), u)?;
            if !principals.insert(u.clone()) {
                return Err(err(
                    format!("principals[{i}]"),
                    format!("`{u}` is declared twice"),
                ));
            }
        }
        let mut members = BTreeMap::new();
        for (g, list) in &doc.groups {
            check_name(&format!("groups.{g}"), g)?;
            let mut set = BTreeSet::new();
            for (i, m) in list.iter().enumerate() {
                let m = normalize(m);
                if !principals.contains(&m) {
                    return Err(err(
                        format!("groups.{g}[{i}]"),
                        format!("`{m}` is not declared under users or service_accounts"),
                    ));
                }
                set.insert(m);
            }
            members.insert(normalize(g), set);
        }
        // Groups an `idp_groups` entry maps to: their members are not all known when the
        // policy is validated, so they are never refused as empty.
        let mut idp_fed = BTreeSet::new();
        for (idp_group, targets) in doc.idp_groups.iter_mut() {
            if idp_group.is_empty() || idp_group.len() > 256 {
                return Err(err(
                    "idp_groups",
                    "an identity provider group name must have 1 to 256 characters",
                ));
            }
            for (i, t) in targets.iter_mut().enumerate() {
                *t = normalize(t);
                if !members.contains_key(t.as_str()) {
                    return Err(err(
                        format!("idp_groups.{idp_group}[{i}]"),
                        format!("unknown group `{t}`: declare it under groups (members may be [])"),
                    ));
                }
                idp_fed.insert(t.clone());
            }
        }
        let policy_check = |path: &str, subject: &str| -> Result<(), PolicyError> {
            match parse_subject(subject) {
                SubjectRef::Group(g) if members.contains_key(&g) => Ok(()),
                SubjectRef::Group(g) => Err(err(path, format!("unknown group `{g}`"))),
                SubjectRef::Principal(p) if principals.contains(&p) => Ok(()),
                SubjectRef::Principal(p) => Err(err(path, format!("unknown principal `{p}`"))),
            }
        };
        for (i, a) in doc.admins.iter().enumerate() {
            policy_check(&format!("admins[{i}]"), a)?;
        }
        for (i, p) in doc.permissions.iter().enumerate() {
            for (j, s) in p.to.iter().enumerate() {
                policy_check(&format!("permissions[{i}].to[{j}]"), s)?;
            }
            if p.scope.actions.is_empty() {
                return Err(err(
                    format!("permissions[{i}].actions"),
                    "list at least one action",
                ));
            }
        }
        for (env, e) in &doc.environments {
            check_name(&format!("environments.{env}"), env)?;
            check_static_context(&format!("environments.{env}.context"), &e.context)?;
            check_header_mapping(
                &format!("environments.{env}.context_from_headers"),
                &e.context_from_headers,
            )?;
            if let Some(a) = &e.approval {
                let at = format!("environments.{env}.approval");
                if a.required == 0 {
                    return Err(err(format!("{at}.required"), "must be at least 1"));
                }
                if a.approvers.is_empty() {
                    return Err(err(format!("{at}.approvers"), "list at least one approver"));
                }
                for (j, s) in a.approvers.iter().enumerate() {
                    policy_check(&format!("{at}.approvers[{j}]"), s)?;
                }
                check_reachable(&members, &idp_fed, &at, a)?;
            } else if e.change_request_ttl.is_some() {
                return Err(err(
                    format!("environments.{env}.change_request_ttl"),
                    "has no effect without an approval rule for change requests",
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, e) in doc.entitlements.iter_mut().enumerate() {
            let at = format!("entitlements[{i}]");
            e.name = normalize(&e.name);
            check_name(&format!("{at}.name"), &e.name)?;
            if !names.insert(e.name.clone()) {
                return Err(err(
                    format!("{at}.name"),
                    format!("`{}` is declared twice", e.name),
                ));
            }
            if e.scopes.is_empty() {
                return Err(err(format!("{at}.scopes"), "list at least one scope"));
            }
            for (j, s) in e.scopes.iter().enumerate() {
                if s.actions.is_empty() {
                    return Err(err(
                        format!("{at}.scopes[{j}].actions"),
                        "list at least one action",
                    ));
                }
            }
            for (j, s) in e.requesters.iter().enumerate() {
                policy_check(&format!("{at}.requesters[{j}]"), s)?;
            }
            if e.approval.required == 0 {
                return Err(err(
                    format!("{at}.approval.required"),
                    "must be at least 1; use auto_approve for requests that need no approver",
                ));
            }
            if e.approval.approvers.is_empty() {
                return Err(err(
                    format!("{at}.approval.approvers"),
                    "list at least one approver",
                ));
            }
            for (j, s) in e.approval.approvers.iter().enumerate() {
                policy_check(&format!("{at}.approval.approvers[{j}]"), s)?;
            }
            let approvers =
                check_reachable(&members, &idp_fed, &format!("{at}.approval"), &e.approval)?;
            let requesters = resolve(&members, &e.requesters);
            // A group the identity provider fills may gain members at any sign-in.
            let open = |subjects: &[String]| {
                subjects.iter().any(
                    |s| matches!(parse_subject(s), SubjectRef::Group(g) if idp_fed.contains(&g)),
                )
            };
            if requesters.is_empty() && !open(&e.requesters) {
                return Err(err_of(
                    PolicyErrorKind::NoRequesters,
                    format!("{at}.requesters"),
                    format!(
                        "nobody may request `{}`: the requesters resolve to no principal; \
                         list a user, a service account or a group with members",
                        e.name
                    ),
                ));
            }
            if open(&e.approval.approvers) || open(&e.requesters) {
                continue;
            }
            check_not_only_self(
                &format!("{at}.approval"),
                &e.approval,
                &approvers,
                &requesters,
            )?;
            if let Some(auto) = &e.auto_approve {
                for (j, s) in auto.requester_in.iter().enumerate() {
                    policy_check(&format!("{at}.auto_approve.requester_in[{j}]"), s)?;
                }
                if auto.max_duration > e.max_duration {
                    return Err(err(
                        format!("{at}.auto_approve.max_duration"),
                        format!(
                            "is longer than the entitlement's max_duration ({})",
                            e.max_duration
                        ),
                    ));
                }
            }
            if let Some(p) = &e.ticket_pattern {
                regex::Regex::new(p).map_err(|x| {
                    err(
                        format!("{at}.ticket_pattern"),
                        format!("not a valid regular expression: {x}"),
                    )
                })?;
            }
        }
        let mut attributes = BTreeMap::new();
        for (name, attrs) in std::mem::take(&mut doc.attributes) {
            let n = normalize(&name);
            if !principals.contains(&n) {
                return Err(err(
                    format!("attributes.{name}"),
                    format!("`{n}` is not declared under users or service_accounts"),
                ));
            }
            for k in attrs.keys() {
                if k.is_empty() || ["id", "kind", "groups"].contains(&k.as_str()) {
                    return Err(err(
                        format!("attributes.{name}.{k}"),
                        "attribute names must not be empty, `id`, `kind` or `groups` \
                         (Sluice sets those itself)",
                    ));
                }
            }
            attributes.insert(n, attrs);
        }
        doc.attributes = attributes;
        for t in doc.subject_types.keys() {
            if t.is_empty() || DEFAULT_SUBJECT_TYPES.iter().any(|(d, _)| d == t) {
                return Err(err(
                    format!("subject_types.{t}"),
                    "name a subject type other than the built-in `user`, `service_account` and `service`",
                ));
            }
        }
        let mut mapped = BTreeSet::new();
        for (id, name) in doc.subject_ids.iter_mut() {
            *name = normalize(name);
            let at = format!("subject_ids.{id}");
            if id.is_empty() || id.len() > 1024 {
                return Err(err(at, "a subject id is 1 to 1024 bytes long"));
            }
            if !principals.contains(name) {
                return Err(err(
                    at,
                    format!("`{name}` is not declared under users or service_accounts"),
                ));
            }
            if !mapped.insert(name.clone()) {
                return Err(err(
                    at,
                    format!(
                        "`{name}` already has a subject id; one principal has one external id, \
                         so two external ids are never taken for the same person"
                    ),
                ));
            }
            if principals.contains(id.as_str()) && id != name {
                return Err(err(at, format!("`{id}` is the name of another principal")));
            }
        }
        Ok(Policy {
            doc,
            hash,
            members,
            idp: IdpMembers::default(),
        })
    }

    /// The principal name an AuthZEN `subject.id` stands for, compared exactly: the principal
    /// of a declared `subject_ids` entry, else the id itself (a principal's name as the policy
    /// holds it, lower case). Nothing is folded.
    pub fn principal_for_subject_id<'a>(&'a self, id: &'a str) -> &'a str {
        self.doc.subject_ids.get(id).map_or(id, String::as_str)
    }

    /// The kind of a declared principal.
    pub fn kind_of(&self, principal: &str) -> Option<PrincipalKind> {
        self.principals()
            .find(|(n, _)| *n == principal)
            .map(|(_, k)| k)
            .or_else(|| {
                self.idp
                    .users
                    .contains(principal)
                    .then_some(PrincipalKind::User)
            })
    }

    /// The attributes the policy declares for `principal`.
    pub fn attributes_of(
        &self,
        principal: &str,
    ) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.doc.attributes.get(principal)
    }

    /// Which principal kind an AuthZEN `subject.type` names: `user`, `service_account` and
    /// `service` always, and what the policy's `subject_types` adds. Compared exactly (case
    /// matters), like the standard's own type names.
    pub fn kind_for_subject_type(&self, subject_type: &str) -> Option<PrincipalKind> {
        DEFAULT_SUBJECT_TYPES
            .iter()
            .find(|(t, _)| *t == subject_type)
            .map(|(_, k)| *k)
            .or_else(|| self.doc.subject_types.get(subject_type).copied())
    }

    /// The changes from `self` to `next` that take something away — principals, entitlements,
    /// environments or an environment's protection — one line each; the ones to confirm.
    pub fn removals(&self, next: &Policy) -> Vec<String> {
        let mut out = Vec::new();
        let kept: BTreeSet<&str> = next.principals().map(|(n, _)| n).collect();
        for (name, kind) in self.principals() {
            if !kept.contains(name) {
                let what = match kind {
                    PrincipalKind::User => "user",
                    PrincipalKind::Service => "service account",
                };
                out.push(format!("- {what} {name}"));
            }
        }
        for (name, env) in &self.doc.environments {
            match next.doc.environments.get(name) {
                None => out.push(format!("- environment {name}")),
                Some(n) if env.protected && !n.protected => {
                    out.push(format!("~ environment {name}: no longer protected"))
                }
                Some(_) => {}
            }
        }
        for e in &self.doc.entitlements {
            if next.entitlement(&e.name).is_none() {
                out.push(format!("- entitlement {}", e.name));
            }
        }
        out
    }

    pub fn entitlement(&self, name: &str) -> Option<&Entitlement> {
        let name = normalize(name);
        self.doc.entitlements.iter().find(|e| e.name == name)
    }

    /// The groups `principal` belongs to.
    pub fn groups_of(&self, principal: &str) -> Vec<String> {
        let groups: BTreeSet<&String> = self
            .members
            .iter()
            .chain(&self.idp.members)
            .filter(|(_, m)| m.contains(principal))
            .map(|(g, _)| g)
            .collect();
        groups.into_iter().cloned().collect()
    }

    /// Is `principal` in `group`, as the policy declares it or the identity provider says?
    fn in_group(&self, principal: &str, group: &str) -> bool {
        let has = |m: &BTreeMap<String, BTreeSet<String>>| {
            m.get(group).is_some_and(|m| m.contains(principal))
        };
        has(&self.members) || has(&self.idp.members)
    }

    /// Is `principal` one of `subjects` (`group:NAME`, `user:NAME` or a bare name)?
    pub fn is_in(&self, principal: &str, subjects: &[String]) -> bool {
        subjects.iter().any(|s| match parse_subject(s) {
            SubjectRef::Group(g) => self.in_group(principal, &g),
            SubjectRef::Principal(p) => p == principal,
        })
    }

    pub fn is_admin(&self, principal: &str) -> bool {
        self.is_in(principal, &self.doc.admins)
    }

    /// The static evaluation context of an environment (empty when none is declared).
    pub fn static_context(
        &self,
        environment: &str,
    ) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.doc
            .environments
            .get(environment)
            .map(|e| &e.context)
            .filter(|c| !c.is_empty())
    }

    /// The request headers copied into an environment's evaluation context (header name in
    /// lower case → context key); empty when none are declared.
    pub fn context_from_headers(&self, environment: &str) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.doc
            .environments
            .get(environment)
            .map_or(&NONE, |e| &e.context_from_headers)
    }

    pub fn is_protected(&self, environment: &str) -> bool {
        self.doc
            .environments
            .get(environment)
            .is_some_and(|e| e.protected)
    }

    /// Every principal the policy declares, with its kind.
    pub fn principals(&self) -> impl Iterator<Item = (&str, PrincipalKind)> {
        self.doc
            .users
            .iter()
            .map(|u| (u.as_str(), PrincipalKind::User))
            .chain(
                self.doc
                    .service_accounts
                    .iter()
                    .map(|s| (s.as_str(), PrincipalKind::Service)),
            )
    }

    /// Does the policy declare `principal` (as a user or a service account)?
    pub fn declares(&self, principal: &str) -> bool {
        self.principals().any(|(n, _)| n == principal)
    }

    /// Standing scopes of `principal`.
    pub fn standing_scopes(&self, principal: &str) -> Vec<Scope> {
        self.doc
            .permissions
            .iter()
            .filter(|p| self.is_in(principal, &p.to))
            .map(|p| p.scope.clone())
            .collect()
    }

    /// A human summary of what changes from `self` to `next`, one line per change.
    pub fn diff(&self, next: &Policy) -> Vec<String> {
        let mut out = Vec::new();
        diff_sets(&mut out, "user", &self.doc.users, &next.doc.users);
        diff_sets(
            &mut out,
            "service account",
            &self.doc.service_accounts,
            &next.doc.service_accounts,
        );
        diff_sets(&mut out, "admin", &self.doc.admins, &next.doc.admins);
        let groups: BTreeSet<&String> = self.members.keys().chain(next.members.keys()).collect();
        for g in groups {
            match (self.members.get(g), next.members.get(g)) {
                (None, Some(_)) => out.push(format!("+ group {g}")),
                (Some(_), None) => out.push(format!("- group {g}")),
                (Some(a), Some(b)) if a != b => {
                    let added: Vec<_> = b.difference(a).map(|s| format!("+{s}")).collect();
                    let removed: Vec<_> = a.difference(b).map(|s| format!("-{s}")).collect();
                    out.push(format!(
                        "~ group {g}: {}",
                        [added, removed].concat().join(" ")
                    ));
                }
                _ => {}
            }
        }
        let envs: BTreeSet<&String> = self
            .doc
            .environments
            .keys()
            .chain(next.doc.environments.keys())
            .collect();
        for e in envs {
            match (self.doc.environments.get(e), next.doc.environments.get(e)) {
                (None, Some(n)) => out.push(format!(
                    "+ environment {e}{}",
                    if n.protected { " (protected)" } else { "" }
                )),
                (Some(_), None) => out.push(format!("- environment {e}")),
                (Some(a), Some(b)) if a != b => out.push(format!(
                    "~ environment {e}: protected={}{}",
                    b.protected,
                    if a.approval != b.approval || a.change_request_ttl != b.change_request_ttl {
                        ", change-request approval changed"
                    } else {
                        ""
                    }
                )),
                _ => {}
            }
        }
        if self.doc.permissions != next.doc.permissions {
            out.push(format!(
                "~ standing permissions: {} → {}",
                self.doc.permissions.len(),
                next.doc.permissions.len()
            ));
        }
        let ents: BTreeSet<&String> = self
            .doc
            .entitlements
            .iter()
            .chain(next.doc.entitlements.iter())
            .map(|e| &e.name)
            .collect();
        for name in ents {
            match (self.entitlement(name), next.entitlement(name)) {
                (None, Some(_)) => out.push(format!("+ entitlement {name}")),
                (Some(_), None) => out.push(format!("- entitlement {name}")),
                (Some(a), Some(b)) if a != b => out.push(format!("~ entitlement {name}")),
                _ => {}
            }
        }
        if self.doc.attributes != next.doc.attributes {
            out.push("~ principal attributes".into());
        }
        let idp: BTreeSet<&String> = self
            .doc
            .idp_groups
            .keys()
            .chain(next.doc.idp_groups.keys())
            .collect();
        for g in idp {
            match (self.doc.idp_groups.get(g), next.doc.idp_groups.get(g)) {
                (None, Some(to)) => {
                    out.push(format!("+ identity provider group {g} → {}", to.join(", ")))
                }
                (Some(_), None) => out.push(format!("- identity provider group {g}")),
                (Some(a), Some(b)) if a != b => {
                    out.push(format!("~ identity provider group {g} → {}", b.join(", ")))
                }
                _ => {}
            }
        }
        if self.doc.subject_ids != next.doc.subject_ids {
            out.push("~ subject ids".into());
        }
        if self.doc.subject_types != next.doc.subject_types {
            out.push("~ subject types".into());
        }
        if self.doc.audit != next.doc.audit {
            out.push(format!(
                "~ audit.record_allowed_decisions: {}",
                next.doc.audit.record_allowed_decisions
            ));
        }
        out
    }
}

fn diff_sets(out: &mut Vec<String>, what: &str, a: &[String], b: &[String]) {
    for x in b.iter().filter(|x| !a.contains(x)) {
        out.push(format!("+ {what} {x}"));
    }
    for x in a.iter().filter(|x| !b.contains(x)) {
        out.push(format!("- {what} {x}"));
    }
}

/// The AuthZEN subject types every policy understands.
const DEFAULT_SUBJECT_TYPES: [(&str, PrincipalKind); 3] = [
    ("user", PrincipalKind::User),
    ("service_account", PrincipalKind::Service),
    ("service", PrincipalKind::Service),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }
}

enum SubjectRef {
    Group(String),
    Principal(String),
}

fn parse_subject(s: &str) -> SubjectRef {
    let n = normalize(s);
    if let Some(g) = n.strip_prefix("group:") {
        SubjectRef::Group(g.to_owned())
    } else if let Some(u) = n.strip_prefix("user:") {
        SubjectRef::Principal(u.to_owned())
    } else {
        SubjectRef::Principal(n)
    }
}

/// The distinct principals `subjects` name (groups expanded). Names are already checked.
fn resolve(members: &BTreeMap<String, BTreeSet<String>>, subjects: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in subjects {
        match parse_subject(s) {
            SubjectRef::Group(g) => out.extend(members.get(&g).into_iter().flatten().cloned()),
            SubjectRef::Principal(p) => {
                out.insert(p);
            }
        }
    }
    out
}

/// Refuses an approval rule that can never be met: an approver group without members, or
/// fewer distinct eligible approvers than approvals required. Returns the eligible approvers.
fn check_reachable(
    members: &BTreeMap<String, BTreeSet<String>>,
    idp_fed: &BTreeSet<String>,
    at: &str,
    rule: &ApprovalRule,
) -> Result<BTreeSet<String>, PolicyError> {
    let mut open = false;
    for (j, s) in rule.approvers.iter().enumerate() {
        if let SubjectRef::Group(g) = parse_subject(s) {
            if idp_fed.contains(&g) {
                // The identity provider fills it: its size is known only at sign-in.
                open = true;
                continue;
            }
            if members.get(&g).is_none_or(BTreeSet::is_empty) {
                return Err(err_of(
                    PolicyErrorKind::EmptyApproverGroup,
                    format!("{at}.approvers[{j}]"),
                    format!("group `{g}` has no members, so nobody in it can approve"),
                ));
            }
        }
    }
    let approvers = resolve(members, &rule.approvers);
    if !open && (approvers.len() as u64) < u64::from(rule.required) {
        let names: Vec<&str> = approvers.iter().map(String::as_str).collect();
        return Err(err_of(
            PolicyErrorKind::TooFewApprovers,
            format!("{at}.required"),
            format!(
                "needs {} approvals, but only {} principal(s) may approve ({}); \
                 add approvers or lower `required`",
                rule.required,
                approvers.len(),
                names.join(", ")
            ),
        ));
    }
    Ok(approvers)
}

/// Refuses an entitlement whose every requester would need their own approval: nobody
/// approves their own request, so such a request could never be approved.
fn check_not_only_self(
    at: &str,
    rule: &ApprovalRule,
    approvers: &BTreeSet<String>,
    requesters: &BTreeSet<String>,
) -> Result<(), PolicyError> {
    let needed = u64::from(rule.required);
    let anyone_can_be_approved = requesters
        .iter()
        .any(|r| (approvers.iter().filter(|a| *a != r).count() as u64) >= needed);
    if anyone_can_be_approved {
        return Ok(());
    }
    let message = match (approvers.iter().next(), requesters.iter().next()) {
        (Some(a), Some(r)) if approvers.len() == 1 && requesters.len() == 1 && a == r => format!(
            "the only eligible approver, `{a}`, is also the only requester, and nobody \
             approves their own request; add another approver"
        ),
        _ => format!(
            "every requester is one of the {} eligible approver(s) and nobody approves their \
             own request, so no request could get {} approval(s); add approvers or lower `required`",
            approvers.len(),
            rule.required
        ),
    };
    Err(err_of(PolicyErrorKind::OnlySelfApproval, at, message))
}

/// Principal, group, entitlement and environment names: `[a-z0-9][a-z0-9._@-]*`, ≤ 128 chars.
/// A static evaluation context (an environment's or a client key's): keys are non-empty,
/// `$flagd` is the engine's own, and a `targetingKey` is a string (as in a request's context).
pub fn check_static_context(
    path: &str,
    context: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), PolicyError> {
    for (k, v) in context {
        if k.is_empty() {
            return Err(err(path, "context keys must not be empty"));
        }
        if k == "$flagd" {
            return Err(err(
                format!("{path}.$flagd"),
                "`$flagd` is set by the flag engine itself",
            ));
        }
        if k == "targetingKey" && !v.is_string() {
            return Err(err(format!("{path}.targetingKey"), "must be a string"));
        }
    }
    Ok(())
}

/// A header → context key mapping: header names are HTTP tokens (compared without case, so
/// two spellings of one header are refused), context keys as in a static context.
fn check_header_mapping(path: &str, mapping: &BTreeMap<String, String>) -> Result<(), PolicyError> {
    let mut seen = BTreeSet::new();
    for (header, key) in mapping {
        let token = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(err(
                format!("{path}.{header}"),
                "not an HTTP header name (letters, digits and `-`, e.g. `X-Region`)",
            ));
        }
        if !seen.insert(header.to_ascii_lowercase()) {
            return Err(err(
                format!("{path}.{header}"),
                "this header is listed twice (header names are compared without case)",
            ));
        }
        if key.is_empty() {
            return Err(err(
                format!("{path}.{header}"),
                "name the context key it sets",
            ));
        }
        if key == "$flagd" {
            return Err(err(
                format!("{path}.{header}"),
                "`$flagd` is set by the flag engine itself",
            ));
        }
    }
    Ok(())
}

pub fn check_name(path: &str, name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(err(
            path,
            format!(
                "`{name}` is not a valid name (lower-case letters, digits, `.`, `_`, `@`, `-`)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
