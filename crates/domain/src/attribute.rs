//! User attributes: the built-in ones, custom `extension_<appId>_<Name>` ones, their
//! data types and the input types a sign-up page uses to collect them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The value of one attribute of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Boolean(bool),
    Int(i64),
    String(String),
}

impl AttributeValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a form field shows it.
    pub fn to_form_string(&self) -> String {
        match self {
            AttributeValue::Boolean(b) => b.to_string(),
            AttributeValue::Int(i) => i.to_string(),
            AttributeValue::String(s) => s.clone(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttributeValue::Boolean(b) => serde_json::Value::Bool(*b),
            AttributeValue::Int(i) => serde_json::Value::from(*i),
            AttributeValue::String(s) => serde_json::Value::String(s.clone()),
        }
    }
}

/// Attribute values by attribute id. A missing key means "no value".
pub type AttributeValues = BTreeMap<String, AttributeValue>;

/// The data type of an attribute, named as Graph names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DataType {
    String,
    Boolean,
    #[serde(rename = "int64", alias = "int")]
    Int,
}

/// How the attribute page asks for a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserInputType {
    TextBox,
    EmailBox,
    NumericTextBox,
    CheckboxSingleSelect,
    RadioSingleSelect,
    DropdownSingleSelect,
    CheckboxMultiSelect,
}

impl UserInputType {
    /// Whether this input can collect an attribute of `data_type`.
    pub fn accepts(self, data_type: DataType) -> bool {
        use UserInputType::{
            CheckboxMultiSelect, CheckboxSingleSelect, DropdownSingleSelect, EmailBox,
            NumericTextBox, RadioSingleSelect, TextBox,
        };
        match data_type {
            DataType::String => matches!(
                self,
                TextBox | EmailBox | RadioSingleSelect | DropdownSingleSelect | CheckboxMultiSelect
            ),
            DataType::Boolean => matches!(self, CheckboxSingleSelect),
            DataType::Int => matches!(
                self,
                NumericTextBox | RadioSingleSelect | DropdownSingleSelect
            ),
        }
    }

    pub fn has_options(self) -> bool {
        matches!(
            self,
            UserInputType::RadioSingleSelect
                | UserInputType::DropdownSingleSelect
                | UserInputType::CheckboxMultiSelect
        )
    }

    /// The input type a new assignment gets when none is chosen.
    pub fn default_for(data_type: DataType) -> Self {
        match data_type {
            DataType::String => UserInputType::TextBox,
            DataType::Boolean => UserInputType::CheckboxSingleSelect,
            DataType::Int => UserInputType::NumericTextBox,
        }
    }
}

/// The built-in attributes every tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltInAttribute {
    DisplayName,
    GivenName,
    Surname,
    JobTitle,
    StreetAddress,
    City,
    PostalCode,
    State,
    Country,
    Email,
}

impl BuiltInAttribute {
    pub const ALL: [BuiltInAttribute; 10] = [
        BuiltInAttribute::DisplayName,
        BuiltInAttribute::GivenName,
        BuiltInAttribute::Surname,
        BuiltInAttribute::JobTitle,
        BuiltInAttribute::StreetAddress,
        BuiltInAttribute::City,
        BuiltInAttribute::PostalCode,
        BuiltInAttribute::State,
        BuiltInAttribute::Country,
        BuiltInAttribute::Email,
    ];

    /// The attribute id as it is sent on the wire and used as a form field name.
    pub fn id(self) -> &'static str {
        match self {
            BuiltInAttribute::DisplayName => "displayName",
            BuiltInAttribute::GivenName => "givenName",
            BuiltInAttribute::Surname => "surname",
            BuiltInAttribute::JobTitle => "jobTitle",
            BuiltInAttribute::StreetAddress => "streetAddress",
            BuiltInAttribute::City => "city",
            BuiltInAttribute::PostalCode => "postalCode",
            BuiltInAttribute::State => "state",
            BuiltInAttribute::Country => "country",
            BuiltInAttribute::Email => "email",
        }
    }

    /// Maximum length in characters.
    pub fn max_length(self) -> usize {
        match self {
            BuiltInAttribute::DisplayName => 256,
            BuiltInAttribute::GivenName | BuiltInAttribute::Surname => 64,
            BuiltInAttribute::JobTitle
            | BuiltInAttribute::City
            | BuiltInAttribute::State
            | BuiltInAttribute::Country => 128,
            BuiltInAttribute::StreetAddress => 1024,
            BuiltInAttribute::PostalCode => 40,
            BuiltInAttribute::Email => 254,
        }
    }

    /// Finds a built-in attribute by id, without regard to case (Graph writes `City`).
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.id().eq_ignore_ascii_case(id))
    }
}

/// Maximum length of a custom string attribute's value.
pub const CUSTOM_STRING_MAX_LENGTH: usize = 1024;

/// What a tenant knows about one attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    /// `displayName`, … or `extension_<appId>_<Name>`.
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub data_type: DataType,
    pub built_in: bool,
}

impl AttributeDefinition {
    pub fn built_in(attr: BuiltInAttribute) -> Self {
        Self {
            id: attr.id().to_owned(),
            display_name: attr.id().to_owned(),
            description: String::new(),
            data_type: DataType::String,
            built_in: true,
        }
    }

