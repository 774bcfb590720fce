//! What differs between two tenants, object by object, as an operator reads it before
//! `usher apply`: which objects are added or removed, and for changed ones each field
//! that differs with its value before and after. Secrets are never shown: a changed
//! secret is named, its values are not, and a secret inside a shown value (an
//! authentication whose type changed, say) appears as `******`.
//!
//! Both sides are compared in document form with every secret replaced by an HMAC
//! (see [`crate::document`]), so a secret shows up as a changed field when its value
//! changes and not merely because it was encrypted again.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::document::{Doc, KINDS};

/// How a secret (or a value holding one) is shown.
const HIDDEN: &str = "******";

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `settings`, `attribute`, `connector`, `identityProvider`, `userFlow` or
    /// `application`.
    pub kind: &'static str,
    /// The id as the desired tenant spells it (as stored, for a removal).
    pub id: String,
    pub action: ChangeAction,
    /// For a changed object, each differing field with its values, in the order of
    /// `ChangeAction::Changed::fields`; empty for an addition or removal.
    pub details: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    Added,
    /// The fields that differ, as paths into the stored document
    /// (`targetUrl`, `authentication.password`, `attributes[1].label`), plus
    /// `position` when the object moved relative to the others of its kind.
    Changed {
        fields: Vec<String>,
    },
    Removed,
}

/// One field of a changed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// As in `ChangeAction::Changed::fields`.
    pub path: String,
    /// The value before and after, as compact JSON (`(none)` where the field is
    /// absent; for `position`, the place among the objects of its kind, from 1), with
    /// any secret inside, and the query of any URL, as `******`. `None` when the field is itself a secret, whose
    /// values are never shown.
    pub values: Option<(String, String)>,
}

/// `    targetUrl: "https://a.example" → "https://b.example"`,
/// `    authentication.password: a different secret`.
impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.values {
            Some((before, after)) => write!(f, "    {}: {before} → {after}", self.path),
            None => write!(f, "    {}: a different secret", self.path),
        }
    }
}

impl Change {
    /// The one-line summary followed by a line for each changed field with its old
    /// and new value: what `usher apply` prints.
    pub fn detailed(&self) -> String {
        let mut text = self.to_string();
        for d in &self.details {
            text.push('\n');
            text.push_str(&d.to_string());
        }
        text
    }
}

/// `+ userFlow B2X_1_partner`, `~ connector approval: targetUrl, timeoutMs`,
/// `- application old-app`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            ChangeAction::Added => write!(f, "+ {} {}", self.kind, self.id),
            ChangeAction::Removed => write!(f, "- {} {}", self.kind, self.id),
            ChangeAction::Changed { fields } => {
                write!(f, "~ {} {}: {}", self.kind, self.id, fields.join(", "))
            }
        }
    }
}

/// The changes that turn `current` into `desired`, kind by kind in [`KINDS`] order;
/// within a kind, additions and changes in `desired`'s order, then removals.
pub(crate) fn changes(current: &[Doc], desired: &[Doc]) -> Vec<Change> {
    let mut changes = Vec::new();
    for kind in KINDS {
        let current: Vec<&Doc> = current.iter().filter(|d| d.kind == kind).collect();
        let desired: Vec<&Doc> = desired.iter().filter(|d| d.kind == kind).collect();
        let moved = moved(&current, &desired);
        let by_key: HashMap<&str, &Doc> = current.iter().map(|d| (d.key.as_str(), *d)).collect();
        for (place, d) in desired.iter().enumerate() {
            let Some(c) = by_key.get(d.key.as_str()) else {
                changes.push(Change {
                    kind,
                    id: d.id.clone(),
                    action: ChangeAction::Added,
                    details: Vec::new(),
                });
                continue;
            };
            let mut differing = Vec::new();
            differing_fields("", Some(&c.document), Some(&d.document), &mut differing);
            let mut details: Vec<FieldChange> = differing
                .into_iter()
                .map(|(path, before, after)| shown(c, d, path, before, after))
                .collect();
            if moved.contains(&d.key.as_str()) {
                let was = current.iter().position(|o| o.key == d.key).unwrap_or(0);
                details.push(FieldChange {
                    path: "position".to_owned(),
                    values: Some(((was + 1).to_string(), (place + 1).to_string())),
                });
            }
            if !details.is_empty() {
                changes.push(Change {
                    kind,
                    id: d.id.clone(),
                    action: ChangeAction::Changed {
                        fields: details.iter().map(|f| f.path.clone()).collect(),
                    },
                    details,
                });
            }
        }
        for c in &current {
            if !desired.iter().any(|d| d.key == c.key) {
                changes.push(Change {
                    kind,
                    id: c.id.clone(),
                    action: ChangeAction::Removed,
                    details: Vec::new(),
                });
            }
        }
    }
    changes
}

