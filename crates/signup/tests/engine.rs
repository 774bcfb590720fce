//! Whole sign-ups driven through the engine alone: no HTTP, a real SQLite store, a
//! clock that only moves when told, a seeded random source, scripted connectors, a
//! fake upstream provider and mail kept in memory (`usher_testkit::engine`).

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::collections::BTreeMap;

use usher_connectors::StepOutcome;
use usher_domain::{
    flow::PageMessage, AccountAction, AttributeValue, Clock, CodePurpose, ConnectorSlots,
    ConnectorStep, FlowStep, Prompt, SignInType, SignUpRequestStatus,
};
use usher_oidc::crypto::sha256_hex;
use usher_signup::{approvals::Decider, Failure, Letter, Next, Status};
use usher_testkit::engine::*;

#[tokio::test]
async fn local_sign_up_then_sign_in() {
    let w = world(
        ConnectorSlots {
            post_attribute_collection: vec!["check".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = local_sign_up_to_attributes(&w, "ada@example.com").await;
    // A required attribute left empty is refused before any connector runs.
    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "")]))
        .await;
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the attribute page again, got {next:?}");
    };
    assert_eq!(status, Status::BadRequest);
    assert_eq!(feedback.field_errors["displayName"], "error.required");
    assert!(w.script.calls().is_empty());

    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "Ada")]))
        .await;
    signed_in(next);
    let calls = w.script.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].step, ConnectorStep::PostAttributeCollection);
    assert_eq!(
        calls[0].attributes["displayName"],
        AttributeValue::String("Ada".into())
    );
    // The call carries a key that a retry of the same run repeats.
    assert!(calls[0]
        .run_key
        .as_deref()
        .is_some_and(|k| k.starts_with(&format!("{id}.PostAttributeCollection."))));
    let FlowStep::Completed { user_id, signed_up } = w.step(&id).await else {
        panic!("the flow did not complete");
    };
    assert!(signed_up);
    let user = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert_eq!(user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(user.identities[0].sign_in_type, SignInType::EmailAddress);
    assert_eq!(user.identities[0].issuer, "id.example");

    // Signing in: a wrong password is refused and counted, the right one signs in.
    let id = w.start(None).await;
    let next = w
        .engine
        .sign_in(w.open(&id).await, "ada@example.com", "wrong", NOBODY)
        .await;
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the sign-in page again, got {next:?}");
    };
    assert_eq!(status, Status::Unauthorized);
    assert_eq!(feedback.general, vec!["sign_in.failed".to_owned()]);
    assert_eq!(w.open(&id).await.flow.password_failures, 1);
    let next = w
        .engine
        .sign_in(
            w.open(&id).await,
            "ADA@example.com ",
            "a long pass phrase 42",
            NOBODY,
        )
        .await;
    signed_in(next);
    // Sign-in runs no connector but preTokenIssuance, which this flow has none of.
    assert_eq!(w.script.calls().len(), 1);
}

#[tokio::test]
async fn a_second_sign_up_with_the_address_gets_a_mail_not_a_code() {
    let w = world(ConnectorSlots::default(), false).await;
    let id = local_sign_up_to_attributes(&w, "ada@example.com").await;
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Ada")]))
            .await,
    );
    let id = w.start(Some(Prompt::Create)).await;
    let next = w
        .engine
        .submit_email(w.open(&id).await, "ada@example.com", NOBODY)
        .await;
    // The same page as for a new address...
    shows_flow(&next, &id);
    assert!(matches!(w.step(&id).await, FlowStep::EnterCode { .. }));
    // ...but the mail says there is an account, and no code works.
    let letters = w.outbox.letters();
    assert_eq!(
        letters.last().unwrap(),
        &("ada@example.com".to_owned(), Letter::AccountExists)
    );
    let next = w
        .engine
        .submit_code(w.open(&id).await, "123456", NOBODY)
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::BadRequest,
            ..
        }
    ));
}

