//! `POST /flow/{id}/attributes`: the attribute page, then the
//! `postAttributeCollection` connectors, then the new user.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use std::sync::Arc;
use usher_domain::{
    AttributeError, AttributeValues, ConnectorStep, FlowStep, Identity, NewUser, SignInType,
    UserInputType,
};

use usher_domain::SignUpDraft;
use usher_storage::StorageError;

use super::lease::RunLease;
use super::{
    begin, error_page, flow_message, render_step, save, see_other, show, Feedback, Loaded,
    PageError,
};
use crate::{
    connectors::{StepConnectors, StepOutcome, StepRequest},
    state::AppState,
};

pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The form sent again while its connectors run, or after the instance that ran
    // them stopped: wait for the run, or resume it.
    if matches!(loaded.flow.step, FlowStep::RunningConnectors { .. }) {
        return run_connectors(&state, &headers, &mut loaded).await;
    }
    if !matches!(loaded.flow.step, FlowStep::SignUpAttributes { .. }) {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    let definitions: Vec<_> = state.tenant().attributes().collect();
    let parsed = loaded
        .user_flow
        .parse_attribute_form(&form, |id| definitions.iter().find(|d| d.id == id));
    let values = match parsed {
        Ok(v) => v,
        Err(failed) => {
            let mut fb = Feedback::default().entered(failed.entered);
            for (id, e) in &failed.errors {
                let choice = loaded.user_flow.assignment(id).is_some_and(|a| {
                    a.input_type.has_options()
                        || a.input_type == UserInputType::CheckboxSingleSelect
                });
                fb = fb.field(id, attribute_error_message(&state, &loaded, e, choice));
            }
            return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
        }
    };
    if loaded
        .flow
        .attributes_submitted(values, state.new_id(), state.clock.now())
        .is_err()
    {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(&state, &mut loaded).await {
        return r;
    }
    run_connectors(&state, &headers, &mut loaded).await
}

fn attribute_error_message(
    state: &AppState,
    loaded: &Loaded,
    e: &AttributeError,
    choice: bool,
) -> String {
    match e {
        AttributeError::Required if choice => {
            flow_message(state, loaded, "error.required_choice", &[])
        }
        AttributeError::TooLong { max } => {
            flow_message(state, loaded, e.message_key(), &[("max", max.to_string())])
        }
        _ => flow_message(state, loaded, e.message_key(), &[]),
    }
}

/// Runs the connectors of the flow's `RunningConnectors` step and acts on the outcome:
/// create the user, show the page again, block, or fail.
pub async fn run_connectors(
    state: &AppState,
    headers: &HeaderMap,
    loaded: &mut Loaded,
) -> Response {
    let Some((step, draft)) = loaded.flow.running_draft() else {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    };
    let draft = draft.clone();
    let slots = &loaded.user_flow.connectors;
    let connector_ids = match step {
        ConnectorStep::PostFederationSignup => slots.post_federation_signup.clone(),
        ConnectorStep::PostAttributeCollection => slots.post_attribute_collection.clone(),
        ConnectorStep::PreTokenIssuance => slots.pre_token_issuance.clone(),
    };
    let ui_locales = loaded
        .flow
        .authorization
        .end_user_locales(&loaded.flow.locale);
    let connectors = state.connectors();
    let lease = match RunLease::take(
        state,
        &loaded.flow.id,
        connectors.worst_case(&connector_ids),
    )
    .await
    {
        Ok(Some(lease)) => lease,
        Ok(None) => return show::working_page(state, loaded),
        Err(e) => return error_page(state, &loaded.flow.locale, PageError::internal(state, e)),
    };
    let run_key = loaded.flow.step.run_key(&loaded.flow.id);
    let response = act_on_outcome(
        state,
        headers,
        loaded,
        step,
        draft,
        &connectors,
        &connector_ids,
        &ui_locales,
        run_key.as_deref(),
    )
    .await;
    lease.release(state).await;
    response
}

/// Runs the step's connectors (the caller holds the run's lease) and saves and
/// shows what they decided.
#[allow(clippy::too_many_arguments)]
async fn act_on_outcome(
    state: &AppState,
    headers: &HeaderMap,
    loaded: &mut Loaded,
    step: ConnectorStep,
    draft: SignUpDraft,
    connectors: &Arc<dyn StepConnectors>,
    connector_ids: &[String],
    ui_locales: &str,
    run_key: Option<&str>,
) -> Response {
    let outcome = connectors
        .run(StepRequest {
            step,
            flow_id: &loaded.flow.id,
            user_flow_id: &loaded.user_flow.id,
            connector_ids,
            client_id: &loaded.app.client_id,
            ui_locales,
            email: Some(&draft.email),
            identities: &draft.identities,
            attributes: &draft.attributes,
            run_key,
        })
        .await;
    let locale = loaded.flow.locale.clone();
    match outcome {
        StepOutcome::Continue { attributes, .. } if step == ConnectorStep::PostFederationSignup => {
            // The connector's claims prefill the attribute page.
            if loaded.flow.post_federation_continued(attributes).is_err() {
                return show::render_current(state, loaded, Feedback::default(), StatusCode::OK)
                    .await;
            }
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            see_other(&format!("/flow/{}", loaded.flow.id))
        }
        StepOutcome::Continue { attributes, .. } => {
            create_user(state, headers, loaded, draft, attributes).await
        }
        StepOutcome::ValidationError(message) => {
            if loaded.flow.connector_validation_error(message).is_err() {
                return show::render_current(state, loaded, Feedback::default(), StatusCode::OK)
                    .await;
            }
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            render_step(state, loaded, Feedback::default(), StatusCode::BAD_REQUEST)
        }
        StepOutcome::Block { user_message } => {
            loaded.flow.block(user_message.clone());
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            show::blocked_page(state, loaded, &user_message)
        }
        StepOutcome::Failed { reference } => {
            loaded.flow.fail(reference.clone());
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            let back_url = Some(loaded.error_url(
                state,
                "server_error",
                "The sign-up could not be completed.",
            ));
            error_page(
                state,
                &locale,
                PageError::ConnectorFailed {
                    reference,
                    back_url,
                },
            )
        }
    }
}

async fn create_user(
    state: &AppState,
    headers: &HeaderMap,
    loaded: &mut Loaded,
    draft: usher_domain::SignUpDraft,
    mut attributes: AttributeValues,
) -> Response {
    let now = state.clock.now();
    // The email was verified; it is the user's email, whatever else says otherwise.
    attributes.remove("email");
    let mut identities = draft.identities.clone();
    if draft.password_hash.is_some() {
        identities.push(Identity {
            sign_in_type: SignInType::EmailAddress,
            issuer: state.settings.local_issuer(),
            issuer_assigned_id: draft.email.clone(),
            exact_issuer: None,
        });
    }
    let user_id = draft.user_id.clone().unwrap_or_else(|| state.new_id());
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
        return super::approval::hold(state, loaded, request).await;
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
    let user = match state.store.create_user(new_user).await {
        Ok(u) => u,
        // Another run of this same step (a reload after a restart) created it first.
        Err(StorageError::AlreadyExists) => match state.store.user_by_id(&user_id).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                return error_page(
                    state,
                    &loaded.flow.locale.clone(),
                    PageError::internal(state, "user id taken"),
                )
            }
            Err(e) => {
                return error_page(
                    state,
                    &loaded.flow.locale.clone(),
                    PageError::internal(state, e),
                )
            }
        },
        Err(StorageError::DuplicateIdentity) => {
            // The address got an account while this sign-up was under way: the only
            // way on is to sign in to it.
            loaded.flow.step = FlowStep::SignIn;
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            let fb = Feedback::general(flow_message(state, loaded, "error.account_exists", &[]));
            return render_step(state, loaded, fb, StatusCode::CONFLICT);
        }
        Err(e) => {
            return error_page(
                state,
                &loaded.flow.locale.clone(),
                PageError::internal(state, e),
            )
        }
    };
    tracing::info!(user_id = %user.id, flow_id = %loaded.flow.id, "user signed up");
    if loaded.flow.complete(user.id.clone(), true, now).is_err() {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    // The sign-up's identity: the provider's (or passcode's) if any, else the local one.
    let provider = user
        .identities
        .first()
        .and_then(|i| super::finish::provider_of(state, i));
    super::finish::finish(state, headers, loaded, &user, provider).await
}
