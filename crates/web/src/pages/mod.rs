//! The sign-up and sign-in pages: one module per endpoint, sharing the page context
//! types, the flow loader and the renderer of the current step.

pub mod account;
pub mod attributes;
pub mod cancel;
pub mod code;
pub mod email;
pub mod federated;
pub mod link;
pub mod password;
pub mod show;
pub mod sign_in;
pub mod try_demo;
pub mod upstream;

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use usher_domain::{
    attribute::BuiltInAttribute, flow::CODE_LIFETIME, CodePurpose, FlowStep, UserFlow,
    UserInputType,
};
pub use usher_signup::{Failure as PageError, Feedback, Loaded, Next, Status};

use crate::{cookies, i18n, state::AppState};

/// One input on a page.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Field {
    pub id: String,
    pub label: String,
    /// `text`, `email`, `password`, `checkbox`, `radio`, `select` or `checkboxes`.
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub error: Option<String>,
    pub hint: Option<String>,
    pub autocomplete: Option<&'static str>,
    pub inputmode: Option<&'static str>,
    pub maxlength: Option<usize>,
    pub options: Vec<FieldOption>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldOption {
    pub label: String,
    pub value: String,
    pub selected: bool,
}

/// An entry of the error summary; `field` links to the input.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryError {
    pub field: Option<String>,
    pub message: String,
}

/// The error summary of a page: the errors without a field, then each field's, in
/// page order so the summary reads like the form.
fn summary(feedback: &Feedback, fields: &[Field]) -> Vec<SummaryError> {
    let mut out: Vec<SummaryError> = feedback
        .general
        .iter()
        .map(|m| SummaryError {
            field: None,
            message: m.clone(),
        })
        .collect();
    for f in fields {
        if let Some(e) = &f.error {
            out.push(SummaryError {
                field: Some(f.id.clone()),
                message: e.clone(),
            });
        }
    }
    out
}

/// The context every flow page template receives.
#[derive(Serialize)]
struct PageContext<'a> {
    title_key: &'static str,
    flow_id: &'a str,
    csrf: &'a str,
    errors: Vec<SummaryError>,
    notice: Option<String>,
    fields: Vec<Field>,
    email: Option<&'a str>,
    intro: Option<String>,
    local_accounts: bool,
    /// Whether the sign-in page offers "sign up now".
    sign_up: bool,
    /// The application the person signs in to, by the name its configuration gives.
    application: &'a str,
    providers: Vec<ProviderButton>,
}

/// An HTML response with the headers every page carries.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

/// A 303 redirect.
pub fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Renders an error page in `locale`.
pub fn error_page(state: &AppState, locale: &str, error: PageError) -> Response {
    #[derive(Serialize)]
    struct Ctx {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        message: String,
        reference: Option<String>,
        back_url: Option<String>,
    }
    let msg =
        |key: &str, args: &[(&str, String)]| state.templates.catalogue().message(locale, key, args);
    let (status, message, reference, back_url) = match error {
        PageError::FlowNotFound => (
            StatusCode::NOT_FOUND,
            msg("error.flow_not_found", &[]),
            None,
            None,
        ),
        PageError::FlowExpired { back_url } => (
            StatusCode::GONE,
            msg("error.flow_expired", &[]),
            None,
            back_url,
        ),
        PageError::FlowFinished { back_url } => (
            StatusCode::CONFLICT,
            msg("error.flow_finished", &[]),
            None,
            back_url,
        ),
        PageError::WrongBrowser => (
            StatusCode::FORBIDDEN,
            msg("error.wrong_browser", &[]),
            None,
            None,
        ),
        PageError::BadRequest { message_key, args } => {
            (StatusCode::BAD_REQUEST, msg(message_key, &args), None, None)
        }
        PageError::Internal { reference } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            msg("error.server", &[]),
            Some(reference),
            None,
        ),
        // The customer's API failed, not Usher nor the user: a gateway error.
        PageError::ConnectorFailed {
            reference,
            back_url,
        } => (
            StatusCode::BAD_GATEWAY,
            msg("error.connector_failed", &[]),
            Some(reference),
            back_url,
        ),
    };
    let ctx = Ctx {
        title_key: "error.title",
        errors: Vec::new(),
        notice: None,
        message,
        reference,
        back_url,
    };
    render(state, status, "error.html", locale, &ctx)
}