#[tokio::test]
async fn an_expired_code_is_refused_by_the_clock() {
    let w = world(ConnectorSlots::default(), false).await;
    let id = w.start(Some(Prompt::Create)).await;
    w.engine
        .submit_email(w.open(&id).await, "ada@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("ada@example.com");
    w.clock.advance(chrono::Duration::minutes(11));
    let next = w.engine.submit_code(w.open(&id).await, &code, NOBODY).await;
    let Next::Step { feedback, .. } = next else {
        panic!("expected the code page again, got {next:?}");
    };
    assert_eq!(feedback.field_errors["code"], "error.code_expired");
    // And a flow past its lifetime is gone for good.
    w.clock.advance(chrono::Duration::minutes(60));
    assert!(matches!(
        w.engine.open(&id, Some(BROWSER), PERSON).await,
        Err(Failure::FlowExpired { .. })
    ));
    // Another browser never sees the flow.
    assert!(matches!(
        w.engine.open(&id, Some("another"), PERSON).await,
        Err(Failure::WrongBrowser)
    ));
}

#[tokio::test]
async fn email_one_time_passcode_sign_up_and_sign_in() {
    let w = world(
        ConnectorSlots {
            post_federation_signup: vec!["prefill".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = w.start(None).await;
    let next = w
        .engine
        .choose_provider(w.open(&id).await, "emailotpsignup-oauth")
        .await;
    shows_flow(&next, &id);
    w.script.then(StepOutcome::Continue {
        attributes: [(
            "displayName".to_owned(),
            AttributeValue::String("Prefilled".into()),
        )]
        .into(),
        token_claims: serde_json::Map::new(),
    });
    w.engine
        .submit_email(w.open(&id).await, "otp@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("otp@example.com");
    let next = w.engine.submit_code(w.open(&id).await, &code, NOBODY).await;
    // postFederationSignup ran and its claims prefill the attribute page.
    shows_flow(&next, &id);
    let FlowStep::SignUpAttributes { draft, .. } = w.step(&id).await else {
        panic!("expected the attribute page");
    };
    assert_eq!(
        draft.prefill["displayName"],
        AttributeValue::String("Prefilled".into())
    );
    assert_eq!(
        w.script.calls()[0].step,
        ConnectorStep::PostFederationSignup
    );
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Otto")]))
            .await,
    );
    let FlowStep::Completed { user_id, .. } = w.step(&id).await else {
        panic!("the flow did not complete");
    };
    let user = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert_eq!(user.identities[0].issuer, "mail");

    // The next passcode for the address signs in to the same user, no connectors.
    let calls = w.script.calls().len();
    let id = w.start(None).await;
    w.engine
        .choose_provider(w.open(&id).await, "EmailOtpSignup-OAUTH")
        .await;
    w.engine
        .submit_email(w.open(&id).await, "otp@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("otp@example.com");
    signed_in(w.engine.submit_code(w.open(&id).await, &code, NOBODY).await);
    assert!(
        matches!(w.step(&id).await, FlowStep::Completed { user_id: u, signed_up: false } if u == user_id)
    );
    assert_eq!(w.script.calls().len(), calls);
}

#[tokio::test]
async fn federated_sign_up_then_sign_in() {
    let w = world(ConnectorSlots::default(), false).await;
    let id = w.start(None).await;
    let next = w.engine.choose_provider(w.open(&id).await, GOOGLE).await;
    let Next::Redirect { location } = next else {
        panic!("expected the redirect to the provider, got {next:?}");
    };
    let state = location.split("state=").nth(1).unwrap().to_owned();
    assert!(state.starts_with(&format!("{id}.")));

    // A forged state finds nothing; the provider's error is shown on the page.
    let params = |state: &str, code: &str| -> BTreeMap<String, String> {
        [
            ("state".to_owned(), state.to_owned()),
            ("code".to_owned(), code.to_owned()),
        ]
        .into()
    };
    let forged = format!("{id}.forged");
    assert!(matches!(
        w.engine
            .federation_callback(&params(&forged, "good"), Some(BROWSER), PERSON, "en")
            .await,
        Next::Failure {
            failure: Failure::BadRequest { .. },
            ..
        }
    ));
    let next = w
        .engine
        .federation_callback(&params(&state, "bad"), Some(BROWSER), PERSON, "en")
        .await;
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the sign-in page again, got {next:?}");
    };
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        feedback.general,
        vec!["error.provider_error(provider=Google)".to_owned()]
    );

    // Back with a good code: a new identity signs up through the attribute page,
    // prefilled with the provider's claims.
    let next = w
        .engine
        .federation_callback(&params(&state, "good"), Some(BROWSER), PERSON, "en")
        .await;
    shows_flow(&next, &id);
    let FlowStep::SignUpAttributes { draft, .. } = w.step(&id).await else {
        panic!("expected the attribute page");
    };
    assert_eq!(
        draft.prefill["displayName"],
        AttributeValue::String("Grace".into())
    );
    let token = signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Grace H")]))
            .await,
    );
    let FlowStep::Completed { user_id, .. } = w.step(&id).await else {
        panic!("the flow did not complete");
    };
    let user = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert_eq!(user.identities[0].issuer, "google.com");
    assert_eq!(
        user.identities[0].exact_issuer.as_deref(),
        Some("https://accounts.google.com")
    );
    let session = w
        .store
        .session(&sha256_hex(token.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user_id, user_id);
    assert_eq!(session.identity_provider.as_deref(), Some(GOOGLE));

    // The same identity again signs in at once.
    let id = w.start(None).await;
    let Next::Redirect { location } = w.engine.choose_provider(w.open(&id).await, GOOGLE).await
    else {
        panic!("expected the redirect to the provider");
    };
    let state = location.split("state=").nth(1).unwrap().to_owned();
    signed_in(
        w.engine
            .federation_callback(&params(&state, "good"), Some(BROWSER), PERSON, "en")
            .await,
    );
    assert!(
        matches!(w.step(&id).await, FlowStep::Completed { user_id: u, signed_up: false } if u == user_id)
    );
}

#[tokio::test]
async fn a_connector_blocks_the_sign_up() {
    let w = world(
        ConnectorSlots {
            post_attribute_collection: vec!["gate".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = local_sign_up_to_attributes(&w, "blocked@example.com").await;
    w.script.then(StepOutcome::Block {
        user_message: "Not from here.".into(),
        title: None,
    });
    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "B")]))
        .await;
    let Next::Blocked { user_message, .. } = next else {
        panic!("expected the block page, got {next:?}");
    };
    assert_eq!(user_message, "Not from here.");
    assert!(matches!(w.step(&id).await, FlowStep::Blocked { .. }));
    assert!(w
        .store
        .users_by_email("blocked@example.com")
        .await
        .unwrap()
        .is_empty());
    // Reloading shows the block page again; nothing runs twice.
    assert!(matches!(
        w.engine.show(w.open(&id).await).await,
        Next::Blocked { .. }
    ));
    assert_eq!(w.script.calls().len(), 1);
}

#[tokio::test]
async fn a_validation_error_shows_the_page_again_and_a_fix_goes_through() {
    let w = world(
        ConnectorSlots {
            post_attribute_collection: vec!["validate".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = local_sign_up_to_attributes(&w, "val@example.com").await;
    w.script.then(StepOutcome::ValidationError(PageMessage {
        user_message: "Please check.".into(),
        attribute_errors: [("displayName".to_owned(), "Too short.".to_owned())].into(),
    }));
    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "V")]))
        .await;
    let Next::Step { loaded, status, .. } = next else {
        panic!("expected the attribute page again, got {next:?}");
    };
    assert_eq!(status, Status::BadRequest);
    let FlowStep::SignUpAttributes {
        message: Some(message),
        ..
    } = &loaded.flow.step
    else {
        panic!("the page carries the connector's message");
    };
    assert_eq!(message.attribute_errors["displayName"], "Too short.");
    // The fixed value continues; the connector overwrites it on the way.
    w.script.then(StepOutcome::Continue {
        attributes: [(
            "displayName".to_owned(),
            AttributeValue::String("Valerie (checked)".into()),
        )]
        .into(),
        token_claims: serde_json::Map::new(),
    });
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Valerie")]))
            .await,
    );
    let user = w
        .store
        .users_by_email("val@example.com")
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        user.attributes["displayName"],
        AttributeValue::String("Valerie (checked)".into())
    );
    assert_eq!(w.script.calls().len(), 2);
}

