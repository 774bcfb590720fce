//! Email delivery: SMTP in production; a file outbox (one `.eml` per message) for the
//! demo and tests, which read the codes back from it.

use std::path::PathBuf;

use usher_signup::{Letter, MailFailure, Written};

use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("could not write to the outbox: {0}")]
    Outbox(#[from] std::io::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

pub enum Transport {
    /// Writes each message to `<dir>/<time>-<n>.eml`.
    File {
        dir: PathBuf,
    },
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// How to reach the SMTP server.
pub struct SmtpOptions {
    pub host: String,
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    None,
}

/// The address as the mailer will send to it, or why it will not: what a form accepts
/// is checked with this same function before anything is promised to the person.
/// A bare address only: a display name could otherwise carry a second address and send
/// the mail somewhere other than the address stored.
pub fn deliverable(to: &str) -> Result<lettre::Address, MailError> {
    let address: lettre::Address = to.parse().map_err(|_| MailError::Address(to.to_owned()))?;
    if address.to_string() != to {
        return Err(MailError::Address(to.to_owned()));
    }
    Ok(address)
}

pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    /// Whether sign-up codes are also written to the log (demo and development).
    pub log_codes: bool,
}

impl Mailer {
    pub fn new(from: &str, transport: Transport, log_codes: bool) -> Result<Self, MailError> {
        let from = from
            .parse()
            .map_err(|_| MailError::Address(from.to_owned()))?;
        Ok(Self {
            from,
            transport,
            log_codes,
        })
    }

    pub fn smtp(options: SmtpOptions) -> Result<Transport, MailError> {
        let builder = match options.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&options.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&options.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&options.host),
        };
        let mut builder = builder.port(options.port);
        if let (Some(user), Some(pass)) = (options.username, options.password) {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to = Mailbox::new(None, deliverable(to)?);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        match &self.transport {
            Transport::File { dir } => {
                tokio::fs::create_dir_all(dir).await?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                #[allow(
                    clippy::disallowed_methods,
                    reason = "a unique file name in the mail outbox"
                )]
                let name = format!(
                    "{}-{:09}-{:08x}.eml",
                    now.as_secs(),
                    now.subsec_nanos(),
                    rand::random::<u32>()
                );
                // Write then rename, so a reader never sees half a message.
                let tmp = dir.join(format!(".{name}.tmp"));
                tokio::fs::write(&tmp, message.formatted()).await?;
                tokio::fs::rename(&tmp, dir.join(name)).await?;
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
        }
        Ok(())
    }
}

/// The engine's mail, written from the templates in the person's language and
/// delivered by the [`Mailer`].
pub struct Postman {
    pub templates: std::sync::Arc<crate::templates::Templates>,
    pub mailer: std::sync::Arc<Mailer>,
}

#[async_trait::async_trait]
impl usher_signup::Postman for Postman {
    fn deliverable(&self, to: &str) -> bool {
        deliverable(to).is_ok()
    }

    fn write(
        &self,
        to: &str,
        locale: &str,
        letter: &Letter,
        flow_id: Option<&str>,
    ) -> Result<Written, MailFailure> {
        let catalogue = self.templates.catalogue();
        let (template, subject, context) = match letter {
            Letter::Code { code, minutes } => {
                if self.mailer.log_codes {
                    tracing::info!(flow_id = flow_id.unwrap_or_default(), email = %to, code = %code, "sign-up code (log_codes is on)");
                }
                (
                    "email_code.txt",
                    catalogue.message(locale, "email.code.subject", &[("code", code.clone())]),
                    serde_json::json!({ "code": code, "minutes": minutes.to_string() }),
                )
            }
            Letter::ResetCode { code, minutes } => {
                if self.mailer.log_codes {
                    tracing::info!(flow_id = flow_id.unwrap_or_default(), email = %to, code = %code, "password reset code (log_codes is on)");
                }
                (
                    "email_reset_code.txt",
                    catalogue.message(
                        locale,
                        "email.reset_code.subject",
                        &[("code", code.clone())],
                    ),
                    serde_json::json!({ "code": code, "minutes": minutes.to_string() }),
                )
            }
            Letter::DeletionCode { code, minutes } => {
                if self.mailer.log_codes {
                    tracing::info!(flow_id = flow_id.unwrap_or_default(), email = %to, code = %code, "account deletion code (log_codes is on)");
                }
                (
                    "email_deletion_code.txt",
                    catalogue.message(
                        locale,
                        "email.deletion_code.subject",
                        &[("code", code.clone())],
                    ),
                    serde_json::json!({ "code": code, "minutes": minutes.to_string() }),
                )
            }
            Letter::ResetLink {
                url,
                application,
                minutes,
            } => (
                "email_reset_link.txt",
                catalogue.message(
                    locale,
                    "email.reset_link.subject",
                    &[("application", application.clone())],
                ),
                serde_json::json!({ "url": url, "application": application, "minutes": minutes.to_string() }),
            ),
            Letter::ResetNoAccount => (
                "email_reset_no_account.txt",
                catalogue.message(locale, "email.reset_no_account.subject", &[]),
                serde_json::json!({}),
            ),
            Letter::ResetWithProvider { providers } => (
                "email_reset_provider.txt",
                catalogue.message(locale, "email.reset_provider.subject", &[]),
                serde_json::json!({ "providers": providers.join(", ") }),
            ),
            Letter::AccountExists => (
                "email_account_exists.txt",
                catalogue.message(locale, "email.exists.subject", &[]),
                serde_json::json!({}),
            ),
            Letter::Approved => (
                "email_approved.txt",
                catalogue.message(locale, "email.approved.subject", &[]),
                serde_json::json!({}),
            ),
            Letter::Denied { reason } => (
                "email_denied.txt",
                catalogue.message(locale, "email.denied.subject", &[]),
                serde_json::json!({ "reason": reason }),
            ),
        };
        let body = self
            .templates
            .render(template, locale, &context)
            .map_err(|e| MailFailure(format!("{template}: {e}")))?;
        Ok(Written { subject, body })
    }

    async fn deliver(&self, to: &str, written: Written) -> Result<(), MailFailure> {
        self.mailer
            .send(to, &written.subject, written.body)
            .await
            .map_err(|e| MailFailure(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::deliverable;
    use usher_domain::attribute::is_plausible_email;

    proptest::proptest! {
        /// Every address the pages accept is one the mailer sends to.
        #[test]
        fn what_the_pages_accept_the_mailer_sends_to(
            local in "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\\-\u{202e}\u{200b}\u{fffd}åπ\"<> ()]{1,12}",
            domain in "[a-z0-9.\\-\u{202e}ø]{1,12}",
        ) {
            let address = format!("{local}@{domain}");
            if is_plausible_email(&address) {
                proptest::prop_assert!(deliverable(&address).is_ok(), "{address:?}");
            }
        }
    }

    #[test]
    fn an_override_is_neither_accepted_nor_sent() {
        let address = "\u{202e}evil@example.com";
        assert!(deliverable(address).is_err());
        assert!(!is_plausible_email(address));
        assert!(deliverable("ada@example.com").is_ok());
    }
}
