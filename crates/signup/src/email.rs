//! The address to verify, and the code sent to it (a sign-up, a passcode sign-in, a
//! federated identity without a verified email, a link, a password reset, a
//! deletion). An address that already has an account gets an email saying so instead
//! of a sign-up code, and one without a password gets one saying why instead of a
//! reset code; the page looks the same either way, so it does not reveal who has an
//! account.

use usher_domain::{
    attribute::{is_plausible_email, normalize_email, BuiltInAttribute},
    flow::CODE_LIFETIME,
    CodePurpose, FlowError, FlowStep, Limit, SignInType,
};

use usher_connectors::{OtpContext, StepOutcome, StepRequest};
use usher_domain::{AttributeValues, ConnectorStep};

use crate::{throttle::ClientAddress, Engine, Feedback, Letter, Loaded, Next, Status};

/// The code page, with `notice` (a resend's) if any.
fn code_sent_page(loaded: Loaded, notice: Option<String>) -> Next {
    match notice {
        Some(n) => Next::step(loaded, Feedback::notice(n), Status::Ok),
        None => Next::show(&loaded),
    }
}

/// How the code went when a connector was to deliver it.
enum ByConnector {
    /// The user flow has no `emailOtpSend` connector: Usher's mailer sends it.
    NoConnector,
    Delivered,
    /// The connector failed and its policy is to fall back to the mailer.
    FellBack,
    Failed {
        reference: String,
    },
}