#[tokio::test]
async fn a_failed_connector_ends_the_flow_with_its_reference() {
    let w = world(
        ConnectorSlots {
            post_attribute_collection: vec!["down".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = local_sign_up_to_attributes(&w, "down@example.com").await;
    w.script.then(StepOutcome::Failed {
        reference: "call-1".into(),
    });
    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "D")]))
        .await;
    let Next::Failure {
        failure: Failure::ConnectorFailed {
            reference,
            back_url,
        },
        ..
    } = next
    else {
        panic!("expected the connector failure page, got {next:?}");
    };
    assert_eq!(reference, "call-1");
    assert!(back_url
        .unwrap()
        .starts_with(&format!("{REDIRECT}?error=server_error")));
}

#[tokio::test]
async fn a_held_sign_up_waits_for_approval_and_a_denial_blocks_the_next_try() {
    let w = world(ConnectorSlots::default(), true).await;
    let id = local_sign_up_to_attributes(&w, "held@example.com").await;
    let next = w
        .engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "H")]))
        .await;
    assert!(matches!(next, Next::Pending { .. }), "{next:?}");
    let FlowStep::PendingApproval { request_id } = w.step(&id).await else {
        panic!("expected the flow to wait for approval");
    };
    assert!(w
        .store
        .users_by_email("held@example.com")
        .await
        .unwrap()
        .is_empty());
    // Its password shows the pending page, not a failed sign-in.
    let id2 = w.start(None).await;
    let next = w
        .engine
        .sign_in(
            w.open(&id2).await,
            "held@example.com",
            "a long pass phrase 42",
            NOBODY,
        )
        .await;
    assert!(matches!(next, Next::Pending { .. }), "{next:?}");

    let user = w
        .engine
        .approve(&request_id, &Decider::Admin("admin-1".into()))
        .await
        .unwrap();
    assert_eq!(user.email.as_deref(), Some("held@example.com"));
    assert_eq!(
        w.outbox.letters().last().unwrap(),
        &("held@example.com".to_owned(), Letter::Approved)
    );
    let request = w.store.sign_up_request(&request_id).await.unwrap().unwrap();
    assert_eq!(request.status, SignUpRequestStatus::Approved);
    assert_eq!(request.decided_by.as_deref(), Some("admin-1"));

    // Another sign-up, denied: the next attempt with the address is blocked.
    let id = local_sign_up_to_attributes(&w, "no@example.com").await;
    w.engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "N")]))
        .await;
    let FlowStep::PendingApproval { request_id } = w.step(&id).await else {
        panic!("expected the flow to wait for approval");
    };
    w.engine
        .deny(
            &request_id,
            &Decider::Application("ops".into()),
            Some("  Not a customer.\u{7}  "),
        )
        .await
        .unwrap();
    // The email says why, as given (less what a mail must not carry).
    assert_eq!(
        w.outbox.letters().last().unwrap(),
        &(
            "no@example.com".to_owned(),
            Letter::Denied {
                reason: Some("Not a customer.".into())
            }
        )
    );
    let id = w.start(Some(Prompt::Create)).await;
    w.engine
        .submit_email(w.open(&id).await, "no@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("no@example.com");
    let next = w.engine.submit_code(w.open(&id).await, &code, NOBODY).await;
    let Next::Blocked { user_message, .. } = next else {
        panic!("expected the block page, got {next:?}");
    };
    assert_eq!(user_message, "blocked.denied");
}

#[tokio::test]
async fn the_same_seed_and_clock_give_the_same_sign_up() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let w = world(ConnectorSlots::default(), false).await;
        let id = w.start(Some(Prompt::Create)).await;
        w.engine
            .submit_email(w.open(&id).await, "same@example.com", NOBODY)
            .await;
        let code = w.outbox.last_code("same@example.com");
        let flow = w.open(&id).await.flow;
        seen.push((id, code, flow.csrf_token, w.clock.now()));
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn a_stale_form_shows_the_current_page() {
    let w = world(ConnectorSlots::default(), false).await;
    let id = w.start(None).await;
    let next = w
        .engine
        .open_form(&id, Some(BROWSER), PERSON, "not the token", "en")
        .await
        .unwrap_err();
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the sign-in page, got {next:?}");
    };
    assert_eq!(status, Status::BadRequest);
    assert_eq!(feedback.general, vec!["error.csrf".to_owned()]);
    // A form for a step the flow is not at changes nothing.
    let next = w
        .engine
        .submit_code(w.open(&id).await, "123456", NOBODY)
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::Ok,
            ..
        }
    ));
    assert!(matches!(w.step(&id).await, FlowStep::SignIn));
}

#[tokio::test]
async fn the_admin_console_never_offers_a_sign_up() {
    let w = world(ConnectorSlots::default(), false).await;
    let console = usher_domain::application::CONSOLE_CLIENT_ID;
    // prompt=create starts at the sign-in page, which offers no sign-up...
    let id = w.start_for(console, Some(Prompt::Create)).await;
    assert!(matches!(w.step(&id).await, FlowStep::SignIn));
    assert!(!w.open(&id).await.offers_sign_up());
    // ...and "sign up now" sent anyway changes nothing.
    shows_flow(&w.engine.go_to_sign_up(w.open(&id).await).await, &id);
    assert!(matches!(w.step(&id).await, FlowStep::SignIn));
    // The same user flow through an application signs people up.
    let id = w.start(Some(Prompt::Create)).await;
    assert!(w.open(&id).await.offers_sign_up());
    assert!(matches!(w.step(&id).await, FlowStep::EnterEmail { .. }));
}

#[tokio::test]
async fn a_right_password_on_a_held_sign_up_is_not_counted_as_a_failure() {
    let w = world(ConnectorSlots::default(), true).await;
    let id = local_sign_up_to_attributes(&w, "held@example.com").await;
    w.engine
        .submit_attributes(w.open(&id).await, &form(&[("displayName", "H")]))
        .await;
    // More right passwords from one address than the per-account-and-address limit
    // (10 failures in 15 minutes) allows wrong ones: each shows the pending page.
    let client = usher_signup::throttle::ClientAddress(Some("192.0.2.7".parse().unwrap()));
    for _ in 0..12 {
        let id = w.start(None).await;
        let next = w
            .engine
            .sign_in(
                w.open(&id).await,
                "held@example.com",
                "a long pass phrase 42",
                client,
            )
            .await;
        assert!(matches!(next, Next::Pending { .. }), "{next:?}");
    }
}