    pub fn max_length(&self) -> usize {
        BuiltInAttribute::from_id(&self.id)
            .map_or(CUSTOM_STRING_MAX_LENGTH, BuiltInAttribute::max_length)
    }
}

/// Why a value given for an attribute is not acceptable. Each maps to a message the
/// page shows next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum AttributeError {
    #[error("a value is required")]
    Required,
    #[error("the value is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the value must be a whole number")]
    NotAnInteger,
    #[error("the value is not one of the choices")]
    NotAnOption,
    #[error("the value is not an email address")]
    InvalidEmail,
    #[error("the value contains control characters")]
    ControlCharacters,
    /// A checkbox posts its own value or nothing; anything else did not come from it.
    #[error("the value is not the checkbox's")]
    NotTheCheckboxValue,
}

impl AttributeError {
    /// The message catalogue key for this error.
    pub fn message_key(&self) -> &'static str {
        match self {
            AttributeError::Required => "error.required",
            AttributeError::TooLong { .. } => "error.too_long",
            AttributeError::NotAnInteger => "error.not_an_integer",
            AttributeError::NotAnOption => "error.not_an_option",
            AttributeError::InvalidEmail => "error.invalid_email",
            AttributeError::ControlCharacters => "error.control_characters",
            AttributeError::NotTheCheckboxValue => "error.not_the_checkbox_value",
        }
    }
}

/// A deliberately small syntax check of a bare address: a dot-atom local part of
/// letters, digits and RFC 5322's `atext` symbols, and a domain of dot-separated labels
/// of letters, digits and inner hyphens. It accepts no more than the mailer will send
/// to (quoted local parts and address literals are refused here), so an address that
/// passes never fails at delivery; and it leaves out everything that would let a mail
/// library read the text as a display name plus another address (`"a@x" <b@y>`), or
/// make it display as something else (bidirectional overrides and other invisible
/// format characters are not letters), so the address that gets the code is exactly the
/// one stored. The code is the real check.
pub fn is_plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
    let dot_atom = |part: &str, ok: &dyn Fn(char) -> bool| {
        !part.is_empty()
            && part
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(ok))
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    local.len() <= 64
        && dot_atom(local, &|c| c.is_alphanumeric() || ATEXT.contains(c))
        && domain.len() >= 3
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

/// Normalises an email address for lookups: trimmed and lower-cased.
pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Checks free text: no control characters (newlines included) and at most `max`
/// characters.
pub fn check_text(value: &str, max: usize) -> Result<(), AttributeError> {
    if value.chars().any(char::is_control) {
        return Err(AttributeError::ControlCharacters);
    }
    if value.chars().count() > max {
        return Err(AttributeError::TooLong { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_ids_match_without_case() {
        assert_eq!(
            BuiltInAttribute::from_id("City"),
            Some(BuiltInAttribute::City)
        );
        assert_eq!(
            BuiltInAttribute::from_id("displayname"),
            Some(BuiltInAttribute::DisplayName)
        );
        assert_eq!(BuiltInAttribute::from_id("shoeSize"), None);
    }

    #[test]
    fn input_types_match_data_types() {
        assert!(UserInputType::TextBox.accepts(DataType::String));
        assert!(!UserInputType::TextBox.accepts(DataType::Int));
        assert!(UserInputType::CheckboxSingleSelect.accepts(DataType::Boolean));
        assert!(UserInputType::NumericTextBox.accepts(DataType::Int));
        assert!(!UserInputType::CheckboxMultiSelect.accepts(DataType::Boolean));
    }

    #[test]
    fn emails() {
        assert!(is_plausible_email("a@example.com"));
        assert!(!is_plausible_email("a@b"));
        assert!(!is_plausible_email("@example.com"));
        assert!(!is_plausible_email("a b@example.com"));
        assert!(!is_plausible_email("a@example.com\n"));
        // A display name with another address must not pass for an address.
        assert!(!is_plausible_email("\"victim@x.com\"<attacker@evil.com>"));
        assert!(!is_plausible_email("victim@x.com <attacker@evil.com>"));
        assert!(!is_plausible_email("<a@example.com>"));
        assert!(!is_plausible_email("a(comment)@example.com"));
        assert!(!is_plausible_email("a..b@example.com"));
        assert!(is_plausible_email("first.last+tag@sub.example.co.uk"));
        assert!(is_plausible_email("åse@blåbær.no"));
        // Text that displays as something else, or that a form decoder made up.
        assert!(!is_plausible_email("\u{202e}evil@example.com"));
        assert!(!is_plausible_email("ev\u{200b}il@example.com"));
        assert!(!is_plausible_email("evil@exa\u{202e}mple.com"));
        assert!(!is_plausible_email("\u{fffd}@example.com"));
        assert!(!is_plausible_email("a@-example.com"));
        assert!(!is_plausible_email("a@[127.0.0.1]"));
    }

    #[test]
    fn values_serialise_as_plain_json() {
        let v: AttributeValues = [
            ("a".to_owned(), AttributeValue::Int(44)),
            ("b".to_owned(), AttributeValue::Boolean(true)),
            ("c".to_owned(), AttributeValue::String("x".into())),
        ]
        .into();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"a":44,"b":true,"c":"x"}"#);
        let back: AttributeValues = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
