//! Authentication event listeners (Entra External ID): a custom authentication
//! extension run at token issuance or at code delivery for the applications listed,
//! besides whatever the application's user flow runs at that step. Listeners of one
//! step run in priority order (the lowest number first), after the user flow's own
//! connectors; at code delivery only the first one delivers.

use serde::{Deserialize, Serialize};

use crate::connector::ConnectorStep;

/// Graph's default priority for a listener.
pub const DEFAULT_PRIORITY: i32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventListener {
    pub id: String,
    /// `PreTokenIssuance` (Graph's `onTokenIssuanceStartListener`) or `EmailOtpSend`
    /// (`onEmailOtpSendListener`).
    pub step: ConnectorStep,
    /// The custom authentication extension it runs.
    pub extension_id: String,
    /// The client ids of the applications it listens for
    /// (`conditions.applications.includeApplications`).
    pub applications: Vec<String>,
    pub priority: i32,
    /// Code delivery only: when the extension fails, Usher's mailer sends the code
    /// (Graph's `fallbackToMicrosoftProviderOnError`).
    #[serde(default)]
    pub fall_back_to_mailer: bool,
}

impl EventListener {
    /// The steps a listener can listen at.
    pub const STEPS: [ConnectorStep; 2] =
        [ConnectorStep::PreTokenIssuance, ConnectorStep::EmailOtpSend];

    pub fn applies_to(&self, client_id: &str) -> bool {
        self.applications
            .iter()
            .any(|a| a.eq_ignore_ascii_case(client_id))
    }

    /// The rules of a listener on its own; those it keeps with the rest of the
    /// tenant (its extension and applications exist) are the tenant's check.
    pub fn check(&self) -> Result<(), String> {
        if !Self::STEPS.contains(&self.step) {
            return Err(format!(
                "listens at {}: listeners are for tokenIssuanceStart and emailOtpSend",
                self.step.slot_name()
            ));
        }
        if self.fall_back_to_mailer && self.step != ConnectorStep::EmailOtpSend {
            return Err("falling back to the mailer is for emailOtpSend listeners".into());
        }
        if self.applications.is_empty() {
            return Err("listens for no application: name at least one".into());
        }
        if !(0..=1_000_000).contains(&self.priority) {
            return Err("the priority must be 0 to 1000000".into());
        }
        Ok(())
    }
}

/// The listeners of `step` for `client_id`, in the order they run.
pub fn listening<'a>(
    listeners: &'a [EventListener],
    step: ConnectorStep,
    client_id: &str,
) -> Vec<&'a EventListener> {
    let mut found: Vec<&EventListener> = listeners
        .iter()
        .filter(|l| l.step == step && l.applies_to(client_id))
        .collect();
    found.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(id: &str, priority: i32, apps: &[&str]) -> EventListener {
        EventListener {
            id: id.into(),
            step: ConnectorStep::PreTokenIssuance,
            extension_id: "x".into(),
            applications: apps.iter().map(|a| (*a).to_owned()).collect(),
            priority,
            fall_back_to_mailer: false,
        }
    }

    #[test]
    fn listeners_run_by_priority_for_their_applications() {
        let all = [
            listener("b", 500, &["app"]),
            listener("a", 10, &["APP", "other"]),
            listener("c", 1, &["other"]),
        ];
        let ids: Vec<&str> = listening(&all, ConnectorStep::PreTokenIssuance, "app")
            .iter()
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(listening(&all, ConnectorStep::EmailOtpSend, "app").is_empty());
    }

    #[test]
    fn a_listener_keeps_its_rules() {
        assert_eq!(listener("a", 500, &["app"]).check(), Ok(()));
        assert!(listener("a", 500, &[]).check().is_err());
        assert!(listener("a", -1, &["app"]).check().is_err());
        let mut wrong = listener("a", 500, &["app"]);
        wrong.step = ConnectorStep::PostAttributeCollection;
        assert!(wrong.check().is_err());
        let mut fallback = listener("a", 500, &["app"]);
        fallback.fall_back_to_mailer = true;
        assert!(fallback.check().is_err(), "only at code delivery");
        fallback.step = ConnectorStep::EmailOtpSend;
        assert_eq!(fallback.check(), Ok(()));
    }
}
