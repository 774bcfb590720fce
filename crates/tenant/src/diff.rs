//! What differs between two tenants, object by object, as an operator reads it before
//! `usher apply`: which objects are added or removed, and for changed ones the names
//! of the fields that differ, never their values.
//!
//! Both sides are compared in document form with every secret replaced by an HMAC
//! (see [`crate::document`]), so a secret shows up as a changed field when its value
//! changes and not merely because it was encrypted again.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::document::{Doc, KINDS};

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `settings`, `attribute`, `connector`, `identityProvider`, `userFlow` or
    /// `application`.
    pub kind: &'static str,
    /// The id as the desired tenant spells it (as stored, for a removal).
    pub id: String,
    pub action: ChangeAction,
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
        for d in &desired {
            let Some(c) = by_key.get(d.key.as_str()) else {
                changes.push(Change {
                    kind,
                    id: d.id.clone(),
                    action: ChangeAction::Added,
                });
                continue;
            };
            let mut fields = Vec::new();
            differing_fields("", &c.document, &d.document, &mut fields);
            if moved.contains(&d.key.as_str()) {
                fields.push("position".to_owned());
            }
            if !fields.is_empty() {
                changes.push(Change {
                    kind,
                    id: d.id.clone(),
                    action: ChangeAction::Changed { fields },
                });
            }
        }
        for c in &current {
            if !desired.iter().any(|d| d.key == c.key) {
                changes.push(Change {
                    kind,
                    id: c.id.clone(),
                    action: ChangeAction::Removed,
                });
            }
        }
    }
    changes
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

/// Appends the paths under `path` where `a` and `b` differ: objects member by member,
/// arrays of equal length element by element, anything else as a whole.
fn differing_fields(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        // A tagged value whose tag changed (say, Basic to API key authentication) is
        // a different thing altogether: its members are not worth listing.
        (Value::Object(x), Value::Object(y))
            if !path.is_empty() && x.contains_key("type") && x.get("type") != y.get("type") =>
        {
            out.push(path.to_owned());
        }
        (Value::Object(x), Value::Object(y)) => {
            for (name, value) in x {
                let child = join(path, name);
                differing_fields(&child, value, y.get(name).unwrap_or(&Value::Null), out);
            }
            for (name, value) in y {
                if !x.contains_key(name) {
                    differing_fields(&join(path, name), &Value::Null, value, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differing_fields(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ => out.push(if path.is_empty() {
            "document".to_owned()
        } else {
            path.to_owned()
        }),
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
        }
    }

    #[test]
    fn field_paths() {
        let mut out = Vec::new();
        differing_fields(
            "",
            &json!({
                "a": 1, "n": {"x": 1, "y": [1, 2]}, "gone": 1, "list": [1],
                "auth": {"type": "basic", "password": "h1"}
            }),
            &json!({
                "a": 1, "n": {"x": 2, "y": [1, 3]}, "new": 2, "list": [1, 2],
                "auth": {"type": "apiKey", "value": "h2"}
            }),
            &mut out,
        );
        assert_eq!(out, ["auth", "gone", "list", "n.x", "n.y[1]", "new"]);
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
    }
}
