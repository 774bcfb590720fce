//! The attribute page, then the step's connectors (`postFederationSignup` before the
//! page of a federated sign-up, `postAttributeCollection` after it), then the new
//! user — or the sign-up held for approval. A connector run holds the flow's run
//! lease ([`crate::lease`]), so of every request that finds the flow running its
//! connectors exactly one runs them.

use std::collections::BTreeMap;
use std::sync::Arc;

use usher_connectors::{StepConnectors, StepOutcome, StepRequest};
use usher_domain::{
    AttributeError, AttributeValues, ConnectorStep, FlowStep, NewUser, SignUpDraft, UserInputType,
};
use usher_storage::StorageError;

use crate::{lease::RunLease, Engine, Failure, Feedback, Loaded, Next, Status};

impl Engine {
    /// The attribute page's form (every field, repeated keys for multi-selects).
    pub async fn submit_attributes(
        &self,
        mut loaded: Loaded,
        form: &BTreeMap<String, Vec<String>>,
    ) -> Next {
        // The form sent again while its connectors run, or after the instance that ran
        // them stopped: wait for the run, or resume it.
        if matches!(loaded.flow.step, FlowStep::RunningConnectors { .. }) {
            return self.run_connectors(loaded).await;
        }
        if !matches!(loaded.flow.step, FlowStep::SignUpAttributes { .. }) {
            return self.as_is(loaded);
        }
        let values = match self.parse_attributes(&loaded, form) {
            Ok(v) => v,
            Err(feedback) => return Next::step(loaded, feedback, Status::BadRequest),
        };
        if loaded
            .flow
            .attributes_submitted(values, self.random.new_id(), self.clock.now())
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        self.run_connectors(loaded).await
    }

    /// The user flow's attributes from the page's form, or the feedback that shows
    /// the page again with an error per wrong field.
    pub(crate) fn parse_attributes(
        &self,
        loaded: &Loaded,
        form: &BTreeMap<String, Vec<String>>,
    ) -> Result<AttributeValues, Feedback> {
        let tenant = self.live.tenant();
        let definitions: Vec<_> = tenant.attributes().collect();
        loaded
            .user_flow
            .parse_attribute_form(form, |id| definitions.iter().find(|d| d.id == id))
            .map_err(|failed| {
                let mut feedback = Feedback::default().entered(failed.entered);
                for (id, e) in &failed.errors {
                    let choice = loaded.user_flow.assignment(id).is_some_and(|a| {
                        a.input_type.has_options()
                            || a.input_type == UserInputType::CheckboxSingleSelect
                    });
                    feedback = feedback.field(id, self.attribute_error(loaded, e, choice));
                }
                feedback
            })
    }

    fn attribute_error(&self, loaded: &Loaded, e: &AttributeError, choice: bool) -> String {
        match e {
            AttributeError::Required if choice => self.text(loaded, "error.required_choice", &[]),
            AttributeError::TooLong { max } => {
                self.text(loaded, e.message_key(), &[("max", max.to_string())])
            }
            _ => self.text(loaded, e.message_key(), &[]),
        }
    }