/// To the password page of a local sign-up, with the code proven.
async fn local_sign_up_to_password(w: &World, email: &str) -> String {
    let id = w.start(Some(Prompt::Create)).await;
    shows_flow(
        &w.engine
            .submit_email(w.open(&id).await, email, NOBODY)
            .await,
        &id,
    );
    let code = w.outbox.last_code(email);
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, NOBODY).await,
        &id,
    );
    id
}

#[tokio::test]
async fn attribute_collection_start_prefills_local_and_federated_sign_ups() {
    let w = world(
        ConnectorSlots {
            attribute_collection_start: vec!["start".into()],
            pre_token_issuance: vec!["claims".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    // Local: after the password, the start connectors run before the page.
    let id = local_sign_up_to_password(&w, "ada@example.com").await;
    let next = w
        .engine
        .submit_password(
            w.open(&id).await,
            "a long pass phrase 42",
            "a long pass phrase 42",
        )
        .await;
    shows_flow(&next, &id);
    assert!(matches!(
        w.step(&id).await,
        FlowStep::RunningConnectors {
            connector_step: ConnectorStep::AttributeCollectionStart,
            ..
        }
    ));
    w.script.then(StepOutcome::Continue {
        attributes: [(
            "displayName".to_owned(),
            AttributeValue::String("Ada (prefilled)".into()),
        )]
        .into(),
        token_claims: serde_json::Map::new(),
    });
    // The page's GET runs them.
    let next = w.engine.show(w.open(&id).await).await;
    shows_flow(&next, &id);
    let FlowStep::SignUpAttributes { draft, .. } = w.step(&id).await else {
        panic!("expected the attribute page");
    };
    assert_eq!(
        draft.prefill["displayName"],
        AttributeValue::String("Ada (prefilled)".into())
    );
    let calls = w.script.calls();
    let start = calls.last().unwrap();
    assert_eq!(start.step, ConnectorStep::AttributeCollectionStart);
    assert_eq!(
        start.client_ip, PERSON.0,
        "the person's address is passed on"
    );
    // The token's connectors are told whose token it is.
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Ada")]))
            .await,
    );
    let FlowStep::Completed { user_id, .. } = w.step(&id).await else {
        panic!("the flow did not complete");
    };
    let token_call = w.script.calls().last().cloned().unwrap();
    assert_eq!(token_call.step, ConnectorStep::PreTokenIssuance);
    assert_eq!(token_call.user_id.as_deref(), Some(user_id.as_str()));

    // Federated: after postFederationSignup, before the page, with what the
    // provider gave.
    let id = w.start(None).await;
    let Next::Redirect { location } = w.engine.choose_provider(w.open(&id).await, GOOGLE).await
    else {
        panic!("expected the redirect to the provider");
    };
    let state = location.split("state=").nth(1).unwrap().to_owned();
    let params: BTreeMap<String, String> = [
        ("state".to_owned(), state),
        ("code".to_owned(), "good".to_owned()),
    ]
    .into();
    let before = w.script.calls().len();
    shows_flow(
        &w.engine
            .federation_callback(&params, Some(BROWSER), PERSON, "en")
            .await,
        &id,
    );
    assert!(matches!(
        w.step(&id).await,
        FlowStep::RunningConnectors {
            connector_step: ConnectorStep::AttributeCollectionStart,
            ..
        }
    ));
    shows_flow(&w.engine.show(w.open(&id).await).await, &id);
    let calls = w.script.calls();
    let steps: Vec<ConnectorStep> = calls[before..].iter().map(|c| c.step).collect();
    assert_eq!(
        steps,
        [
            ConnectorStep::PostFederationSignup,
            ConnectorStep::AttributeCollectionStart
        ]
    );
    assert_eq!(
        calls.last().unwrap().attributes["displayName"],
        AttributeValue::String("Grace".into()),
        "the start connectors see the provider's claims"
    );
    assert!(matches!(
        w.step(&id).await,
        FlowStep::SignUpAttributes { .. }
    ));
}

#[tokio::test]
async fn attribute_collection_start_blocks_with_a_title() {
    let w = world(
        ConnectorSlots {
            attribute_collection_start: vec!["start".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = local_sign_up_to_password(&w, "closed@example.com").await;
    w.script.then(StepOutcome::Block {
        user_message: "Sign-ups are closed this week.".into(),
        title: Some("Closed".into()),
    });
    shows_flow(
        &w.engine
            .submit_password(
                w.open(&id).await,
                "a long pass phrase 42",
                "a long pass phrase 42",
            )
            .await,
        &id,
    );
    let next = w.engine.show(w.open(&id).await).await;
    let Next::Blocked {
        user_message,
        title,
        ..
    } = next
    else {
        panic!("expected the block page, got {next:?}");
    };
    assert_eq!(user_message, "Sign-ups are closed this week.");
    assert_eq!(title.as_deref(), Some("Closed"));
    // A reload shows the same page, title and all.
    let Next::Blocked { title, .. } = w.engine.show(w.open(&id).await).await else {
        panic!("expected the block page again");
    };
    assert_eq!(title.as_deref(), Some("Closed"));
}

#[tokio::test]
async fn an_email_otp_send_connector_delivers_the_code() {
    let w = world(
        ConnectorSlots {
            email_otp_send: vec!["sms-gateway".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = w.start(Some(Prompt::Create)).await;
    let next = w
        .engine
        .submit_email(w.open(&id).await, "otp@example.com", NOBODY)
        .await;
    shows_flow(&next, &id);
    let call = w.script.calls().last().cloned().unwrap();
    assert_eq!(call.step, ConnectorStep::EmailOtpSend);
    let (code, request_type) = call.otp.expect("the code went to the connector");
    assert_eq!(request_type, "signUp");
    assert!(
        w.outbox.letters().is_empty(),
        "Usher's mailer sent nothing: {:?}",
        w.outbox.letters()
    );
    // The code the connector delivered works.
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, NOBODY).await,
        &id,
    );
    assert!(matches!(w.step(&id).await, FlowStep::SignUpPassword { .. }));
}

#[tokio::test]
async fn a_failed_otp_connector_sends_nothing_unless_it_falls_back() {
    let w = world(
        ConnectorSlots {
            email_otp_send: vec!["sms-gateway".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    let id = w.start(Some(Prompt::Create)).await;
    w.script.then(StepOutcome::Failed {
        reference: "call-1".into(),
    });
    let next = w
        .engine
        .submit_email(w.open(&id).await, "otp@example.com", NOBODY)
        .await;
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the page with the error, got {next:?}");
    };
    assert_eq!(
        feedback.general,
        vec!["error.code_not_sent(reference=call-1)".to_owned()]
    );
    assert!(matches!(status, Status::Unavailable { .. }));
    assert!(w.outbox.letters().is_empty(), "no code was sent");

    // With the fallback, Usher's mailer sends the code the connector could not.
    w.script.then(StepOutcome::FellBack {
        reference: "call-2".into(),
    });
    let next = w.engine.resend_code(w.open(&id).await, NOBODY).await;
    assert!(
        matches!(
            next,
            Next::Step {
                status: Status::Ok,
                ..
            }
        ),
        "{next:?}"
    );
    let code = w.outbox.last_code("otp@example.com");
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, NOBODY).await,
        &id,
    );
    assert!(matches!(w.step(&id).await, FlowStep::SignUpPassword { .. }));
}

/// Ada's account (email + password, `displayName` "Ada"), made by a sign-up; the
/// session token of that sign-up.
async fn ada(w: &World) -> String {
    let id = local_sign_up_to_attributes(w, "ada@example.com").await;
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "Ada")]))
            .await,
    )
}

async fn ada_id(w: &World) -> String {
    w.store
        .user_by_identity(SignInType::EmailAddress, "id.example", "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id
}

/// A reset flow up to its code page for `email`; the flow and the code mailed.
async fn reset_to_code(w: &World, email: &str) -> (String, String) {
    let id = w.start_action(AccountAction::ResetPassword).await;
    w.engine
        .submit_email(w.open(&id).await, email, PERSON)
        .await;
    let code = w.outbox.last_code(email);
    (id, code)
}

/// The sign-in answer of a flow that came for an account action: signed in, then the
/// action's first page.
fn signed_in_to_action(next: Next, flow_id: &str) -> String {
    let Next::SignedIn { then, token, .. } = next else {
        panic!("expected a sign-in, got {next:?}");
    };
    shows_flow(&then, flow_id);
    token
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_a_code_and_every_session_ends() {
    let w = world(ConnectorSlots::default(), false).await;
    let old_session = ada(&w).await;
    let user_id = ada_id(&w).await;
    let before = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert!(before.password_changed_at.is_some());

    let id = w.start(None).await;
    shows_flow(&w.engine.forgot_password(w.open(&id).await).await, &id);
    assert!(matches!(
        w.step(&id).await,
        FlowStep::EnterEmail {
            purpose: CodePurpose::PasswordReset
        }
    ));
    let next = w
        .engine
        .submit_email(w.open(&id).await, "Ada@Example.com", PERSON)
        .await;
    shows_flow(&next, &id);
    assert!(matches!(
        w.outbox.letters().last(),
        Some((to, Letter::ResetCode { .. })) if to == "ada@example.com"
    ));
    // A wrong code counts like any other; the right one leads to the new password.
    let next = w
        .engine
        .submit_code(w.open(&id).await, "000000", PERSON)
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::BadRequest,
            ..
        }
    ));
    let code = w.outbox.last_code("ada@example.com");
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, PERSON).await,
        &id,
    );
    let FlowStep::NewPassword {
        current_required, ..
    } = w.step(&id).await
    else {
        panic!("expected the new-password page");
    };
    assert!(!current_required);
    // The same policy as a sign-up's password.
    let next = w
        .engine
        .submit_new_password(w.open(&id).await, "", "short", "short", PERSON)
        .await;
    let Next::Step { feedback, .. } = next else {
        panic!("expected the page again, got {next:?}");
    };
    assert_eq!(
        feedback.field_errors["password"],
        "error.password_too_short"
    );
    w.clock.advance(chrono::Duration::minutes(1));
    let new_session = signed_in(
        w.engine
            .submit_new_password(
                w.open(&id).await,
                "",
                "a brand new pass phrase",
                "a brand new pass phrase",
                PERSON,
            )
            .await,
    );
    // The old session (and its grants) ended; the new one is live.
    let old = w
        .store
        .session(&sha256_hex(old_session.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert!(old.ended_at.is_some());
    let new = w
        .store
        .session(&sha256_hex(new_session.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert!(new.ended_at.is_none());
    let after = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert_eq!(after.password_changed_at, Some(w.clock.now()));

    // The old password no longer signs in; the new one does.
    let id = w.start(None).await;
    let next = w
        .engine
        .sign_in(
            w.open(&id).await,
            "ada@example.com",
            "a long pass phrase 42",
            NOBODY,
        )
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::Unauthorized,
            ..
        }
    ));
    signed_in(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a brand new pass phrase",
                NOBODY,
            )
            .await,
    );
}

