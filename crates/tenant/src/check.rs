//! The rules that hold between the objects of a tenant, checked in one place before
//! any of it is stored — whether it comes from the configuration file, `usher apply`
//! or the admin API — so that the stored tenant is always one that runs: every
//! application's user flow exists; every identity provider, connector and attribute a
//! user flow names exists; every connector keeps its own rules; no two identity
//! providers key identities by the same issuer. Each entry point checks the same
//! things first, with messages in its own terms (a file position, a Graph error);
//! this is the backstop that none can get around.

use usher_domain::user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER};
use usher_domain::{Application, ConnectorStep, EventListener, UserFlow};

use crate::{document, TenantError, TenantSnapshot};

fn invalid(kind: &'static str, id: &str, reason: String) -> TenantError {
    TenantError::Invalid {
        kind,
        id: id.to_owned(),
        reason,
    }
}

impl TenantSnapshot {
    /// The first rule between objects that this tenant breaks, if any.
    pub fn check(&self) -> Result<(), TenantError> {
        for app in &self.tenant.applications {
            self.check_application(app)?;
        }
        for flow in &self.tenant.user_flows {
            self.check_user_flow(flow)?;
        }
        for c in &self.connectors {
            c.check()
                .map_err(|e| invalid(document::CONNECTOR, &c.id, e.to_string()))?;
        }
        for l in &self.event_listeners {
            self.check_listener(l)?;
        }
        if let Some(shared) =
            usher_domain::identity_provider::shared_identity_issuer(&self.identity_providers)
        {
            return Err(invalid(
                document::IDENTITY_PROVIDER,
                &shared.second,
                shared.to_string(),
            ));
        }
        Ok(())
    }

    /// The rules `app` must keep with this tenant: its user flow exists. A write of
    /// one application checks only these, so an old flaw elsewhere in a stored
    /// tenant never blocks an unrelated edit.
    pub fn check_application(&self, app: &Application) -> Result<(), TenantError> {
        if self.tenant.user_flow(&app.user_flow_id).is_none() {
            return Err(invalid(
                document::APPLICATION,
                &app.client_id,
                format!("its user flow {:?} does not exist", app.user_flow_id),
            ));
        }
        Ok(())
    }

    /// The rules `listener` keeps on its own and with this tenant: its extension
    /// exists and has an event at its step. (Its applications need not exist: a
    /// listener for none runs for none.)
    pub fn check_listener(&self, listener: &EventListener) -> Result<(), TenantError> {
        listener
            .check()
            .map_err(|reason| invalid(document::EVENT_LISTENER, &listener.id, reason))?;
        match self.connector(&listener.extension_id) {
            Some(c) if c.contract.is_extension() && c.contract.serves(listener.step) => Ok(()),
            Some(c) => Err(invalid(
                document::EVENT_LISTENER,
                &listener.id,
                format!(
                    "{} is not a custom authentication extension for {}",
                    c.id,
                    listener.step.extension_event().unwrap_or_default()
                ),
            )),
            None => Err(invalid(
                document::EVENT_LISTENER,
                &listener.id,
                format!("its extension {:?} does not exist", listener.extension_id),
            )),
        }
    }

    /// The rules `flow` must keep with this tenant: every identity provider,
    /// connector and attribute it names exists.
    pub fn check_user_flow(&self, flow: &UserFlow) -> Result<(), TenantError> {
        let built_in = |p: &str| {
            p.eq_ignore_ascii_case(EMAIL_PASSWORD_PROVIDER)
                || p.eq_ignore_ascii_case(EMAIL_OTP_PROVIDER)
        };
        if let Some(p) = flow
            .identity_providers
            .iter()
            .find(|p| !built_in(p) && self.identity_provider(p).is_none())
        {
            return Err(invalid(
                document::USER_FLOW,
                &flow.id,
                format!("its identity provider {p:?} does not exist"),
            ));
        }
        for (step, ids) in flow.connectors.iter() {
            for id in ids {
                let Some(c) = self.connector(id) else {
                    return Err(invalid(
                        document::USER_FLOW,
                        &flow.id,
                        format!("its API connector {id:?} does not exist"),
                    ));
                };
                if !c.contract.serves(step) {
                    return Err(invalid(
                        document::USER_FLOW,
                        &flow.id,
                        format!(
                            "its connector {id:?} speaks the {} contract, which has no call at {}",
                            c.contract.name(),
                            step.slot_name()
                        ),
                    ));
                }
            }
            if step == ConnectorStep::EmailOtpSend && ids.len() > 1 {
                return Err(invalid(
                    document::USER_FLOW,
                    &flow.id,
                    "emailOtpSend takes one connector at most: a code is sent once".into(),
                ));
            }
        }
        if let Some(a) = flow
            .attributes
            .iter()
            .find(|a| self.tenant.attribute(&a.attribute_id).is_none())
        {
            return Err(invalid(
                document::USER_FLOW,
                &flow.id,
                format!("its attribute {:?} does not exist", a.attribute_id),
            ));
        }
        Ok(())
    }
}