impl Engine {
    /// The email page's address.
    pub async fn submit_email(&self, loaded: Loaded, typed: &str, client: ClientAddress) -> Next {
        if !matches!(loaded.flow.step, FlowStep::EnterEmail { .. }) {
            return self.as_is(loaded);
        }
        let email = normalize_email(typed);
        let error_key = if email.is_empty() {
            Some("error.required")
        } else if email.chars().count() > BuiltInAttribute::Email.max_length()
            || !is_plausible_email(&email)
            || !self.postman.deliverable(&email)
        {
            Some("error.invalid_email")
        } else {
            None
        };
        if let Some(key) = error_key {
            let entered = [("email".to_owned(), vec![typed.to_owned()])].into();
            let feedback = Feedback::default()
                .entered(entered)
                .field("email", self.text(&loaded, key, &[]));
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        self.send_code(loaded, client, email, None).await
    }

    /// "Send a new code": to the address of the flow, never one from the form.
    pub async fn resend_code(&self, loaded: Loaded, client: ClientAddress) -> Next {
        let Some(email) = loaded.flow.code_email().map(str::to_owned) else {
            return self.as_is(loaded);
        };
        let notice = self.text(&loaded, "sign_up_code.resent", &[]);
        self.send_code(loaded, client, email, Some(notice)).await
    }

    /// On the link page: prove the existing account's address with a code.
    pub async fn link_with_code(&self, loaded: Loaded, client: ClientAddress) -> Next {
        let FlowStep::LinkAccount { link } = &loaded.flow.step else {
            return self.as_is(loaded);
        };
        let email = link.email.clone();
        self.send_code(loaded, client, email, None).await
    }

    /// Sends a code to `email` for the flow's current purpose and moves to the code
    /// page.
    pub(crate) async fn send_code(
        &self,
        mut loaded: Loaded,
        client: ClientAddress,
        email: String,
        notice: Option<String>,
    ) -> Next {
        if !loaded.flow.may_send_code() {
            return self.too_many_codes(loaded);
        }
        // Across flows: one address gets only so many mails, whoever asks, and one
        // source only so many sends. Counted before sending, so parallel requests
        // cannot slip past; the "you already have an account" mail counts the same, so
        // the limit tells nothing about which addresses have accounts. A send is never
        // given back.
        let address = client.subject();
        if let Err(t) = self
            .reserve(&[
                (Limit::CodesSentPerEmail, Some(email.as_str())),
                (Limit::CodesSentPerAddress, address.as_deref()),
            ])
            .await
        {
            return self.throttled(loaded, t);
        }
        let (code_hash, letter) = match self.letter_for(&loaded, &email).await {
            Ok(x) => x,
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        let written =
            match self
                .postman
                .write(&email, &loaded.flow.locale, &letter, Some(&loaded.flow.id))
            {
                Ok(w) => w,
                Err(e) => return self.fail_with(&loaded.flow.locale, e),
            };
        // The send is recorded (and saved) before the mail goes out, so parallel
        // requests cannot send more than the flow's allowance.
        match loaded
            .flow
            .code_sent(email.clone(), code_hash, self.clock.now())
        {
            Ok(()) => {}
            Err(FlowError::TooManyCodes) => return self.too_many_codes(loaded),
            Err(_) => return self.as_is(loaded),
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        if let Letter::Code { code, .. }
        | Letter::ResetCode { code, .. }
        | Letter::DeletionCode { code, .. } = &letter
        {
            match self.deliver_by_connector(&loaded, &email, code).await {
                ByConnector::Delivered => return code_sent_page(loaded, notice),
                ByConnector::Failed { reference } => {
                    let feedback =
                        self.say(&loaded, "error.code_not_sent", &[("reference", reference)]);
                    return Next::step(
                        loaded,
                        feedback,
                        Status::Unavailable {
                            retry_after_seconds: None,
                        },
                    );
                }
                ByConnector::NoConnector | ByConnector::FellBack => {}
            }
        }
        if let Err(e) = self.postman.deliver(&email, written).await {
            tracing::warn!(error = %e, flow_id = %loaded.flow.id, "could not send the sign-up email");
            let feedback = self.say(&loaded, "error.email_delivery", &[]);
            return Next::step(
                loaded,
                feedback,
                Status::Unavailable {
                    retry_after_seconds: None,
                },
            );
        }
        code_sent_page(loaded, notice)
    }

    /// The user flow's `emailOtpSend` connector delivers the code, if it has one.
    async fn deliver_by_connector(&self, loaded: &Loaded, email: &str, code: &str) -> ByConnector {
        // The user flow's own, else the first extension listening for the
        // application (whose fallback then decides).
        let snapshot = self.live.snapshot();
        let listener = usher_domain::event_listener::listening(
            &snapshot.event_listeners,
            ConnectorStep::EmailOtpSend,
            &loaded.app.client_id,
        )
        .into_iter()
        .next();
        let (connector_ids, fall_back) = if loaded.user_flow.connectors.email_otp_send.is_empty() {
            match listener {
                Some(l) => (vec![l.extension_id.clone()], l.fall_back_to_mailer),
                None => return ByConnector::NoConnector,
            }
        } else {
            (loaded.user_flow.connectors.email_otp_send.clone(), false)
        };
        let connector_ids = &connector_ids;
        let request_type = match &loaded.flow.step {
            FlowStep::EnterCode {
                purpose: CodePurpose::SignUp | CodePurpose::FederatedEmail { .. },
                ..
            } => "signUp",
            _ => "signIn",
        };
        let ui_locales = loaded
            .flow
            .authorization
            .end_user_locales(&loaded.flow.locale);
        let run_key = format!("{}.EmailOtpSend.{}", loaded.flow.id, self.random.new_id());
        let outcome = self
            .live
            .connectors()
            .run(StepRequest {
                step: ConnectorStep::EmailOtpSend,
                flow_id: &loaded.flow.id,
                user_flow_id: &loaded.user_flow.id,
                connector_ids,
                client_id: &loaded.app.client_id,
                ui_locales: &ui_locales,
                email: Some(email),
                identities: &[],
                attributes: &AttributeValues::new(),
                run_key: Some(&run_key),
                client_ip: loaded.client.0,
                user: None,
                otp: Some(OtpContext {
                    identifier: email,
                    code,
                    request_type,
                }),
            })
            .await;
        match outcome {
            StepOutcome::Continue { .. } => ByConnector::Delivered,
            StepOutcome::FellBack { reference } => {
                tracing::warn!(%reference, flow_id = %loaded.flow.id, "the emailOtpSend connector failed; the code goes by mail instead");
                ByConnector::FellBack
            }
            StepOutcome::Failed { reference } if fall_back => {
                tracing::warn!(%reference, flow_id = %loaded.flow.id, "the emailOtpSend listener's extension failed; the code goes by mail instead");
                ByConnector::FellBack
            }
            StepOutcome::Failed { reference } => ByConnector::Failed { reference },
            // The contract has no other answer at this step; the runner reports
            // anything else as a failure.
            StepOutcome::Block { .. } | StepOutcome::ValidationError(_) => ByConnector::Failed {
                reference: loaded.flow.id.clone(),
            },
        }
    }

    /// The flow has sent all the codes it may: the page says so.
    fn too_many_codes(&self, loaded: Loaded) -> Next {
        let feedback = self.say(&loaded, "error.too_many_codes", &[]);
        Next::step(
            loaded,
            feedback,
            Status::TooManyRequests {
                retry_after_seconds: None,
            },
        )
    }

    /// What to mail `email` now, and the stored form of its code: a new code, or —
    /// for a local sign-up to an address that has an account — the mail saying so,
    /// with no code that could work.
    async fn letter_for(
        &self,
        loaded: &Loaded,
        email: &str,
    ) -> Result<(Option<String>, Letter), usher_storage::StorageError> {
        let reset = matches!(
            loaded.flow.step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::PasswordReset
            } | FlowStep::EnterCode {
                purpose: CodePurpose::PasswordReset,
                ..
            }
        );
        if reset {
            let mail = self.reset_mail(email, &loaded.flow.locale).await?;
            if !matches!(mail, crate::account::ResetMail::Code) {
                return Ok((None, mail.letter(None)));
            }
            let code = self.random.new_code(6);
            let hash = self.code_hash(&loaded.flow.id, &code);
            return Ok((Some(hash), mail.letter(Some(code))));
        }
        let deletion = matches!(
            loaded.flow.step,
            FlowStep::ConfirmDeletion { .. }
                | FlowStep::EnterCode {
                    purpose: CodePurpose::DeleteAccount { .. },
                    ..
                }
        );
        if deletion {
            let code = self.random.new_code(6);
            let hash = self.code_hash(&loaded.flow.id, &code);
            let letter = Letter::DeletionCode {
                code,
                minutes: CODE_LIFETIME.num_minutes(),
            };
            return Ok((Some(hash), letter));
        }
        // Only a local sign-up must hide whether the address has an account; one-time
        // passcodes sign in or up either way, and a link code goes to the account's
        // own address.
        let local_sign_up = matches!(
            loaded.flow.step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::SignUp
            } | FlowStep::EnterCode {
                purpose: CodePurpose::SignUp,
                ..
            }
        );
        if local_sign_up
            && self
                .store
                .user_by_identity(
                    SignInType::EmailAddress,
                    &self.settings.local_issuer(),
                    email,
                )
                .await?
                .is_some()
        {
            return Ok((None, Letter::AccountExists));
        }
        let code = self.random.new_code(6);
        let hash = self.code_hash(&loaded.flow.id, &code);
        Ok((
            Some(hash),
            Letter::Code {
                code,
                minutes: CODE_LIFETIME.num_minutes(),
            },
        ))
    }

    /// The stored form of a code: an HMAC bound to the flow, so a database reader
    /// cannot brute-force six digits offline and a code from one flow is useless in
    /// another.
    pub(crate) fn code_hash(&self, flow_id: &str, code: &str) -> String {
        self.code_key
            .sign_hex(format!("{flow_id}:{code}").as_bytes())
    }
}