/// Renders a template; a template that fails (a broken override) gives a plain page.
pub fn render<C: Serialize>(
    state: &AppState,
    status: StatusCode,
    template: &str,
    locale: &str,
    ctx: &C,
) -> Response {
    match state.templates.render(template, locale, ctx) {
        Ok(body) => html(status, body),
        Err(e) => {
            let reference = state.new_id();
            tracing::error!(%reference, error = %e, template, "template failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("<!doctype html><title>Error</title><p>Something went wrong. Reference: {reference}</p>"),
            )
        }
    }
}

/// The locale of a page outside a flow.
pub fn request_locale(headers: &HeaderMap, ui_locales: Option<&str>) -> &'static str {
    i18n::negotiate(
        ui_locales,
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Parses an `application/x-www-form-urlencoded` body, keeping repeated fields; a
/// body that is not one reads as an empty form.
pub fn parse_form(body: &[u8]) -> BTreeMap<String, Vec<String>> {
    serde_html_form::from_bytes(body).unwrap_or_default()
}

pub fn first<'a>(form: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    form.get(key)
        .and_then(|v| v.first())
        .map_or("", String::as_str)
}

fn message(state: &AppState, locale: &str, key: &str, args: &[(&str, String)]) -> String {
    state.templates.catalogue().message(locale, key, args)
}

/// The browser's binding cookie, and whether it is new (none, or not one of ours).
pub fn browser_token(state: &AppState, headers: &HeaderMap) -> (String, bool) {
    match crate::cookies::get(headers, crate::cookies::BROWSER) {
        Some(t) if t.len() == 43 => (t.to_owned(), false),
        _ => (state.new_token(), true),
    }
}

/// To the first page of flow `flow_id`, setting the browser's binding cookie when it
/// is new.
pub fn to_new_flow(state: &AppState, flow_id: &str, (token, new): (String, bool)) -> Response {
    let mut response = see_other(&format!("/flow/{flow_id}"));
    if new {
        response.headers_mut().append(
            header::SET_COOKIE,
            crate::cookies::set(
                crate::cookies::BROWSER,
                &token,
                None,
                state.settings.secure_cookies(),
            ),
        );
    }
    response
}

/// Renders the page of the flow's current step.
pub fn render_step(
    state: &AppState,
    loaded: &Loaded,
    feedback: Feedback,
    status: StatusCode,
) -> Response {
    let page = match &loaded.flow.step {
        // Back from a provider without finishing: sign-in again.
        FlowStep::SignIn | FlowStep::FederationRedirect { link: None, .. } => {
            sign_in_page(state, loaded, &feedback)
        }
        FlowStep::EnterEmail { purpose } => email_page(state, loaded, purpose, &feedback),
        FlowStep::EnterCode { purpose, code } => {
            code_page(state, loaded, purpose, &code.email, &feedback)
        }
        FlowStep::SignUpPassword { email } => password_page(state, loaded, email, &feedback),
        FlowStep::SignUpAttributes { draft, message }
        | FlowStep::EditProfile { draft, message } => {
            let page = if matches!(loaded.flow.step, FlowStep::EditProfile { .. }) {
                ("edit_profile.html", "edit_profile.title")
            } else {
                ("sign_up_attributes.html", "sign_up_attributes.title")
            };
            return attributes_page(
                state,
                loaded,
                (draft, message.as_ref()),
                page,
                feedback,
                status,
            );
        }
        FlowStep::NewPassword {
            email,
            current_required,
            ..
        } => new_password_page(state, loaded, email, *current_required, &feedback),
        FlowStep::ConfirmDeletion { email, .. } => PageParts {
            template: "confirm_deletion.html",
            title_key: "confirm_deletion.title",
            fields: Vec::new(),
            email: Some(email),
            intro: Some(message(
                state,
                &loaded.flow.locale,
                "confirm_deletion.intro",
                &[("email", email.clone())],
            )),
        },
        FlowStep::AccountDeleted => return show::account_deleted_page(state, loaded),
        FlowStep::LinkResetDone { .. } => return show::password_changed_page(state, loaded),
        FlowStep::FederationRedirect { link: Some(_), .. } | FlowStep::LinkAccount { .. } => {
            return link::render(state, loaded, feedback, status);
        }
        FlowStep::RunningConnectors { .. }
        | FlowStep::PendingApproval { .. }
        | FlowStep::Completed { .. }
        | FlowStep::Blocked { .. }
        | FlowStep::Failed { .. } => {
            // These steps have no form; the engine answers them as their own pages.
            return error_page(
                state,
                &loaded.flow.locale,
                PageError::FlowFinished {
                    back_url: Some(loaded.error_url(
                        &state.settings.issuer,
                        "access_denied",
                        "The sign-in has ended.",
                    )),
                },
            );
        }
    };
    render_page(state, loaded, page, feedback, status)
}

