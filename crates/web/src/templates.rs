//! Page and email templates. The built-in templates are compiled in; an operator's
//! directory of templates with the same names replaces them for branding. Every
//! template gets `t(key, name=value…)`, which looks messages up in the page's locale.

use std::{path::Path, sync::Arc};

use minijinja::{value::Kwargs, Environment, ErrorKind, State, UndefinedBehavior, Value};
use serde::Serialize;

use crate::i18n::{Catalogue, DEFAULT_LOCALE};

/// The built-in templates: (name, source).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("_field.html", include_str!("../templates/_field.html")),
    ("_cancel.html", include_str!("../templates/_cancel.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    (
        "sign_up_email.html",
        include_str!("../templates/sign_up_email.html"),
    ),
    (
        "sign_up_code.html",
        include_str!("../templates/sign_up_code.html"),
    ),
    (
        "sign_up_password.html",
        include_str!("../templates/sign_up_password.html"),
    ),
    (
        "sign_up_attributes.html",
        include_str!("../templates/sign_up_attributes.html"),
    ),
    (
        "new_password.html",
        include_str!("../templates/new_password.html"),
    ),
    (
        "edit_profile.html",
        include_str!("../templates/edit_profile.html"),
    ),
    (
        "confirm_deletion.html",
        include_str!("../templates/confirm_deletion.html"),
    ),
    (
        "account_deleted.html",
        include_str!("../templates/account_deleted.html"),
    ),
    (
        "password_changed.html",
        include_str!("../templates/password_changed.html"),
    ),
    (
        "reset_link.html",
        include_str!("../templates/reset_link.html"),
    ),
    (
        "email_reset_link.txt",
        include_str!("../templates/email_reset_link.txt"),
    ),
    (
        "email_reset_code.txt",
        include_str!("../templates/email_reset_code.txt"),
    ),
    (
        "email_reset_no_account.txt",
        include_str!("../templates/email_reset_no_account.txt"),
    ),
    (
        "email_reset_provider.txt",
        include_str!("../templates/email_reset_provider.txt"),
    ),
    (
        "email_deletion_code.txt",
        include_str!("../templates/email_deletion_code.txt"),
    ),
    ("link.html", include_str!("../templates/link.html")),
    ("blocked.html", include_str!("../templates/blocked.html")),
    ("pending.html", include_str!("../templates/pending.html")),
    ("working.html", include_str!("../templates/working.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "signed_out.html",
        include_str!("../templates/signed_out.html"),
    ),
    (
        "logout_confirm.html",
        include_str!("../templates/logout_confirm.html"),
    ),
    ("index.html", include_str!("../templates/index.html")),
    ("try.html", include_str!("../templates/try.html")),
    (
        "try_result.html",
        include_str!("../templates/try_result.html"),
    ),
    (
        "console_base.html",
        include_str!("../templates/console_base.html"),
    ),
    (
        "console_message.html",
        include_str!("../templates/console_message.html"),
    ),
    (
        "console_overview.html",
        include_str!("../templates/console_overview.html"),
    ),
    (
        "console_requests.html",
        include_str!("../templates/console_requests.html"),
    ),
    (
        "console_users.html",
        include_str!("../templates/console_users.html"),
    ),
    (
        "console_user.html",
        include_str!("../templates/console_user.html"),
    ),
    (
        "console_user_delete.html",
        include_str!("../templates/console_user_delete.html"),
    ),
    (
        "console_request_deny.html",
        include_str!("../templates/console_request_deny.html"),
    ),
    (
        "console_flows.html",
        include_str!("../templates/console_flows.html"),
    ),
    (
        "console_connectors.html",
        include_str!("../templates/console_connectors.html"),
    ),
    (
        "console_connector.html",
        include_str!("../templates/console_connector.html"),
    ),
    (
        "console_call.html",
        include_str!("../templates/console_call.html"),
    ),
    (
        "email_code.txt",
        include_str!("../templates/email_code.txt"),
    ),
    (
        "email_account_exists.txt",
        include_str!("../templates/email_account_exists.txt"),
    ),
    (
        "email_approved.txt",
        include_str!("../templates/email_approved.txt"),
    ),
    (
        "email_denied.txt",
        include_str!("../templates/email_denied.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {source}")]
    Invalid {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("could not read template override {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Templates {
    env: Environment<'static>,
    catalogue: Arc<Catalogue>,
}

impl Templates {
    /// Loads the built-in templates, replaced by any file of the same name in
    /// `override_dir`. Every template is parsed now, so a broken override stops
    /// start-up rather than a page.
    pub fn new(
        catalogue: Arc<Catalogue>,
        override_dir: Option<&Path>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, builtin) in BUILT_IN {
            let source = match override_dir.map(|d| d.join(name)) {
                Some(path) if path.is_file() => {
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                _ => (*builtin).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|source| TemplateError::Invalid {
                    name: (*name).to_owned(),
                    source,
                })?;
        }
        let c = catalogue.clone();
        env.add_function(
            "t",
            move |state: &State, key: &str, kwargs: Kwargs| -> Result<String, minijinja::Error> {
                let locale = state
                    .lookup("locale")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| DEFAULT_LOCALE.to_owned());
                let mut args = Vec::new();
                for name in kwargs.args() {
                    let v: Value = kwargs.get(name)?;
                    args.push((name, v.to_string()));
                }
                if !c.has(key) {
                    return Err(minijinja::Error::new(
                        ErrorKind::UndefinedError,
                        format!("message {key:?} is not in the catalogue"),
                    ));
                }
                Ok(c.message(&locale, key, &args))
            },
        );
        Ok(Self { env, catalogue })
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Renders `name` with the page context `ctx` in `locale`.
    pub fn render<C: Serialize>(
        &self,
        name: &str,
        locale: &str,
        ctx: &C,
    ) -> Result<String, minijinja::Error> {
        let template = self.env.get_template(name)?;
        template.render(minijinja::context! { locale => locale, ..Value::from_serialize(ctx) })
    }
}

impl usher_signup::Messages for Templates {
    fn text(&self, locale: &str, key: &str, args: &[(&str, String)]) -> String {
        self.catalogue.message(locale, key, args)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::i18n::SUPPORTED;

    fn templates() -> Templates {
        Templates::new(Arc::new(Catalogue::load().unwrap()), None).unwrap()
    }

    fn field(id: &str, kind: &str) -> serde_json::Value {
        json!({
            "id": id, "label": format!("Label {id}"), "kind": kind, "value": "v",
            "required": kind != "checkbox", "error": "An error", "hint": "A hint",
            "autocomplete": null, "inputmode": null, "maxlength": 10,
            "options": [{"label": "A", "value": "a", "selected": true}, {"label": "B", "value": "b", "selected": false}],
        })
    }

    /// A context with every variable any page uses, so each template renders fully.
    fn context() -> serde_json::Value {
        let fields: Vec<_> = [
            "text",
            "email",
            "password",
            "checkbox",
            "radio",
            "select",
            "checkboxes",
        ]
        .iter()
        .map(|k| field(&format!("f_{k}"), k))
        .collect();
        json!({
            "title_key": "sign_in.title",
            "flow_id": "f", "csrf": "c", "email": "a@example.com", "minutes": 10,
            "local_accounts": true, "sign_up": true, "notice": "Notice", "intro": "Intro",
            "providers": [{"id": "Google-OAUTH", "label": "Continue with Google", "mark": "G"}],
            "errors": [{"field": "email", "message": "Wrong"}, {"field": null, "message": "General"}],
            "fields": fields,
            "user_message": "<b>blocked</b>", "reason": "Outside the pilot.", "back_url": "https://app.example/cb?error=access_denied",
            "message": "Message", "reference": "ref-1",
            "post_logout_redirect_uri": "https://app.example/out", "client_id": "app", "state": "s",
            "demo": true, "enabled": true,
            "error": null, "error_description": null,
            "claims": [{"name": "sub", "value": "u"}], "header": "{}", "id_token": "a.b.c",
            "logout_url": "/logout", "code": "123456", "token": "eyJ1Ijoi.c2ln",
            "console": {"section": "users", "admin": "<b>blocked</b>", "csrf": "console-csrf"},
            "page": console_page(),
        })
    }

    /// Every field any console page reads (`page.*`), with text to escape.
    fn console_page() -> serde_json::Value {
        let time = json!({"iso": "2024-05-01T12:00:00Z", "text": "2024-05-01 12:00:00 UTC"});
        let identity = json!({"sign_in_type": "emailAddress", "issuer": "usher.example", "issuer_assigned_id": "<b>blocked</b>"});
        let pair = json!({"label": "Display name", "value": "<b>blocked</b>"});
        let breaker = json!({"state": "closed", "label": "Closed"});
        let health = json!({"calls": 4, "failures": 1, "failure_rate": "25.0 %", "refused": 0, "p50": 20, "p95": null, "p99": 3000});
        let request = |status: &str| {
            json!({
                "id": "r1", "email": "<b>blocked</b>", "user_flow_id": "B2X_1_f",
                "identities": [identity], "attributes": [pair], "created": time,
                "status": status, "status_label": "Denied", "decided_by": "Admin",
                "decided_at": time, "user_url": "/console/users/u1",
                "approve_url": "/console/requests/r1/approve", "deny_url": "/console/requests/r1/deny",
                "clear_url": "/console/requests/r1/clear",
            })
        };
        // In parts: one `json!` this big exceeds the macro recursion limit.
        let parts = [
            json!({
                "message": "<b>blocked</b>", "link": {"href": "/console", "label": "Go on"}, "refresh": 0,
                "pending_count": {"value": 3, "more": false}, "user_count": {"value": 1000, "more": true},
                "flow_count": 2,
                "connectors": [{
                    "id": "c1", "name": "<b>blocked</b>", "url": "/console/connectors/c1",
                    "target_url": "https://api.example/x", "authentication": "None",
                    "breaker": breaker, "health": health,
                }],
                "pending": [request("pending")], "decided": [request("denied"), request("approved")],
                "next_url": "/console/users?after=u1", "first_url": "/console/users",
            }),
            json!({
                "search": "<b>blocked</b>", "search_error": "Use at most 100 characters.", "search_max": 100,
                "users": [{"url": "/console/users/u1", "email": "<b>blocked</b>", "name": "Ann", "enabled": false, "created": time}],
                "id": "u1", "email": "a@example.com", "name": "<b>blocked</b>", "enabled": true,
                "created": time, "roles": ["Usher.Admin"], "attributes": [pair], "identities": [identity],
                "enabled_url": "/console/users/u1/enabled", "delete_url": "/console/users/u1/delete",
                "is_self": false, "identity_count": 1, "cancel_url": "/console/users/u1",
                "events": [{"what": "Reset a forgotten password", "at": time, "application": "App"}],
                "reset_link_url": "/console/users/u1/reset-link",
                "reset_applications": [{"label": "App", "value": "app"}],
                "user_flow_id": "B2X_1_f", "deny_url": "/console/requests/r1/deny", "reason_max": 500,
            }),
            json!({
                "flows": [{
                    "id": "B2X_1_f", "providers": ["Email and password"],
                    "attributes": [{"id": "displayName", "label": "<b>blocked</b>", "input": "textBox", "required": true, "claim": false}],
                    "extra_claims": ["email"],
                    "steps": [{"name": "Before a token is issued", "connectors": [{"id": "c1", "url": "/console/connectors/c1"}]}],
                    "requires_approval": true, "applications": ["App (app)"],
                }],
                "window": 200,
                "target_url": "https://api.example/x", "authentication": "None", "timeout_ms": 10000,
                "retries": 1, "budget_ms": 20000, "failure_policy": "Stop the sign-up", "signing": true,
                "breaker": breaker, "breaker_threshold": 5, "breaker_open_seconds": 30,
                "used_by": [{"user_flow_id": "B2X_1_f", "step": "postAttributeCollection"}],
                "health": health,
            }),
            json!({
                "calls": [{
                    "url": "/console/calls/k1", "call_id": "k1", "created": time,
                    "step": "PostAttributeCollection", "user_flow_id": "B2X_1_f", "outcome": "failed",
                    "http_status": null, "latency_ms": 3000, "attempts": 2, "failure_reason": "<b>blocked</b>",
                    "error_code": 1_003_002,
                }],
                "call_id": "k1", "connector_id": "c1", "user_flow_id": "B2X_1_f", "connector_url": "/console/connectors/c1",
                "step": "PostAttributeCollection", "flow_id": "f1", "attempts": 2, "http_status": 200,
                "latency_ms": 31, "outcome": "continue", "failure_reason": null, "error_code": 1_003_005, "warnings": ["<b>blocked</b>"],
                "request_body": "<b>blocked</b>", "response_body": null,
            }),
        ];
        let mut page = serde_json::Map::new();
        for part in parts {
            if let serde_json::Value::Object(fields) = part {
                page.extend(fields);
            }
        }
        serde_json::Value::Object(page)
    }

    #[test]
    fn every_template_renders_in_every_locale() {
        let t = templates();
        for (name, _) in BUILT_IN {
            if name.starts_with('_') || *name == "base.html" {
                continue;
            }
            for locale in SUPPORTED {
                let out = t
                    .render(name, locale, &context())
                    .unwrap_or_else(|e| panic!("{name} in {locale}: {e:#}"));
                assert!(!out.is_empty());
                if std::path::Path::new(name)
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("html"))
                {
                    assert!(out.contains(&format!("<html lang=\"{locale}\">")), "{name}");
                    // Text from elsewhere is escaped, never markup.
                    assert!(!out.contains("<b>blocked</b>"), "{name}");
                }
            }
        }
    }

    #[test]
    fn every_message_a_template_uses_is_in_the_catalogue() {
        let c = Catalogue::load().unwrap();
        for (name, source) in BUILT_IN {
            for part in source.split("t(\"").skip(1) {
                let key = part.split('"').next().unwrap();
                assert!(
                    c.has(key),
                    "{name} uses {key:?}, which is not in the catalogue"
                );
            }
        }
    }

    #[test]
    fn fields_are_labelled_and_errors_tied_to_them() {
        let t = templates();
        let out = t
            .render("sign_up_attributes.html", "en", &context())
            .unwrap();
        for kind in ["text", "email", "password", "select"] {
            let id = format!("f_{kind}");
            assert!(out.contains(&format!("<label for=\"{id}\">")), "{kind}");
            assert!(
                out.contains(&format!("aria-describedby=\"{id}-hint {id}-error\"")),
                "{kind}"
            );
            assert!(out.contains(&format!("id=\"{id}-error\"")), "{kind}");
        }
        // Groups are fieldsets with a legend, each choice labelled.
        assert!(out.contains("<legend>Label f_radio"));
        assert!(out.contains("<label for=\"f_radio-1\">A</label>"));
        // Passwords are never echoed back.
        assert!(!out.contains("id=\"f_password\" name=\"f_password\" value="));
    }

    #[test]
    fn console_forms_carry_csrf_and_the_search_error_is_tied_to_its_field() {
        let t = templates();
        let mut ctx = context();
        ctx["errors"] = json!([{"field": "search", "message": "Use at most 100 characters."}]);
        let out = t.render("console_users.html", "en", &ctx).unwrap();
        assert!(out.contains("<label for=\"search\">"));
        assert!(out.contains("aria-describedby=\"search-hint search-error\""));
        assert!(out.contains("id=\"search-error\""));
        assert!(
            out.contains("href=\"#search\""),
            "the summary links to the field"
        );
        for page in [
            "console_requests.html",
            "console_user.html",
            "console_user_delete.html",
        ] {
            let out = t.render(page, "en", &context()).unwrap();
            let forms = out.matches("method=\"post\"").count();
            assert!(forms > 1, "{page}");
            assert_eq!(
                out.matches("name=\"csrf\" value=\"console-csrf\"").count(),
                forms,
                "{page}: every form carries the token"
            );
        }
        // The navigation marks where one is.
        let out = t.render("console_users.html", "nb", &context()).unwrap();
        assert!(out.contains("aria-current=\"page\">Brukere<"));
        assert_eq!(out.matches("aria-current").count(), 1);
    }

    #[test]
    fn an_override_directory_replaces_a_template() {
        let dir = std::env::temp_dir().join(format!("usher-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("index.html"),
            "<p>Contoso {{ t(\"index.title\") }}</p>",
        )
        .unwrap();
        let t = Templates::new(Arc::new(Catalogue::load().unwrap()), Some(&dir)).unwrap();
        assert_eq!(
            t.render("index.html", "en", &context()).unwrap(),
            "<p>Contoso Usher</p>"
        );
        // Others stay built in.
        assert!(t
            .render("error.html", "en", &context())
            .unwrap()
            .contains("<!doctype html>"));
        // A broken override stops start-up with the template's name.
        std::fs::write(dir.join("index.html"), "{% if %}").unwrap();
        let err = Templates::new(Arc::new(Catalogue::load().unwrap()), Some(&dir))
            .err()
            .unwrap();
        assert!(err.to_string().contains("index.html"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