#[tokio::test]
async fn a_reset_for_an_address_without_a_password_looks_the_same_and_sends_no_code() {
    let w = world(ConnectorSlots::default(), false).await;
    // Grace signs in only with Google.
    w.store
        .create_user(usher_domain::NewUser {
            id: "grace".into(),
            email: Some("grace@example.com".into()),
            attributes: usher_domain::AttributeValues::new(),
            identities: vec![usher_domain::Identity::new(
                SignInType::Federated,
                "google.com",
                "g-1",
            )],
            password_hash: None,
            created_at: w.clock.now(),
            account_enabled: true,
            email_verified: true,
            profile: usher_domain::UserProfile::default(),
        })
        .await
        .unwrap();
    for (email, letter) in [
        ("nobody@example.com", Letter::ResetNoAccount),
        (
            "grace@example.com",
            Letter::ResetWithProvider {
                providers: vec!["Google".into()],
            },
        ),
    ] {
        let id = w.start_action(AccountAction::ResetPassword).await;
        // The application's reset starts at the reset's email page.
        assert!(matches!(
            w.step(&id).await,
            FlowStep::EnterEmail {
                purpose: CodePurpose::PasswordReset
            }
        ));
        let next = w
            .engine
            .submit_email(w.open(&id).await, email, PERSON)
            .await;
        // The same page as for an account with a password...
        shows_flow(&next, &id);
        let FlowStep::EnterCode { code, .. } = w.step(&id).await else {
            panic!("expected the code page");
        };
        // ...with no code that could work, and the mail saying why.
        assert_eq!(code.code_hash, None);
        assert_eq!(
            w.outbox.letters().last().unwrap(),
            &(email.to_owned(), letter)
        );
        let next = w
            .engine
            .submit_code(w.open(&id).await, "123456", PERSON)
            .await;
        assert!(matches!(
            next,
            Next::Step {
                status: Status::BadRequest,
                ..
            }
        ));
    }
}