fn sign_in_page<'a>(state: &AppState, loaded: &'a Loaded, feedback: &Feedback) -> PageParts<'a> {
    let m = |key: &str| message(state, &loaded.flow.locale, key, &[]);
    let email_value = feedback
        .value("email")
        .or_else(|| loaded.flow.authorization.login_hint.clone())
        .unwrap_or_default();
    let fields = vec![
        Field {
            id: "email".into(),
            label: m("sign_in.email"),
            kind: "email",
            value: email_value,
            required: true,
            error: feedback.field_errors.get("email").cloned(),
            autocomplete: Some("username"),
            maxlength: Some(BuiltInAttribute::Email.max_length()),
            ..Field::default()
        },
        Field {
            id: "password".into(),
            label: m("sign_in.password"),
            kind: "password",
            required: true,
            error: feedback.field_errors.get("password").cloned(),
            autocomplete: Some("current-password"),
            ..Field::default()
        },
    ];
    PageParts {
        template: "sign_in.html",
        title_key: "sign_in.title",
        fields,
        email: None,
        intro: None,
    }
}

fn email_page<'a>(
    state: &AppState,
    loaded: &'a Loaded,
    purpose: &CodePurpose,
    feedback: &Feedback,
) -> PageParts<'a> {
    let m = |key: &str| message(state, &loaded.flow.locale, key, &[]);
    let (title_key, intro) = match purpose {
        CodePurpose::OneTimePasscode => ("otp_email.title", m("otp_email.intro")),
        CodePurpose::PasswordReset => ("reset_email.title", m("reset_email.intro")),
        CodePurpose::FederatedEmail { .. } => ("federated_email.title", m("federated_email.intro")),
        _ => ("sign_up_email.title", m("sign_up_email.intro")),
    };
    let fields = vec![Field {
        id: "email".into(),
        label: m("sign_up_email.email"),
        kind: "email",
        value: feedback.value("email").unwrap_or_default(),
        required: true,
        error: feedback.field_errors.get("email").cloned(),
        autocomplete: Some("email"),
        maxlength: Some(BuiltInAttribute::Email.max_length()),
        ..Field::default()
    }];
    PageParts {
        template: "sign_up_email.html",
        title_key,
        fields,
        email: None,
        intro: Some(intro),
    }
}

fn code_page<'a>(
    state: &AppState,
    loaded: &'a Loaded,
    purpose: &CodePurpose,
    email: &'a str,
    feedback: &Feedback,
) -> PageParts<'a> {
    let locale = loaded.flow.locale.as_str();
    let minutes = CODE_LIFETIME.num_minutes().to_string();
    // A local sign-up may not have sent a code (the address has an account), and must
    // not say so; the other purposes always send one.
    let intro_key = match purpose {
        CodePurpose::SignUp => "sign_up_code.intro",
        // Nor may a reset say whether the address has an account.
        CodePurpose::PasswordReset => "reset_code.intro",
        CodePurpose::DeleteAccount { .. } => "deletion_code.intro",
        _ => "otp_code.intro",
    };
    let intro = message(
        state,
        locale,
        intro_key,
        &[("email", email.to_owned()), ("minutes", minutes)],
    );
    let fields = vec![Field {
        id: "code".into(),
        label: message(state, locale, "sign_up_code.code", &[]),
        kind: "text",
        required: true,
        error: feedback.field_errors.get("code").cloned(),
        hint: Some(message(state, locale, "sign_up_code.code_hint", &[])),
        autocomplete: Some("one-time-code"),
        inputmode: Some("numeric"),
        maxlength: Some(6),
        ..Field::default()
    }];
    PageParts {
        template: "sign_up_code.html",
        title_key: "sign_up_code.title",
        fields,
        email: Some(email),
        intro: Some(intro),
    }
}

fn password_page<'a>(
    state: &AppState,
    loaded: &'a Loaded,
    email: &'a str,
    feedback: &Feedback,
) -> PageParts<'a> {
    let m = |key: &str| message(state, &loaded.flow.locale, key, &[]);
    let field = |id: &str, label: &str, hint: Option<String>| Field {
        id: id.into(),
        label: m(label),
        kind: "password",
        required: true,
        error: feedback.field_errors.get(id).cloned(),
        hint,
        autocomplete: Some("new-password"),
        maxlength: Some(usher_domain::password::MAX_LENGTH),
        ..Field::default()
    };
    let fields = vec![
        field(
            "password",
            "sign_up_password.password",
            Some(m("sign_up_password.rules")),
        ),
        field("confirmPassword", "sign_up_password.confirm", None),
    ];
    PageParts {
        template: "sign_up_password.html",
        title_key: "sign_up_password.title",
        fields,
        email: Some(email),
        intro: None,
    }
}