/// A differing field as shown: its values with secrets hidden, or no values at all
/// when the field is a secret on either side.
fn shown(
    current: &Doc,
    desired: &Doc,
    path: String,
    before: Option<&Value>,
    after: Option<&Value>,
) -> FieldChange {
    let secret = |d: &Doc| d.secrets.contains(&path);
    if secret(current) || secret(desired) {
        return FieldChange { path, values: None };
    }
    let render = |value: Option<&Value>, d: &Doc| match value {
        None => "(none)".to_owned(),
        Some(v) => hide_query(hide_secrets(&path, v, &d.secrets)).to_string(),
    };
    let values = Some((render(before, current), render(after, desired)));
    FieldChange { path, values }
}

/// `value` (found at `path`) with every secret under it replaced by `******`.
fn hide_secrets(path: &str, value: &Value, secrets: &[String]) -> Value {
    if secrets.iter().any(|s| s == path) {
        return Value::String(HIDDEN.to_owned());
    }
    // Only values that hold a secret need walking.
    if !secrets.iter().any(|s| s.starts_with(path)) {
        return value.clone();
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), hide_secrets(&join(path, k), v, secrets)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| hide_secrets(&format!("{path}[{i}]"), v, secrets))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A URL with its query hidden: a generic identity provider's endpoint, say, may
/// carry a key there (as `Config`'s `Debug` assumes too). Other values as they are.
fn hide_query(value: Value) -> Value {
    match value {
        Value::String(s) if s.starts_with("http") && s.contains("://") && s.contains('?') => {
            let base = s.split('?').next().unwrap_or_default();
            Value::String(format!("{base}?{HIDDEN}"))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(hide_query).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, hide_query(v))).collect())
        }
        other => other,
    }
}

/// The keys, present on both sides, whose place among those keys differs. The order
/// is part of the tenant (it is the order pages and lists show), so a reordering is a
/// change that `apply` must write.
fn moved<'a>(current: &[&Doc], desired: &[&'a Doc]) -> Vec<&'a str> {
    let in_both = |d: &&&Doc, other: &[&Doc]| other.iter().any(|o| o.key == d.key);
    let before: Vec<&str> = current
        .iter()
        .filter(|d| in_both(d, desired))
        .map(|d| d.key.as_str())
        .collect();
    desired
        .iter()
        .filter(|d| in_both(d, current))
        .enumerate()
        .filter(|(i, d)| before.get(*i) != Some(&d.key.as_str()))
        .map(|(_, d)| d.key.as_str())
        .collect()
}

/// A differing field: its path and its values on each side (`None` where absent).
type Differing<'a> = (String, Option<&'a Value>, Option<&'a Value>);

