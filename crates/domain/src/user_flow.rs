//! User flows: which identity providers a sign-up offers, which attributes its page
//! collects and how, which attributes become token claims, and which API connectors run
//! at each step.

use std::collections::BTreeMap;

use crate::connector::ConnectorStep;
use serde::{Deserialize, Serialize};

use crate::attribute::{
    check_text, is_plausible_email, AttributeDefinition, AttributeError, AttributeValue,
    AttributeValues, DataType, UserInputType,
};

/// Built-in identity provider id for local accounts (email + password).
pub const EMAIL_PASSWORD_PROVIDER: &str = "EmailPassword-OAUTH";
/// Built-in identity provider id for email one-time passcode (passwordless).
pub const EMAIL_OTP_PROVIDER: &str = "EmailOtpSignup-OAUTH";

/// Text an operator wrote, either once for every language or per language tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocalizedText {
    Plain(String),
    PerLocale(BTreeMap<String, String>),
}

impl LocalizedText {
    /// The text for `locale` (`nb`, `en`, …), falling back to English, then to any.
    pub fn get(&self, locale: &str) -> &str {
        match self {
            LocalizedText::Plain(s) => s,
            LocalizedText::PerLocale(map) => map
                .get(locale)
                .or_else(|| map.get("en"))
                .or_else(|| map.values().next())
                .map_or("", String::as_str),
        }
    }
}

/// One choice of a radio, dropdown or multi-select input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeOption {
    /// What the page shows.
    pub name: LocalizedText,
    /// What is stored.
    pub value: String,
    #[serde(default)]
    pub is_default: bool,
}

/// An attribute placed on a user flow's attribute page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeAssignment {
    /// The attribute id (`displayName`, `extension_…_ShoeSize`).
    pub attribute_id: String,
    /// The label; `None` uses the catalogue's label for a built-in attribute.
    pub label: Option<LocalizedText>,
    pub is_optional: bool,
    pub input_type: UserInputType,
    pub options: Vec<AttributeOption>,
    /// Whether the attribute is returned to applications as a claim.
    pub is_claim: bool,
}

/// The ordered connectors at each step of a user flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSlots {
    pub post_federation_signup: Vec<String>,
    /// Before the attribute page, local and federated sign-ups alike.
    #[serde(default)]
    pub attribute_collection_start: Vec<String>,
    pub post_attribute_collection: Vec<String>,
    pub pre_token_issuance: Vec<String>,
    /// Delivers the one-time codes instead of Usher's mailer (one connector at most).
    #[serde(default)]
    pub email_otp_send: Vec<String>,
    /// After a password reset's code, before the new password.
    #[serde(default)]
    pub pre_account_recovery: Vec<String>,
    /// After a signed-in person's profile page.
    #[serde(default)]
    pub on_profile_update: Vec<String>,
}

impl ConnectorSlots {
    /// The connectors at `step`, in order.
    pub fn at(&self, step: ConnectorStep) -> &[String] {
        match step {
            ConnectorStep::PostFederationSignup => &self.post_federation_signup,
            ConnectorStep::AttributeCollectionStart => &self.attribute_collection_start,
            ConnectorStep::PostAttributeCollection => &self.post_attribute_collection,
            ConnectorStep::PreTokenIssuance => &self.pre_token_issuance,
            ConnectorStep::EmailOtpSend => &self.email_otp_send,
            ConnectorStep::PreAccountRecovery => &self.pre_account_recovery,
            ConnectorStep::OnProfileUpdate => &self.on_profile_update,
        }
    }

    pub fn at_mut(&mut self, step: ConnectorStep) -> &mut Vec<String> {
        match step {
            ConnectorStep::PostFederationSignup => &mut self.post_federation_signup,
            ConnectorStep::AttributeCollectionStart => &mut self.attribute_collection_start,
            ConnectorStep::PostAttributeCollection => &mut self.post_attribute_collection,
            ConnectorStep::PreTokenIssuance => &mut self.pre_token_issuance,
            ConnectorStep::EmailOtpSend => &mut self.email_otp_send,
            ConnectorStep::PreAccountRecovery => &mut self.pre_account_recovery,
            ConnectorStep::OnProfileUpdate => &mut self.on_profile_update,
        }
    }