/// The new-password page of a reset (the new password twice) or of a change (the
/// current one first).
fn new_password_page<'a>(
    state: &AppState,
    loaded: &'a Loaded,
    email: &'a str,
    current_required: bool,
    feedback: &Feedback,
) -> PageParts<'a> {
    let m = |key: &str| message(state, &loaded.flow.locale, key, &[]);
    let field = |id: &str, label: &str, hint: Option<String>, autocomplete| Field {
        id: id.into(),
        label: m(label),
        kind: "password",
        required: true,
        error: feedback.field_errors.get(id).cloned(),
        hint,
        autocomplete: Some(autocomplete),
        maxlength: Some(usher_domain::password::MAX_LENGTH),
        ..Field::default()
    };
    let mut fields = Vec::new();
    if current_required {
        fields.push(field(
            "currentPassword",
            "new_password.current",
            None,
            "current-password",
        ));
    }
    fields.push(field(
        "password",
        "new_password.password",
        Some(m("sign_up_password.rules")),
        "new-password",
    ));
    fields.push(field(
        "confirmPassword",
        "new_password.confirm",
        None,
        "new-password",
    ));
    let intro_key = if current_required {
        "new_password.intro_change"
    } else {
        "new_password.intro_reset"
    };
    PageParts {
        template: "new_password.html",
        title_key: "new_password.title",
        fields,
        email: Some(email),
        intro: Some(message(
            state,
            &loaded.flow.locale,
            intro_key,
            &[("email", email.to_owned())],
        )),
    }
}

/// The attribute page (of a sign-up, or of a profile: `page` is the template and
/// title), with a connector's message: its per-field errors next to their fields,
/// unless the person's own input had errors this time.
fn attributes_page(
    state: &AppState,
    loaded: &Loaded,
    (draft, connector_message): (
        &usher_domain::SignUpDraft,
        Option<&usher_domain::flow::PageMessage>,
    ),
    (template, title_key): (&'static str, &'static str),
    feedback: Feedback,
    status: StatusCode,
) -> Response {
    let mut field_errors = feedback.field_errors.clone();
    let mut general = Vec::new();
    if let Some(cm) = connector_message.filter(|_| feedback.field_errors.is_empty()) {
        if !cm.user_message.is_empty() {
            general.push(cm.user_message.clone());
        }
        for (id, msg) in &cm.attribute_errors {
            if loaded.user_flow.assignment(id).is_some() {
                field_errors.insert(id.clone(), msg.clone());
            } else if !general.contains(msg) {
                // No field to put it next to; dropping it would leave the person with
                // a page that says nothing.
                general.push(msg.clone());
            }
        }
    }
    let fields = attribute_fields(
        state,
        &loaded.flow.locale,
        &loaded.user_flow,
        draft,
        &feedback.entered,
        &field_errors,
    );
    let feedback = Feedback {
        general: feedback.general.iter().cloned().chain(general).collect(),
        ..Feedback::default()
    };
    let page = PageParts {
        template,
        title_key,
        fields,
        email: None,
        intro: None,
    };
    render_page(state, loaded, page, feedback, status)
}

/// What a flow page shows besides the feedback.
pub struct PageParts<'a> {
    pub template: &'static str,
    pub title_key: &'static str,
    pub fields: Vec<Field>,
    pub email: Option<&'a str>,
    pub intro: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub fn render_page(
    state: &AppState,
    loaded: &Loaded,
    page: PageParts<'_>,
    feedback: Feedback,
    status: StatusCode,
) -> Response {
    let ctx = PageContext {
        title_key: page.title_key,
        flow_id: &loaded.flow.id,
        csrf: &loaded.flow.csrf_token,
        errors: summary(&feedback, &page.fields),
        notice: feedback.notice.clone(),
        email: page.email,
        intro: page.intro,
        local_accounts: loaded.user_flow.allows_local_accounts(),
        sign_up: loaded.offers_sign_up(),
        application: &loaded.app.name,
        providers: providers(state, loaded),
        fields: page.fields,
    };
    render(state, status, page.template, &loaded.flow.locale, &ctx)
}

