//! The code from the email: a sign-up's address proven, a passcode sign-in or
//! sign-up, a federated identity's address proven, an account proven for a link, a
//! password reset's address proven, or a deletion confirmed.

use usher_domain::{
    AttributeValues, CodePurpose, FlowError, FlowStep, Identity, Limit, SignInType,
};

use crate::{throttle::ClientAddress, Engine, Feedback, Loaded, Next, Status};

impl Engine {
    pub async fn submit_code(
        &self,
        mut loaded: Loaded,
        typed: &str,
        client: ClientAddress,
    ) -> Next {
        if !matches!(loaded.flow.step, FlowStep::EnterCode { .. }) {
            return self.as_is(loaded);
        }
        let code: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            // A typo in the format does not cost an attempt.
            let feedback =
                Feedback::default().field("code", self.text(&loaded, "error.code_format", &[]));
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        // Across flows: a new flow's fresh codes do not buy more guesses at an address.
        let email = loaded.flow.code_email().unwrap_or_default().to_owned();
        let address = client.subject();
        let reservation = match self
            .reserve(&[
                (Limit::CodeFailuresPerEmail, Some(email.as_str())),
                (Limit::CodeFailuresPerAddress, address.as_deref()),
            ])
            .await
        {
            Ok(r) => r,
            Err(t) => return self.throttled(loaded, t),
        };
        let candidate = self.code_hash(&loaded.flow.id, &code);
        let attempts = |flow: &usher_domain::Flow| match &flow.step {
            FlowStep::EnterCode { code, .. } => code.attempts,
            _ => 0,
        };
        let before = attempts(&loaded.flow);
        let result = loaded.flow.verify_code(&candidate, self.clock.now());
        // A wrong guess, the last one included (it answers "too many"), keeps its
        // count; a right code, or one refused without a guess, gives it back.
        let guessed_wrong = result.is_err() && attempts(&loaded.flow) > before;
        // Wrong codes are saved too: the attempt counter lives in the flow.
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        if !guessed_wrong {
            self.release(reservation).await;
        }
        let key = match result {
            Ok(CodePurpose::SignUp) => {
                // The address is proven now: a held or denied sign-up for it decides.
                let email = match &loaded.flow.step {
                    FlowStep::SignUpPassword { email } => email.clone(),
                    _ => String::new(),
                };
                return match self.returning(loaded, Some(&email), &[]).await {
                    Ok(loaded) => Next::show(&loaded),
                    Err(next) => *next,
                };
            }
            Ok(CodePurpose::OneTimePasscode) => {
                let email = loaded.flow.code_email().unwrap_or_default().to_owned();
                let identity = Identity {
                    sign_in_type: SignInType::Federated,
                    issuer: usher_domain::rules::PASSCODE_IDENTITY_ISSUER.into(),
                    issuer_assigned_id: email.clone(),
                    exact_issuer: None,
                };
                return self
                    .identity_verified(loaded, None, identity, Some(email), AttributeValues::new())
                    .await;
            }
            Ok(CodePurpose::FederatedEmail {
                identity,
                attributes,
            }) => {
                let email = loaded.flow.code_email().map(str::to_owned);
                return self
                    .identity_verified(loaded, None, identity, email, attributes)
                    .await;
            }
            Ok(CodePurpose::Link { user_id, identity }) => {
                return self.link_and_finish(loaded, &user_id, &identity).await;
            }
            // Boxed: the recovery's connector run would make every code's future
            // as large as its own.
            Ok(CodePurpose::PasswordReset) => {
                return Box::pin(self.recovery_code_proven(loaded)).await
            }
            Ok(CodePurpose::DeleteAccount { user_id }) => {
                return self.delete_account(loaded, &user_id).await;
            }
            Err(FlowError::WrongCode { attempts_left }) => {
                let feedback = Feedback::default().field(
                    "code",
                    self.text(
                        &loaded,
                        "error.code_wrong",
                        &[("left", attempts_left.to_string())],
                    ),
                );
                return Next::step(loaded, feedback, Status::BadRequest);
            }
            Err(FlowError::CodeExpired) => "error.code_expired",
            Err(FlowError::TooManyAttempts) => "error.code_too_many",
            Err(_) => return self.as_is(loaded),
        };
        let feedback = Feedback::default().field("code", self.text(&loaded, key, &[]));
        Next::step(loaded, feedback, Status::BadRequest)
    }
}