    /// Every step with its connectors, in the order a sign-up reaches them.
    pub fn iter(&self) -> impl Iterator<Item = (ConnectorStep, &[String])> {
        ConnectorStep::ALL.into_iter().map(|s| (s, self.at(s)))
    }
}

/// A `signUpOrSignIn` user flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFlow {
    /// `B2X_1_<name>`.
    pub id: String,
    pub identity_providers: Vec<String>,
    /// The attribute page, in page order.
    pub attributes: Vec<AttributeAssignment>,
    /// Attributes returned as claims without being collected on the page (`email`).
    pub extra_claims: Vec<String>,
    pub connectors: ConnectorSlots,
    /// Sign-ups wait for a person's approval: after the `postAttributeCollection`
    /// connectors continue, a pending sign-up request is stored instead of a user.
    #[serde(default)]
    pub requires_approval: bool,
}

/// The attribute page's answer when some fields are wrong: what the user typed (to
/// show it again) and an error per field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeFormErrors {
    pub entered: BTreeMap<String, Vec<String>>,
    pub errors: BTreeMap<String, AttributeError>,
}

impl UserFlow {
    pub fn allows_local_accounts(&self) -> bool {
        self.identity_providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(EMAIL_PASSWORD_PROVIDER))
    }

    pub fn allows_email_otp(&self) -> bool {
        self.identity_providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(EMAIL_OTP_PROVIDER))
    }

    pub fn assignment(&self, attribute_id: &str) -> Option<&AttributeAssignment> {
        self.attributes
            .iter()
            .find(|a| a.attribute_id == attribute_id)
    }

    /// Whether the flow selects this attribute (collects it or returns it as a claim).
    pub fn selects(&self, attribute_id: &str) -> bool {
        self.assignment(attribute_id).is_some()
            || self.extra_claims.iter().any(|c| c == attribute_id)
    }

    /// The attribute ids that become token claims.
    pub fn claim_attributes(&self) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(|a| a.is_claim)
            .map(|a| a.attribute_id.as_str())
            .chain(self.extra_claims.iter().map(String::as_str))
    }

    /// Reads the attribute page's form. `form` holds every submitted value per field
    /// name (a multi-select submits several); `lookup` finds each attribute's
    /// definition.
    pub fn parse_attribute_form<'a>(
        &self,
        form: &BTreeMap<String, Vec<String>>,
        lookup: impl Fn(&str) -> Option<&'a AttributeDefinition>,
    ) -> Result<AttributeValues, AttributeFormErrors> {
        let mut values = AttributeValues::new();
        let mut failed = AttributeFormErrors::default();
        for assignment in &self.attributes {
            let raw = form
                .get(&assignment.attribute_id)
                .cloned()
                .unwrap_or_default();
            let Some(definition) = lookup(&assignment.attribute_id) else {
                continue;
            };
            match parse_one(assignment, definition, &raw) {
                Ok(Some(v)) => {
                    values.insert(assignment.attribute_id.clone(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    failed.errors.insert(assignment.attribute_id.clone(), e);
                }
            }
            failed.entered.insert(assignment.attribute_id.clone(), raw);
        }
        if failed.errors.is_empty() {
            Ok(values)
        } else {
            Err(failed)
        }
    }
}

/// What a ticked single checkbox posts (the page renders it with this value).
pub const CHECKBOX_VALUE: &str = "true";

fn parse_one(
    assignment: &AttributeAssignment,
    definition: &AttributeDefinition,
    raw: &[String],
) -> Result<Option<AttributeValue>, AttributeError> {
    let first = raw.first().map_or("", |s| s.trim());
    let value = match assignment.input_type {
        UserInputType::CheckboxSingleSelect => {
            // The page's checkbox posts `true` when ticked and nothing otherwise; a
            // value it cannot send must not quietly become "no".
            let checked = match raw {
                [] => false,
                [only] if only == CHECKBOX_VALUE => true,
                _ => return Err(AttributeError::NotTheCheckboxValue),
            };
            if !checked && !assignment.is_optional {
                return Err(AttributeError::Required);
            }
            return Ok(Some(AttributeValue::Boolean(checked)));
        }
        UserInputType::CheckboxMultiSelect => {
            let mut chosen = Vec::new();
            for v in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                if !assignment.options.iter().any(|o| o.value == v) {
                    return Err(AttributeError::NotAnOption);
                }
                if !chosen.contains(&v) {
                    chosen.push(v);
                }
            }
            if chosen.is_empty() {
                None
            } else {
                // Page order, so the same choices always give the same value.
                let joined = assignment
                    .options
                    .iter()
                    .filter(|o| chosen.contains(&o.value.as_str()))
                    .map(|o| o.value.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                check_text(&joined, definition.max_length())?;
                Some(AttributeValue::String(joined))
            }
        }
        UserInputType::RadioSingleSelect | UserInputType::DropdownSingleSelect => {
            if first.is_empty() {
                None
            } else if !assignment.options.iter().any(|o| o.value == first) {
                return Err(AttributeError::NotAnOption);
            } else {
                Some(typed(definition.data_type, first)?)
            }
        }
        UserInputType::NumericTextBox => {
            if first.is_empty() {
                None
            } else {
                Some(typed(DataType::Int, first)?)
            }
        }
        UserInputType::TextBox | UserInputType::EmailBox => {
            if first.is_empty() {
                None
            } else {
                check_text(first, definition.max_length())?;
                if assignment.input_type == UserInputType::EmailBox && !is_plausible_email(first) {
                    return Err(AttributeError::InvalidEmail);
                }
                Some(AttributeValue::String(first.to_owned()))
            }
        }
    };
    if value.is_none() && !assignment.is_optional {
        return Err(AttributeError::Required);
    }
    Ok(value)
}

fn typed(data_type: DataType, s: &str) -> Result<AttributeValue, AttributeError> {
    match data_type {
        DataType::Int => s
            .parse::<i64>()
            .map(AttributeValue::Int)
            .map_err(|_| AttributeError::NotAnInteger),
        DataType::Boolean => Ok(AttributeValue::Boolean(s == "true")),
        DataType::String => Ok(AttributeValue::String(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::BuiltInAttribute;

    fn assignment(id: &str, input: UserInputType, optional: bool) -> AttributeAssignment {
        AttributeAssignment {
            attribute_id: id.into(),
            label: None,
            is_optional: optional,
            input_type: input,
            options: ["S", "M", "L"]
                .iter()
                .map(|v| AttributeOption {
                    name: LocalizedText::Plain(v.to_string()),
                    value: v.to_string(),
                    is_default: false,
                })
                .collect(),
            is_claim: true,
        }
    }

    fn defs() -> Vec<AttributeDefinition> {
        vec![
            AttributeDefinition::built_in(BuiltInAttribute::DisplayName),
            AttributeDefinition::built_in(BuiltInAttribute::GivenName),
            AttributeDefinition {
                id: "extension_abc_Size".into(),
                display_name: "Size".into(),
                description: String::new(),
                data_type: DataType::String,
                built_in: false,
            },
            AttributeDefinition {
                id: "extension_abc_Shoe".into(),
                display_name: "Shoe".into(),
                description: String::new(),
                data_type: DataType::Int,
                built_in: false,
            },
            AttributeDefinition {
                id: "extension_abc_Terms".into(),
                display_name: "Terms".into(),
                description: String::new(),
                data_type: DataType::Boolean,
                built_in: false,
            },
        ]
    }

    fn flow() -> UserFlow {
        UserFlow {
            id: "B2X_1_t".into(),
            identity_providers: vec![EMAIL_PASSWORD_PROVIDER.into()],
            attributes: vec![
                assignment("displayName", UserInputType::TextBox, false),
                assignment("givenName", UserInputType::TextBox, true),
                assignment(
                    "extension_abc_Size",
                    UserInputType::CheckboxMultiSelect,
                    true,
                ),
                assignment("extension_abc_Shoe", UserInputType::NumericTextBox, true),
                assignment(
                    "extension_abc_Terms",
                    UserInputType::CheckboxSingleSelect,
                    false,
                ),
            ],
            extra_claims: vec!["email".into()],
            connectors: ConnectorSlots::default(),
            requires_approval: false,
        }
    }

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AttributeValues, AttributeFormErrors> {
        let defs = defs();
        flow().parse_attribute_form(&form(pairs), |id| defs.iter().find(|d| d.id == id))
    }

    #[test]
    fn valid_form_gives_typed_values() {
        let v = parse(&[
            ("displayName", " Ada "),
            ("extension_abc_Size", "L"),
            ("extension_abc_Size", "S"),
            ("extension_abc_Shoe", "44"),
            ("extension_abc_Terms", "true"),
        ])
        .unwrap();
        assert_eq!(v["displayName"], AttributeValue::String("Ada".into()));
        assert_eq!(
            v["extension_abc_Size"],
            AttributeValue::String("S,L".into())
        );
        assert_eq!(v["extension_abc_Shoe"], AttributeValue::Int(44));
        assert_eq!(v["extension_abc_Terms"], AttributeValue::Boolean(true));
        assert!(!v.contains_key("givenName"));
    }

    #[test]
    fn errors_are_per_field_and_input_is_kept() {
        let long = "x".repeat(65);
        let e = parse(&[
            ("givenName", &long),
            ("extension_abc_Size", "XL"),
            ("extension_abc_Shoe", "forty"),
        ])
        .unwrap_err();
        assert_eq!(e.errors["displayName"], AttributeError::Required);
        assert_eq!(e.errors["givenName"], AttributeError::TooLong { max: 64 });
        assert_eq!(e.errors["extension_abc_Size"], AttributeError::NotAnOption);
        assert_eq!(e.errors["extension_abc_Shoe"], AttributeError::NotAnInteger);
        assert_eq!(e.errors["extension_abc_Terms"], AttributeError::Required);
        assert_eq!(e.entered["givenName"], vec![long]);
    }

    #[test]
    fn a_checkbox_takes_only_its_own_value_or_nothing() {
        for bad in ["false", "on", "1", "TRUE", "", "yes"] {
            let e = parse(&[("displayName", "Ada"), ("extension_abc_Terms", bad)]).unwrap_err();
            assert_eq!(
                e.errors["extension_abc_Terms"],
                AttributeError::NotTheCheckboxValue,
                "{bad:?}"
            );
        }
        let twice = parse(&[
            ("displayName", "Ada"),
            ("extension_abc_Terms", "true"),
            ("extension_abc_Terms", "true"),
        ]);
        assert_eq!(
            twice.unwrap_err().errors["extension_abc_Terms"],
            AttributeError::NotTheCheckboxValue
        );
        let v = parse(&[("displayName", "Ada"), ("extension_abc_Terms", "true")]).unwrap();
        assert_eq!(v["extension_abc_Terms"], AttributeValue::Boolean(true));
    }

    #[test]
    fn claims_include_extra_claims() {
        let f = flow();
        let claims: Vec<_> = f.claim_attributes().collect();
        assert!(claims.contains(&"email"));
        assert!(claims.contains(&"displayName"));
        assert!(f.selects("email"));
        assert!(!f.selects("jobTitle"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(name in ".{0,300}", shoe in ".{0,30}", size in ".{0,10}") {
            let _ = parse(&[("displayName", &name), ("extension_abc_Shoe", &shoe), ("extension_abc_Size", &size)]);
        }

        #[test]
        fn accepted_text_is_within_limits(name in "\\PC{0,300}") {
            if let Ok(v) = parse(&[("displayName", &name), ("extension_abc_Terms", "true")]) {
                let s = v["displayName"].as_str().unwrap();
                proptest::prop_assert!(s.chars().count() <= 256);
                proptest::prop_assert!(!s.chars().any(char::is_control));
            }
        }
    }
}