    /// Runs the connectors of the flow's `RunningConnectors` step and acts on the
    /// outcome: create the user, show the page again, block, or fail.
    pub(crate) async fn run_connectors(&self, loaded: Loaded) -> Next {
        let Some((step, draft)) = loaded.flow.running_draft() else {
            return self.as_is(loaded);
        };
        let draft = draft.clone();
        let connector_ids = loaded.user_flow.connectors.at(step).to_vec();
        let connectors = self.live.connectors();
        let lease = match RunLease::take(
            self,
            &loaded.flow.id,
            connectors.worst_case(&connector_ids),
        )
        .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                return Next::Working {
                    loaded: Box::new(loaded),
                }
            }
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        let next = self
            .act_on_outcome(loaded, step, draft, &connectors, &connector_ids)
            .await;
        lease.release(self).await;
        next
    }

    /// Runs the step's connectors (the caller holds the run's lease) and saves and
    /// answers what they decided.
    async fn act_on_outcome(
        &self,
        mut loaded: Loaded,
        step: ConnectorStep,
        draft: SignUpDraft,
        connectors: &Arc<dyn StepConnectors>,
        connector_ids: &[String],
    ) -> Next {
        let ui_locales = loaded
            .flow
            .authorization
            .end_user_locales(&loaded.flow.locale);
        let run_key = loaded.flow.step.run_key(&loaded.flow.id);
        // Before the page, the connectors see what is known so far: what the
        // provider (or a `postFederationSignup` connector) gave to prefill it.
        let attributes = if step == ConnectorStep::AttributeCollectionStart {
            &draft.prefill
        } else {
            &draft.attributes
        };
        let outcome = connectors
            .run(StepRequest {
                step,
                flow_id: &loaded.flow.id,
                user_flow_id: &loaded.user_flow.id,
                connector_ids,
                client_id: &loaded.app.client_id,
                ui_locales: &ui_locales,
                email: Some(&draft.email),
                identities: &draft.identities,
                attributes,
                run_key: run_key.as_deref(),
                client_ip: loaded.client.0,
                user: None,
                otp: None,
            })
            .await;
        match outcome {
            StepOutcome::Continue { attributes, .. } => {
                self.continued(loaded, step, draft, attributes).await
            }
            StepOutcome::ValidationError(message) => {
                if loaded.flow.connector_validation_error(message).is_err() {
                    return self.as_is(loaded);
                }
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
                Next::step(loaded, Feedback::default(), Status::BadRequest)
            }
            StepOutcome::Block {
                user_message,
                title,
            } => {
                if step == ConnectorStep::PreAccountRecovery {
                    if let Some(user_id) = &draft.user_id {
                        self.record_account_event(
                            user_id,
                            usher_domain::AccountEventKind::ResetBlocked,
                            Some(&loaded.app.client_id),
                            Some(&loaded.flow.id),
                        )
                        .await;
                    }
                }
                loaded.flow.block(user_message.clone(), title.clone());
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
                Next::Blocked {
                    loaded: Box::new(loaded),
                    user_message,
                    title,
                }
            }
            // Only the code's delivery falls back; elsewhere a failure policy of
            // `continue` goes on inside the runner.
            StepOutcome::Failed { reference } | StepOutcome::FellBack { reference } => {
                loaded.flow.fail(reference.clone());
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
                let back_url = Some(loaded.error_url(
                    &self.settings.issuer,
                    "server_error",
                    "The sign-up could not be completed.",
                ));
                Next::failure(
                    &loaded.flow.locale,
                    Failure::ConnectorFailed {
                        reference,
                        back_url,
                    },
                )
            }
        }
    }

    /// The step's connectors continued with `attributes`: before the page they
    /// prefill it (the `attributeCollectionStart` connectors run first, on the page's
    /// GET, when a federated sign-up has some); after it the user is created.
    async fn continued(
        &self,
        mut loaded: Loaded,
        step: ConnectorStep,
        draft: SignUpDraft,
        attributes: AttributeValues,
    ) -> Next {
        let moved = match step {
            ConnectorStep::PostFederationSignup => {
                let start = !loaded
                    .user_flow
                    .connectors
                    .attribute_collection_start
                    .is_empty();
                loaded
                    .flow
                    .post_federation_continued(attributes, start, self.clock.now())
            }
            ConnectorStep::AttributeCollectionStart => {
                loaded.flow.attribute_collection_started(attributes)
            }
            // What a recovery's connectors return is not the account's to take.
            ConnectorStep::PreAccountRecovery => loaded.flow.account_recovery_continued(),
            ConnectorStep::OnProfileUpdate => {
                return self.save_profile(loaded, draft, attributes).await
            }
            ConnectorStep::PostAttributeCollection => {
                return self.create_user(loaded, draft, attributes).await
            }
            // No flow runs these steps' connectors through here.
            ConnectorStep::PreTokenIssuance | ConnectorStep::EmailOtpSend => {
                return self.as_is(loaded)
            }
        };
        if moved.is_err() {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        Next::show(&loaded)
    }

    /// The connectors continued: the user (or, when the flow requires approval, the
    /// held sign-up) is created with the attributes they returned.
    async fn create_user(
        &self,
        mut loaded: Loaded,
        draft: SignUpDraft,
        mut attributes: AttributeValues,
    ) -> Next {
        let now = self.clock.now();
        // The email was verified; it is the user's email, whatever else says otherwise.
        attributes.remove("email");
        let mut identities = draft.identities.clone();
        if draft.password_hash.is_some() {
            identities.push(self.local_identity(&draft.email));
        }
        let user_id = draft
            .user_id
            .clone()
            .unwrap_or_else(|| self.random.new_id());
        if loaded.user_flow.requires_approval {
            // Held for a person to decide; the draft's fixed id makes a re-run find it.
            let request = usher_domain::SignUpRequest {
                id: user_id,
                user_flow_id: loaded.user_flow.id.clone(),
                client_id: loaded.app.client_id.clone(),
                email: draft.email.clone(),
                identities,
                attributes,
                password_hash: draft.password_hash.clone(),
                status: usher_domain::SignUpRequestStatus::Pending,
                created_at: now,
                decided_by: None,
                decided_at: None,
                user_id: None,
            };
            return self.hold(loaded, request).await;
        }
        let new_user = NewUser {
            id: user_id.clone(),
            email: Some(draft.email.clone()),
            attributes,
            identities,
            password_hash: draft.password_hash.clone(),
            created_at: now,
            // A flow only gets here with the address proven: by a code, or by the
            // provider that vouched for it.
            account_enabled: true,
            email_verified: true,
            profile: usher_domain::UserProfile::default(),
        };
        let user = match self.store.create_user(new_user).await {
            Ok(u) => u,
            // Another run of this same step (a reload after a restart) created it first.
            Err(StorageError::AlreadyExists) => match self.store.user_by_id(&user_id).await {
                Ok(Some(u)) => u,
                Ok(None) => return self.fail_with(&loaded.flow.locale, "user id taken"),
                Err(e) => return self.fail_with(&loaded.flow.locale, e),
            },
            Err(StorageError::DuplicateIdentity) => {
                // The address got an account while this sign-up was under way: the
                // only way on is to sign in to it.
                if loaded.flow.account_taken().is_err() {
                    return self.as_is(loaded);
                }
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
                let feedback = self.say(&loaded, "error.account_exists", &[]);
                return Next::step(loaded, feedback, Status::Conflict);
            }
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        tracing::info!(user_id = %user.id, flow_id = %loaded.flow.id, "user signed up");
        if loaded.flow.complete(user.id.clone(), true, now).is_err() {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        // The sign-up's identity: the provider's (or passcode's) if any, else the
        // local one.
        let provider = user.identities.first().and_then(|i| self.provider_of(i));
        self.finish(&loaded, &user, provider).await
    }
}
