use super::*;
use chrono::TimeZone;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

const GROUPS: [String; 0] = [];

/// Evaluates `source` for alice on `todo:t1`, with these properties and context.
fn eval(
    source: &str,
    subject: serde_json::Value,
    resource: serde_json::Value,
    context: serde_json::Value,
) -> Result<bool, String> {
    let c = Condition::compile(source).map_err(|e| format!("compile: {e}"))?;
    let attrs = json!({"department": "payments", "roles": ["editor"]});
    let principal = PrincipalFacts {
        id: "alice",
        kind: "user",
        groups: &GROUPS,
        attributes: attrs.as_object(),
    };
    let action = json!({"method": "PUT"});
    let facts = Facts {
        exact_subject: true,
        subject_type: Some("user"),
        subject_properties: Some(&subject),
        resource_properties: Some(&resource),
        action_properties: Some(&action),
        context: Some(&context),
    };
    let names = Names {
        subject: "alice",
        action: "update",
        resource: "todo:t1",
        now: now(),
    };
    c.evaluate(&names, &facts, &principal)
}

fn holds(source: &str) -> Result<bool, String> {
    eval(
        source,
        json!({"email": "alice@example.com", "level": 3}),
        json!({"owner": "alice", "state": "open", "tags": ["a", "b"]}),
        json!({"ip": "10.1.2.3", "window": true}),
    )
}

#[test]
fn each_operator_and_variable() {
    let cases = [
        ("resource.owner == subject.id", true),
        ("resource.owner != subject.id", false),
        ("resource.state in ['open', 'pending']", true),
        ("'b' in resource.tags", true),
        ("subject.level > 2 && subject.level <= 3", true),
        ("subject.level < 2 || context.window", true),
        ("!context.window", false),
        ("subject.email.endsWith('@example.com')", true),
        ("context.ip.startsWith('10.')", true),
        ("context.ip.matches('^10\\\\.1\\\\.')", true),
        ("size(resource.tags) == 2", true),
        ("resource.tags.exists(t, t == 'a')", true),
        ("resource.tags.all(t, t != 'c')", true),
        ("has(resource.owner) && !has(resource.deleted)", true),
        ("resource.type == 'todo' && resource.id == 't1'", true),
        ("action.name == 'update' && action.method == 'PUT'", true),
        ("subject.type == 'user'", true),
        ("principal.department == 'payments'", true),
        ("'editor' in principal.roles", true),
        ("principal.id == 'alice' && principal.kind == 'user'", true),
        ("size(principal.groups) == 0", true),
        ("now > timestamp('2026-12-01T00:00:00Z')", true),
        ("now.getHours() >= 9 && now.getHours() < 17", true),
        ("subject.level > 2 ? resource.state == 'open' : false", true),
    ];
    for (source, want) in cases {
        assert_eq!(holds(source), Ok(want), "{source}");
    }
}

#[test]
fn ids_and_types_come_from_the_question_not_the_properties() {
    // A caller cannot pass itself off as the owner by sending `id` in the properties.
    let r = eval(
        "resource.owner == subject.id",
        json!({"id": "bob"}),
        json!({"owner": "bob", "id": "x", "type": "y"}),
        json!({}),
    );
    assert_eq!(r, Ok(false));
}

#[test]
fn a_missing_property_fails_and_says_which() {
    let r = holds("resource.colour == 'red'");
    let e = r.err().unwrap_or_default();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn a_condition_that_is_not_a_bool_fails() {
    let e = holds("subject.level + 1").err().unwrap_or_default();
    assert!(e.contains("not a bool"), "{e}");
}

#[test]
fn a_type_mismatch_fails() {
    assert!(holds("subject.level == 'three' || subject.level > 'a'").is_err());
}

#[test]
fn refused_at_compile_time() {
    for (source, says) in [
        ("", "empty"),
        ("resource.owner ==", "not a valid CEL expression"),
        ("resource.owner = subject.id", "not a valid CEL expression"),
        ("user.id == 'alice'", "unknown variable `user`"),
        ("resource.tags.exists(t, t == x)", "unknown variable `x`"),
    ] {
        let e = Condition::compile(source)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains(says), "{source}: {e}");
    }
    let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
    assert!(Condition::compile(&deep).is_err());
    let long = format!("true{}", " && true".repeat(400));
    assert!(Condition::compile(&long).is_err());
}

#[test]
fn a_syntax_error_says_where() {
    let e = Condition::compile("resource.owner == subject.id &&")
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(e.contains("at 1:"), "{e}");
}

#[test]
fn serialises_as_its_source() {
    let c = Condition::compile("resource.owner == subject.id").ok();
    let v = serde_json::to_value(&c).unwrap_or_default();
    assert_eq!(v, json!("resource.owner == subject.id"));
    let back: Result<Condition, _> = serde_json::from_value(v);
    assert_eq!(back.ok(), c);
    let bad: Result<Condition, _> = serde_json::from_value(json!("nope =="));
    assert!(bad
        .err()
        .is_some_and(|e| e.to_string().starts_with(REFUSED)));
}