#[tokio::test]
async fn an_account_recovery_connector_blocks_a_reset_or_lets_it_continue() {
    let w = world(
        ConnectorSlots {
            pre_account_recovery: vec!["recovery".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    ada(&w).await;
    let (id, code) = reset_to_code(&w, "ada@example.com").await;
    w.script.then(StepOutcome::Block {
        user_message: "This account is locked; call us.".into(),
        title: None,
    });
    let next = w.engine.submit_code(w.open(&id).await, &code, PERSON).await;
    let Next::Blocked { user_message, .. } = next else {
        panic!("expected the block page, got {next:?}");
    };
    assert_eq!(user_message, "This account is locked; call us.");
    let calls = w.script.calls();
    let call = calls.last().unwrap();
    assert_eq!(call.step, ConnectorStep::PreAccountRecovery);
    // The connector sees the account's attributes.
    assert_eq!(
        call.attributes["displayName"],
        AttributeValue::String("Ada".into())
    );
    // The password did not change.
    let id2 = w.start(None).await;
    signed_in(
        w.engine
            .sign_in(
                w.open(&id2).await,
                "ada@example.com",
                "a long pass phrase 42",
                NOBODY,
            )
            .await,
    );

    // Next time the connector continues: on to the new password.
    let (id, code) = reset_to_code(&w, "ada@example.com").await;
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, PERSON).await,
        &id,
    );
    assert!(matches!(w.step(&id).await, FlowStep::NewPassword { .. }));
}

#[tokio::test]
async fn changing_the_password_takes_the_current_one() {
    let w = world(ConnectorSlots::default(), false).await;
    ada(&w).await;
    let id = w.start_action(AccountAction::ChangePassword).await;
    assert!(matches!(w.step(&id).await, FlowStep::SignIn));
    signed_in_to_action(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a long pass phrase 42",
                PERSON,
            )
            .await,
        &id,
    );
    let FlowStep::NewPassword {
        current_required, ..
    } = w.step(&id).await
    else {
        panic!("expected the new-password page");
    };
    assert!(current_required);
    let next = w
        .engine
        .submit_new_password(
            w.open(&id).await,
            "not it",
            "a brand new pass phrase",
            "a brand new pass phrase",
            PERSON,
        )
        .await;
    let Next::Step {
        feedback, status, ..
    } = next
    else {
        panic!("expected the page again, got {next:?}");
    };
    assert_eq!(status, Status::Unauthorized);
    assert_eq!(
        feedback.field_errors["currentPassword"],
        "error.current_password_wrong"
    );
    assert_eq!(w.open(&id).await.flow.password_failures, 1);
    signed_in(
        w.engine
            .submit_new_password(
                w.open(&id).await,
                "a long pass phrase 42",
                "a brand new pass phrase",
                "a brand new pass phrase",
                PERSON,
            )
            .await,
    );
    let id = w.start(None).await;
    signed_in(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a brand new pass phrase",
                NOBODY,
            )
            .await,
    );
}