/// Appends the paths under `path` where `a` and `b` differ, with both values: objects
/// member by member, arrays of equal length element by element, anything else as a
/// whole. An absent member and a null one are alike.
fn differing_fields<'a>(
    path: &str,
    a: Option<&'a Value>,
    b: Option<&'a Value>,
    out: &mut Vec<Differing<'a>>,
) {
    if a.unwrap_or(&Value::Null) == b.unwrap_or(&Value::Null) {
        return;
    }
    let whole = |out: &mut Vec<Differing<'a>>| {
        let path = if path.is_empty() { "document" } else { path };
        out.push((path.to_owned(), a, b));
    };
    match (a, b) {
        // A tagged value whose tag changed (say, Basic to API key authentication) is
        // a different thing altogether: its members are not worth listing.
        (Some(Value::Object(x)), Some(Value::Object(y)))
            if !path.is_empty() && x.contains_key("type") && x.get("type") != y.get("type") =>
        {
            whole(out);
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for (name, value) in x {
                differing_fields(&join(path, name), Some(value), y.get(name), out);
            }
            for (name, value) in y {
                if !x.contains_key(name) {
                    differing_fields(&join(path, name), None, Some(value), out);
                }
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differing_fields(&format!("{path}[{i}]"), Some(p), Some(q), out);
            }
        }
        _ => whole(out),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(kind: &'static str, id: &str, document: Value) -> Doc {
        Doc {
            kind,
            key: id.to_ascii_lowercase(),
            id: id.to_owned(),
            document,
            secrets: Vec::new(),
        }
    }

    #[test]
    fn field_paths() {
        let mut out = Vec::new();
        let (before, after) = (
            json!({
                "a": 1, "n": {"x": 1, "y": [1, 2]}, "gone": 1, "list": [1],
                "auth": {"type": "basic", "password": "h1"}
            }),
            json!({
                "a": 1, "n": {"x": 2, "y": [1, 3]}, "new": 2, "list": [1, 2],
                "auth": {"type": "apiKey", "value": "h2"}
            }),
        );
        differing_fields("", Some(&before), Some(&after), &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, ["auth", "gone", "list", "n.x", "n.y[1]", "new"]);
        assert_eq!(out[1].1, Some(&json!(1)));
        assert_eq!(out[1].2, None);
    }

    #[test]
    fn added_changed_moved_removed() {
        let current = [
            doc("userFlow", "A", json!({"id": "A", "v": 1})),
            doc("userFlow", "B", json!({"id": "B", "v": 1})),
            doc("userFlow", "C", json!({"id": "C", "v": 1})),
            doc("application", "old", json!({})),
        ];
        let desired = [
            doc("userFlow", "B", json!({"id": "B", "v": 1})),
            doc("userFlow", "a", json!({"id": "a", "v": 2})),
            doc("userFlow", "D", json!({"id": "D"})),
            doc("userFlow", "C", json!({"id": "C", "v": 1})),
        ];
        let shown: Vec<String> = changes(&current, &desired)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "~ userFlow B: position",
                "~ userFlow a: id, v, position",
                "+ userFlow D",
                "- application old"
            ]
        );
        assert!(changes(&current, &current).is_empty());
        let moved = &changes(&current, &desired)[0];
        assert_eq!(
            moved.detailed(),
            "~ userFlow B: position\n    position: 2 → 1"
        );
    }

    #[test]
    fn values_are_shown_and_secrets_never() {
        let mut current = doc(
            "connector",
            "crm",
            json!({
                "targetUrl": "https://a.example",
                "authentication": {"type": "basic", "username": "u", "password": "fp-one"},
                "signingSecrets": ["fp-two"],
            }),
        );
        current.secrets = vec!["authentication.password".into(), "signingSecrets[0]".into()];
        let mut desired = doc(
            "connector",
            "crm",
            json!({
                "targetUrl": "https://b.example",
                "authentication": {"type": "apiKey", "header": "x-key", "value": "fp-three"},
                "signingSecrets": ["fp-four"],
                "lenient": true,
            }),
        );
        desired.secrets = vec!["authentication.value".into(), "signingSecrets[0]".into()];
        let found = changes(&[current], &[desired]);
        let text = found[0].detailed();
        assert!(!text.contains("fp-"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "~ connector crm: authentication, signingSecrets[0], targetUrl, lenient"
        );
        assert!(lines[1].starts_with("    authentication: {"), "{text}");
        assert!(lines[1].contains(r#""password":"******""#), "{text}");
        assert!(lines[1].contains(r#""value":"******""#), "{text}");
        assert!(lines[1].contains(r#""username":"u""#), "{text}");
        assert_eq!(lines[2], "    signingSecrets[0]: a different secret");
        assert_eq!(
            lines[3],
            r#"    targetUrl: "https://a.example" → "https://b.example""#
        );
        assert_eq!(lines[4], "    lenient: (none) → true");

        // A URL's query may hold a key: hidden too.
        let keyed = |url: &str| doc("identityProvider", "p", json!({"tokenEndpoint": url}));
        let found = changes(
            &[keyed("https://a.example/token?key=k1")],
            &[keyed("https://b.example/token?key=k2")],
        );
        assert_eq!(
            found[0].details[0].to_string(),
            r#"    tokenEndpoint: "https://a.example/token?******" → "https://b.example/token?******""#
        );
    }
}