/// A button for an identity provider on the sign-in page.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderButton {
    pub id: String,
    pub label: String,
    /// The provider's mark on the button: the first letter of its name, or `@` for
    /// email one-time passcode.
    pub mark: String,
}

/// The flow's identity providers other than email + password, as buttons.
fn providers(state: &AppState, loaded: &Loaded) -> Vec<ProviderButton> {
    loaded
        .user_flow
        .identity_providers
        .iter()
        .filter(|p| !p.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_PASSWORD_PROVIDER))
        .filter_map(|p| {
            if p.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_OTP_PROVIDER) {
                return Some(ProviderButton {
                    id: usher_domain::user_flow::EMAIL_OTP_PROVIDER.to_owned(),
                    label: message(state, &loaded.flow.locale, "sign_in.email_otp", &[]),
                    mark: "@".to_owned(),
                });
            }
            state
                .federation_provider_label(p)
                .map(|label| ProviderButton {
                    id: p.clone(),
                    mark: label
                        .chars()
                        .find(|c| c.is_alphanumeric())
                        .map(|c| c.to_uppercase().collect())
                        .unwrap_or_default(),
                    label: message(
                        state,
                        &loaded.flow.locale,
                        "sign_in.continue_with",
                        &[("provider", label)],
                    ),
                })
        })
        .collect()
}

/// The fields of the attribute page, in page order.
fn attribute_fields(
    state: &AppState,
    locale: &str,
    user_flow: &UserFlow,
    draft: &usher_domain::SignUpDraft,
    entered: &BTreeMap<String, Vec<String>>,
    errors: &BTreeMap<String, String>,
) -> Vec<Field> {
    user_flow
        .attributes
        .iter()
        .map(|a| {
            let id = a.attribute_id.clone();
            let definition = state.tenant().attribute(&id);
            let label = match (&a.label, BuiltInAttribute::from_id(&id)) {
                (Some(l), _) => l.get(locale).to_owned(),
                (None, Some(b)) => message(state, locale, &format!("attribute.{}", b.id()), &[]),
                (None, None) => definition
                    .as_ref()
                    .map_or_else(|| id.clone(), |d| d.display_name.clone()),
            };
            // What to show: what the user just typed, else the draft's prefill, else
            // the options marked as default.
            let values: Vec<String> = match entered.get(&id) {
                Some(v) => v.clone(),
                None => match draft.prefill.get(&id) {
                    Some(v) if a.input_type == UserInputType::CheckboxMultiSelect => {
                        v.to_form_string().split(',').map(str::to_owned).collect()
                    }
                    Some(v) => vec![v.to_form_string()],
                    None => a
                        .options
                        .iter()
                        .filter(|o| o.is_default)
                        .map(|o| o.value.clone())
                        .collect(),
                },
            };
            let kind = match a.input_type {
                UserInputType::TextBox | UserInputType::NumericTextBox => "text",
                UserInputType::EmailBox => "email",
                UserInputType::CheckboxSingleSelect => "checkbox",
                UserInputType::RadioSingleSelect => "radio",
                UserInputType::DropdownSingleSelect => "select",
                UserInputType::CheckboxMultiSelect => "checkboxes",
            };
            Field {
                label,
                kind,
                value: values.first().cloned().unwrap_or_default(),
                required: !a.is_optional,
                error: errors.get(&id).cloned(),
                autocomplete: BuiltInAttribute::from_id(&id).map(autocomplete),
                inputmode: (a.input_type == UserInputType::NumericTextBox).then_some("numeric"),
                maxlength: match a.input_type {
                    UserInputType::TextBox | UserInputType::EmailBox => definition
                        .as_ref()
                        .map(usher_domain::AttributeDefinition::max_length),
                    _ => None,
                },
                options: a
                    .options
                    .iter()
                    .map(|o| FieldOption {
                        label: o.name.get(locale).to_owned(),
                        value: o.value.clone(),
                        selected: values.contains(&o.value),
                    })
                    .collect(),
                hint: None,
                id,
            }
        })
        .collect()
}

fn autocomplete(a: BuiltInAttribute) -> &'static str {
    match a {
        BuiltInAttribute::DisplayName => "nickname",
        BuiltInAttribute::GivenName => "given-name",
        BuiltInAttribute::Surname => "family-name",
        BuiltInAttribute::JobTitle => "organization-title",
        BuiltInAttribute::StreetAddress => "street-address",
        BuiltInAttribute::City => "address-level2",
        BuiltInAttribute::PostalCode => "postal-code",
        BuiltInAttribute::State => "address-level1",
        BuiltInAttribute::Country => "country-name",
        BuiltInAttribute::Email => "email",
    }
}