#[tokio::test]
async fn a_signed_in_browser_starts_at_the_action_and_an_account_without_a_password_has_none_to_change(
) {
    let w = world(ConnectorSlots::default(), false).await;
    let token = ada(&w).await;
    let session = w
        .store
        .session(&sha256_hex(token.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    let user = w.store.user_by_id(&session.user_id).await.unwrap().unwrap();
    let tenant = w.engine.live.tenant();
    let user_flow = tenant.user_flow(FLOW).cloned().unwrap();
    let app = tenant.application(CLIENT).cloned().unwrap();
    let mut req = request(None);
    req.account_action = Some(AccountAction::EditProfile);
    let id = w
        .engine
        .start_signed_in(req, (&app, &user_flow), "en", BROWSER, (&user, &session))
        .await
        .unwrap();
    let FlowStep::EditProfile { draft, .. } = w.step(&id).await else {
        panic!("expected the profile page");
    };
    assert_eq!(
        draft.prefill["displayName"],
        AttributeValue::String("Ada".into())
    );

    // Grace has no password: changing it is refused with a page that says why.
    w.store
        .create_user(usher_domain::NewUser {
            id: "grace".into(),
            email: Some("grace@example.com".into()),
            attributes: usher_domain::AttributeValues::new(),
            identities: vec![],
            password_hash: None,
            created_at: w.clock.now(),
            account_enabled: true,
            email_verified: true,
            profile: usher_domain::UserProfile::default(),
        })
        .await
        .unwrap();
    let grace = w.store.user_by_id("grace").await.unwrap().unwrap();
    let mut req = request(None);
    req.account_action = Some(AccountAction::ChangePassword);
    let id = w
        .engine
        .start_signed_in(req, (&app, &user_flow), "en", BROWSER, (&grace, &session))
        .await
        .unwrap();
    let FlowStep::Blocked { user_message, .. } = w.step(&id).await else {
        panic!("expected the block page");
    };
    assert_eq!(user_message, "account.no_password");
}

#[tokio::test]
async fn profile_editing_runs_the_connector_and_keeps_the_session() {
    let w = world(
        ConnectorSlots {
            on_profile_update: vec!["profile".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    ada(&w).await;
    let id = w.start_action(AccountAction::EditProfile).await;
    let token = signed_in_to_action(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a long pass phrase 42",
                PERSON,
            )
            .await,
        &id,
    );
    // The person's own mistakes come back before any connector runs.
    let calls_before = w.script.calls().len();
    let next = w
        .engine
        .submit_profile(w.open(&id).await, &form(&[("displayName", "")]))
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::BadRequest,
            ..
        }
    ));
    assert_eq!(w.script.calls().len(), calls_before);
    // The connector refuses a field...
    w.script.then(StepOutcome::ValidationError(PageMessage {
        user_message: "Please fix it.".into(),
        attribute_errors: [("displayName".to_owned(), "Not that name.".to_owned())].into(),
    }));
    let next = w
        .engine
        .submit_profile(w.open(&id).await, &form(&[("displayName", "Countess")]))
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::BadRequest,
            ..
        }
    ));
    let FlowStep::EditProfile { message, draft } = w.step(&id).await else {
        panic!("expected the profile page again");
    };
    assert_eq!(
        message.unwrap().attribute_errors["displayName"],
        "Not that name."
    );
    assert_eq!(
        draft.prefill["displayName"],
        AttributeValue::String("Countess".into())
    );
    // ...then overwrites what it is sent.
    w.script.then(StepOutcome::Continue {
        attributes: [(
            "displayName".to_owned(),
            AttributeValue::String("Ada Lovelace".into()),
        )]
        .into(),
        token_claims: serde_json::Map::new(),
    });
    let next = w
        .engine
        .submit_profile(w.open(&id).await, &form(&[("displayName", "Ada L.")]))
        .await;
    // Back to the application in the same session: no new sign-in.
    let Next::Redirect { location } = next else {
        panic!("expected the way back, got {next:?}");
    };
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    let calls = w.script.calls();
    assert_eq!(calls.last().unwrap().step, ConnectorStep::OnProfileUpdate);
    let user = w
        .store
        .user_by_id(&ada_id(&w).await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.attributes["displayName"],
        AttributeValue::String("Ada Lovelace".into())
    );
    let session = w
        .store
        .session(&sha256_hex(token.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert!(session.ended_at.is_none());
}

#[tokio::test]
async fn deleting_the_account_takes_a_fresh_code() {
    let w = world(ConnectorSlots::default(), false).await;
    ada(&w).await;
    let user_id = ada_id(&w).await;
    let id = w.start_action(AccountAction::DeleteAccount).await;
    signed_in_to_action(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a long pass phrase 42",
                PERSON,
            )
            .await,
        &id,
    );
    assert!(matches!(
        w.step(&id).await,
        FlowStep::ConfirmDeletion { .. }
    ));
    shows_flow(
        &w.engine.send_deletion_code(w.open(&id).await, PERSON).await,
        &id,
    );
    assert!(matches!(
        w.outbox.letters().last(),
        Some((to, Letter::DeletionCode { .. })) if to == "ada@example.com"
    ));
    // The code goes to the account's own address only.
    let next = w
        .engine
        .submit_email(w.open(&id).await, "mallory@example.com", PERSON)
        .await;
    assert!(!matches!(next, Next::ShowFlow { .. }));
    let code = w.outbox.last_code("ada@example.com");
    let next = w.engine.submit_code(w.open(&id).await, &code, PERSON).await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::Ok,
            ..
        }
    ));
    assert_eq!(w.step(&id).await, FlowStep::AccountDeleted);
    assert_eq!(w.store.user_by_id(&user_id).await.unwrap(), None);
    // Nobody signs in to it any more.
    let id = w.start(None).await;
    let next = w
        .engine
        .sign_in(
            w.open(&id).await,
            "ada@example.com",
            "a long pass phrase 42",
            NOBODY,
        )
        .await;
    assert!(matches!(
        next,
        Next::Step {
            status: Status::Unauthorized,
            ..
        }
    ));
}

#[tokio::test]
async fn a_reset_link_runs_the_recovery_connectors_works_once_and_expires() {
    let w = world(
        ConnectorSlots {
            pre_account_recovery: vec!["recovery".into()],
            ..ConnectorSlots::default()
        },
        false,
    )
    .await;
    ada(&w).await;
    let user = w
        .store
        .user_by_id(&ada_id(&w).await)
        .await
        .unwrap()
        .unwrap();
    let app = w.engine.live.tenant().application(CLIENT).cloned().unwrap();
    let link = |w: &World| match w.outbox.letters().last() {
        Some((_, Letter::ResetLink { url, minutes, .. })) => {
            assert_eq!(*minutes, 60);
            url.split("token=").nth(1).unwrap().to_owned()
        }
        other => panic!("expected a reset link, got {other:?}"),
    };
    w.engine
        .send_reset_link(&user, &app, "en", "admin")
        .await
        .unwrap();
    let token = link(&w);
    // A forged or tampered link is refused.
    for bad in [
        format!("{token}x"),
        token.replace('.', ""),
        "x.y".to_owned(),
    ] {
        assert!(matches!(
            w.engine.open_reset_link(&bad, "en", BROWSER).await,
            Err(Failure::BadRequest { .. })
        ));
    }
    let id = w
        .engine
        .open_reset_link(&token, "en", BROWSER)
        .await
        .unwrap();
    // The link stands in for the code: the recovery connectors run first.
    assert!(matches!(
        w.step(&id).await,
        FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PreAccountRecovery,
            ..
        }
    ));
    shows_flow(&w.engine.show(w.open(&id).await).await, &id);
    assert_eq!(
        w.script.calls().last().unwrap().step,
        ConnectorStep::PreAccountRecovery
    );
    let next = w
        .engine
        .submit_new_password(
            w.open(&id).await,
            "",
            "a linked pass phrase",
            "a linked pass phrase",
            PERSON,
        )
        .await;
    // Nobody is signed in.
    assert!(
        matches!(
            next,
            Next::Step {
                status: Status::Ok,
                ..
            }
        ),
        "{next:?}"
    );
    assert!(matches!(w.step(&id).await, FlowStep::LinkResetDone { .. }));
    // Used: refused now.
    assert!(w
        .engine
        .open_reset_link(&token, "en", BROWSER)
        .await
        .is_err());
    let kinds: Vec<_> = w
        .store
        .account_events(&user.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&usher_domain::AccountEventKind::PasswordReset));
    assert!(kinds.contains(&usher_domain::AccountEventKind::ResetLinkSent));

    // A new link expires after its hour.
    w.engine
        .send_reset_link(&user, &app, "en", "admin")
        .await
        .unwrap();
    let token = link(&w);
    w.clock.advance(chrono::Duration::minutes(61));
    assert!(w
        .engine
        .open_reset_link(&token, "en", BROWSER)
        .await
        .is_err());
}

#[tokio::test]
async fn an_action_acts_only_while_its_session_and_account_last() {
    let w = world(ConnectorSlots::default(), false).await;
    ada(&w).await;
    let user_id = ada_id(&w).await;
    // Signed out (every session ended) with the profile page still open: saving it
    // changes nothing.
    let id = w.start_action(AccountAction::EditProfile).await;
    signed_in_to_action(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a long pass phrase 42",
                PERSON,
            )
            .await,
        &id,
    );
    w.store
        .end_user_sessions(&user_id, w.clock.now())
        .await
        .unwrap();
    let next = w
        .engine
        .submit_profile(w.open(&id).await, &form(&[("displayName", "Mallory")]))
        .await;
    assert!(
        matches!(
            &next,
            Next::Failure {
                failure: Failure::BadRequest {
                    message_key: "error.account_changed",
                    ..
                },
                ..
            }
        ),
        "{next:?}"
    );
    let user = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    assert_eq!(
        user.attributes["displayName"],
        AttributeValue::String("Ada".into())
    );

    // Disabled after the reset's code was proven: no new password.
    let (id, code) = reset_to_code(&w, "ada@example.com").await;
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, PERSON).await,
        &id,
    );
    let mut disabled = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    disabled.account_enabled = false;
    w.store.update_user(&disabled).await.unwrap();
    let next = w
        .engine
        .submit_new_password(
            w.open(&id).await,
            "",
            "a taken-over phrase",
            "a taken-over phrase",
            PERSON,
        )
        .await;
    assert!(matches!(next, Next::Failure { .. }), "{next:?}");
    assert!(
        w.store
            .user_by_id(&user_id)
            .await
            .unwrap()
            .unwrap()
            .password_changed_at
            == disabled.password_changed_at
    );
}

#[tokio::test]
async fn a_sign_up_or_a_reset_in_an_action_flow_goes_back_to_the_application() {
    let w = world(ConnectorSlots::default(), false).await;
    // A new account made from an edit_profile request: back to the application.
    let id = w.start_action(AccountAction::EditProfile).await;
    shows_flow(&w.engine.go_to_sign_up(w.open(&id).await).await, &id);
    w.engine
        .submit_email(w.open(&id).await, "new@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("new@example.com");
    w.engine.submit_code(w.open(&id).await, &code, NOBODY).await;
    w.engine
        .submit_password(
            w.open(&id).await,
            "a long pass phrase 42",
            "a long pass phrase 42",
        )
        .await;
    signed_in(
        w.engine
            .submit_attributes(w.open(&id).await, &form(&[("displayName", "New")]))
            .await,
    );
    // A forgotten password in a change_password request: the reset is the change.
    let id = w.start_action(AccountAction::ChangePassword).await;
    shows_flow(&w.engine.forgot_password(w.open(&id).await).await, &id);
    w.engine
        .submit_email(w.open(&id).await, "new@example.com", NOBODY)
        .await;
    let code = w.outbox.last_code("new@example.com");
    shows_flow(
        &w.engine.submit_code(w.open(&id).await, &code, NOBODY).await,
        &id,
    );
    signed_in(
        w.engine
            .submit_new_password(
                w.open(&id).await,
                "",
                "another pass phrase",
                "another pass phrase",
                NOBODY,
            )
            .await,
    );
}

#[tokio::test]
async fn an_administrator_cannot_delete_their_own_account_here_and_a_link_works_once_in_a_race() {
    let w = world(ConnectorSlots::default(), false).await;
    ada(&w).await;
    let user_id = ada_id(&w).await;
    w.store
        .set_user_roles(&user_id, &["Usher.Admin".to_owned()], w.clock.now())
        .await
        .unwrap();
    let id = w.start_action(AccountAction::DeleteAccount).await;
    signed_in_to_action(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "a long pass phrase 42",
                PERSON,
            )
            .await,
        &id,
    );
    let FlowStep::Blocked { user_message, .. } = w.step(&id).await else {
        panic!("expected the block page");
    };
    assert_eq!(user_message, "account.administrator");

    // One link opened in two browsers: only the first new password lands.
    let user = w.store.user_by_id(&user_id).await.unwrap().unwrap();
    let app = w.engine.live.tenant().application(CLIENT).cloned().unwrap();
    w.engine
        .send_reset_link(&user, &app, "en", "admin")
        .await
        .unwrap();
    let Some((_, Letter::ResetLink { url, .. })) = w.outbox.letters().last().cloned() else {
        panic!("no link");
    };
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let first = w
        .engine
        .open_reset_link(&token, "en", BROWSER)
        .await
        .unwrap();
    let second = w
        .engine
        .open_reset_link(&token, "en", BROWSER)
        .await
        .unwrap();
    let done = w
        .engine
        .submit_new_password(
            w.open(&first).await,
            "",
            "the first phrase",
            "the first phrase",
            PERSON,
        )
        .await;
    assert!(
        matches!(
            done,
            Next::Step {
                status: Status::Ok,
                ..
            }
        ),
        "{done:?}"
    );
    let late = w
        .engine
        .submit_new_password(
            w.open(&second).await,
            "",
            "the second phrase",
            "the second phrase",
            PERSON,
        )
        .await;
    assert!(
        matches!(
            &late,
            Next::Failure {
                failure: Failure::BadRequest {
                    message_key: "error.reset_link_invalid",
                    ..
                },
                ..
            }
        ),
        "{late:?}"
    );
    let id = w.start(None).await;
    signed_in(
        w.engine
            .sign_in(
                w.open(&id).await,
                "ada@example.com",
                "the first phrase",
                NOBODY,
            )
            .await,
    );
}