/// The browser's flow-binding cookie.
pub fn browser(headers: &HeaderMap) -> Option<&str> {
    cookies::get(headers, cookies::BROWSER)
}

/// A form posted to a flow: the flow, loaded for this browser and checked against the
/// form's CSRF token, and the form's fields as `T`. A request that fails either check
/// is answered with the page the engine gives for it (the current step with a notice,
/// or an error page).
pub struct FlowForm<T> {
    pub loaded: Loaded,
    pub form: T,
}

/// The CSRF token every flow form carries.
#[derive(Deserialize, Default)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

impl<T> FromRequest<AppState> for FlowForm<T>
where
    T: DeserializeOwned + Default + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Path(id) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let client = parts
            .extensions
            .get::<crate::throttle::ClientAddress>()
            .copied()
            .unwrap_or_default();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        // Fields not in `T` are ignored; a body that does not decode (a repeated
        // single field, say) reads as empty, and so fails the token check.
        let csrf: Csrf = serde_html_form::from_bytes(&body).unwrap_or_default();
        let form: T = serde_html_form::from_bytes(&body).unwrap_or_default();
        match state
            .engine
            .open_form(
                &id,
                browser(&headers),
                client,
                &csrf.csrf,
                request_locale(&headers, None),
            )
            .await
        {
            Ok(loaded) => Ok(FlowForm { loaded, form }),
            Err(next) => Err(respond(state, next)),
        }
    }
}

/// The status code of a page shown for `status`, and the `Retry-After` it carries.
fn status_code(status: Status) -> (StatusCode, Option<i64>) {
    match status {
        Status::Ok => (StatusCode::OK, None),
        Status::BadRequest => (StatusCode::BAD_REQUEST, None),
        Status::Unauthorized => (StatusCode::UNAUTHORIZED, None),
        Status::Forbidden => (StatusCode::FORBIDDEN, None),
        Status::Conflict => (StatusCode::CONFLICT, None),
        Status::TooManyRequests {
            retry_after_seconds,
        } => (StatusCode::TOO_MANY_REQUESTS, retry_after_seconds),
        Status::BadGateway => (StatusCode::BAD_GATEWAY, None),
        Status::Unavailable {
            retry_after_seconds,
        } => (
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after_seconds.map(i64::from),
        ),
    }
}

/// Renders the engine's answer.
pub fn respond(state: &AppState, next: Next) -> Response {
    match next {
        Next::Step {
            loaded,
            feedback,
            status,
        } => {
            let (code, retry_after) = status_code(status);
            let mut r = render_step(state, &loaded, feedback, code);
            if let Some(seconds) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            r
        }
        Next::ShowFlow { flow_id } => see_other(&format!("/flow/{flow_id}")),
        Next::Redirect { location } => see_other(&location),
        Next::Blocked {
            loaded,
            user_message,
            title,
        } => show::blocked_page(state, &loaded, &user_message, title.as_deref()),
        Next::Pending { loaded } => show::pending_page(state, &loaded),
        Next::Working { loaded } => show::working_page(state, &loaded),
        Next::Failure { locale, failure } => error_page(state, &locale, failure),
        Next::SignedIn {
            token,
            seconds,
            then,
        } => {
            let mut r = respond(state, *then);
            let cookie = cookies::set(
                cookies::SESSION,
                &token,
                Some(seconds),
                state.settings.secure_cookies(),
            );
            r.headers_mut().append(header::SET_COOKIE, cookie);
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_typed_forms_ignore_the_rest() {
        let form = parse_form(b"colors=red&colors=blue&name=Ada+L%C3%B8vlace&csrf=t");
        assert_eq!(form["colors"], vec!["red".to_owned(), "blue".to_owned()]);
        assert_eq!(first(&form, "name"), "Ada Løvlace");
        assert_eq!(first(&form, "missing"), "");
        let csrf: Csrf = serde_html_form::from_bytes(b"email=a%40b.example&csrf=tok").unwrap();
        assert_eq!(csrf.csrf, "tok");
        // A token given twice is no token.
        let twice: Csrf = serde_html_form::from_bytes(b"csrf=a&csrf=b").unwrap_or_default();
        assert_eq!(twice.csrf, "");
        assert!(parse_form(b"%zz=%").len() <= 1);
    }
}
