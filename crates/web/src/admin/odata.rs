//! The `OData` query options the admin API honours: `$filter` (comparisons joined by
//! `and`, `startswith`, and `any` over a collection, which is what Graph's clients use
//! against these resources), `$top`, `$select`, `$expand` and paging with
//! `$skiptoken` in an `@odata.nextLink`. Options Usher does not implement are refused
//! with `Request_UnsupportedQuery` rather than ignored, so a script never mistakes an
//! unfiltered answer for a filtered one.

use std::collections::BTreeMap;

use axum::http::Uri;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};
use crate::state::AppState;

/// Graph's default page size for directory objects.
pub const DEFAULT_TOP: u32 = 100;
/// Graph's largest page of users.
pub const MAX_TOP: u32 = 999;

/// The query options of one request.
#[derive(Debug, Default)]
pub struct QueryOptions {
    pub filter: Option<Vec<Condition>>,
    pub top: Option<u32>,
    pub select: Option<Vec<String>>,
    pub expand: Option<Vec<String>>,
    pub skiptoken: Option<String>,
    /// The raw `$filter` and `$select`, to carry into the next page's link.
    raw: BTreeMap<String, String>,
}

impl QueryOptions {
    /// Reads the options of `uri`. `allowed` lists the options the resource honours;
    /// any other `$option` is refused. Parameters without `$` are not `OData`'s and are
    /// ignored, as Graph ignores them.
    pub fn parse(uri: &Uri, allowed: &[&str]) -> ApiResult<Self> {
        let mut options = QueryOptions::default();
        let query = uri.query().unwrap_or("");
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let key = key.to_ascii_lowercase();
            if !key.starts_with('$') {
                continue;
            }
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::unsupported_query(format!(
                    "The query option {key} is not supported on this resource{}.",
                    if allowed.is_empty() {
                        String::new()
                    } else {
                        format!(" (supported: {})", allowed.join(", "))
                    }
                )));
            }
            if options.raw.insert(key.clone(), value.to_string()).is_some() {
                return Err(ApiError::unsupported_query(format!(
                    "The query option {key} is given more than once."
                )));
            }
            match key.as_str() {
                "$filter" => options.filter = Some(parse_filter(&value)?),
                "$top" => {
                    let top = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|t| (1..=MAX_TOP).contains(t))
                        .ok_or_else(|| {
                            ApiError::unsupported_query(format!(
                                "$top must be a whole number from 1 to {MAX_TOP}."
                            ))
                        })?;
                    options.top = Some(top);
                }
                "$select" => options.select = Some(list(&value, "$select")?),
                "$expand" => options.expand = Some(list(&value, "$expand")?),
                "$skiptoken" => options.skiptoken = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(options)
    }

    /// The page size: `$top`, else the default.
    pub fn page_size(&self) -> u32 {
        self.top.unwrap_or(DEFAULT_TOP)
    }

    /// The `$skiptoken` decoded (it is opaque to clients: base64url of a cursor).
    pub fn cursor(&self) -> ApiResult<Option<String>> {
        let Some(token) = &self.skiptoken else {
            return Ok(None);
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::unsupported_query("The $skiptoken is not valid."))
    }

    /// The link to the page after the one ending at `cursor`: the same options, and
    /// the cursor as `$skiptoken`.
    pub fn next_link(&self, state: &AppState, path: &str, cursor: &str) -> String {
        // Option names stay readable (`$top`, not `%24top`), as in Graph's links.
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let mut pairs: Vec<String> = self
            .raw
            .iter()
            .filter(|(k, _)| *k != "$skiptoken")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        pairs.push(format!(
            "$skiptoken={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor)
        ));
        format!("{}{path}?{}", state.settings.issuer, pairs.join("&"))
    }

    /// Checks `$select` names against the resource's properties (without regard to
    /// case, as Graph matches them).
    pub fn check_select(&self, resource: &str, known: &dyn Fn(&str) -> bool) -> ApiResult<()> {
        for name in self.select.iter().flatten() {
            if !known(name) {
                return Err(ApiError::bad_request(format!(
                    "Could not find a property named '{name}' on type '{resource}'."
                )));
            }
        }
        Ok(())
    }

    /// Keeps only the selected properties of `value` (all without `$select`).
    pub fn apply_select(&self, value: Value) -> Value {
        let (Some(select), Value::Object(map)) = (&self.select, &value) else {
            return value;
        };
        let kept: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| select.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(kept)
    }

    /// Whether `$expand` names `property`.
    pub fn expands(&self, property: &str) -> bool {
        self.expand
            .iter()
            .flatten()
            .any(|e| e.eq_ignore_ascii_case(property))
    }
}

fn list(value: &str, option: &str) -> ApiResult<Vec<String>> {
    let items: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(ApiError::unsupported_query(format!("{option} is empty.")));
    }
    Ok(items)
}

/// A collection answer: `{"@odata.context", "value", "@odata.nextLink"?}`.
pub fn collection(
    state: &AppState,
    context: &str,
    values: Vec<Value>,
    next_link: Option<String>,
) -> Value {
    let mut map = Map::new();
    map.insert(
        "@odata.context".into(),
        Value::String(context_url(state, context)),
    );
    map.insert("value".into(), Value::Array(values));
    if let Some(next) = next_link {
        map.insert("@odata.nextLink".into(), Value::String(next));
    }
    Value::Object(map)
}

/// `{issuer}/v1.0/$metadata#<fragment>`.
pub fn context_url(state: &AppState, fragment: &str) -> String {
    format!("{}/v1.0/$metadata#{fragment}", state.settings.issuer)
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    /// Anything unquoted: numbers, `true`, `null`, date-times.
    Bare(String),
}

impl Literal {
    pub fn as_string(&self) -> Option<&str> {
        match self {
            Literal::String(s) => Some(s),
            Literal::Bare(_) => None,
        }
    }

    /// A date-time, quoted or not (`2026-01-01T00:00:00Z`).
    pub fn as_datetime(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let s = match self {
            Literal::String(s) | Literal::Bare(s) => s,
        };
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    }
}

/// One condition of a filter; a filter is conditions that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `property op literal`.
    Compare {
        property: String,
        op: Op,
        value: Literal,
    },
    /// `startswith(property, 'prefix')`.
    StartsWith { property: String, prefix: String },
    /// `collection/any(x: x/a eq '…' and x/b eq '…')`: one element has all of these.
    Any {
        collection: String,
        conditions: Vec<(String, Literal)>,
    },
}

impl Condition {
    /// The property the condition is about, for messages.
    pub fn property(&self) -> &str {
        match self {
            Condition::Compare { property, .. } | Condition::StartsWith { property, .. } => {
                property
            }
            Condition::Any { collection, .. } => collection,
        }
    }
}

/// The error for a condition the resource cannot evaluate.
pub fn unsupported_condition(condition: &Condition, supported: &str) -> ApiError {
    ApiError::unsupported_query(format!(
        "Unsupported filter on '{}'; this resource supports {supported}.",
        condition.property()
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Str(String),
    Word(String),
}

fn tokenize(s: &str) -> ApiResult<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        // `''` is a quote inside the string.
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => {
                            return Err(ApiError::unsupported_query(
                                "Invalid $filter: a string is not closed.",
                            ))
                        }
                    }
                }
                tokens.push(Token::Str(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Parentheses open now: bounded, so a hostile filter cannot exhaust the stack.
    depth: usize,
}

/// Deeper nesting than any real filter needs.
const MAX_DEPTH: usize = 16;
/// Longer than any real filter.
const MAX_FILTER_LEN: usize = 2048;

fn syntax(message: &str) -> ApiError {
    ApiError::unsupported_query(format!("Invalid $filter: {message}."))
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, token: Token, what: &str) -> ApiResult<()> {
        if self.next() == Some(token) {
            Ok(())
        } else {
            Err(syntax(&format!("expected {what}")))
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    /// `term (and term)*`
    fn conjunction(&mut self, out: &mut Vec<Condition>) -> ApiResult<()> {
        self.term(out)?;
        loop {
            if self.is_word("and") {
                self.next();
                self.term(out)?;
            } else if self.is_word("or") {
                return Err(ApiError::unsupported_query(
                    "Unsupported $filter: only conditions joined by 'and' are supported, not 'or'.",
                ));
            } else {
                return Ok(());
            }
        }
    }

    fn term(&mut self, out: &mut Vec<Condition>) -> ApiResult<()> {
        match self.next() {
            Some(Token::Open) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(syntax("parentheses are nested too deeply"));
                }
                self.conjunction(out)?;
                self.depth -= 1;
                self.expect(Token::Close, "')'")
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") => Err(
                ApiError::unsupported_query("Unsupported $filter: 'not' is not supported."),
            ),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("startswith") => {
                self.expect(Token::Open, "'(' after startswith")?;
                let property = self.property()?;
                self.expect(Token::Comma, "',' in startswith")?;
                let Some(Token::Str(prefix)) = self.next() else {
                    return Err(syntax("startswith takes a quoted string"));
                };
                self.expect(Token::Close, "')' after startswith")?;
                out.push(Condition::StartsWith { property, prefix });
                Ok(())
            }
            Some(Token::Word(w)) if w.to_ascii_lowercase().ends_with("/any") => {
                let collection = w[..w.len() - 4].to_owned();
                self.expect(Token::Open, "'(' after any")?;
                let (variable, first) = match self.next() {
                    Some(Token::Word(w)) => match w.split_once(':') {
                        Some((v, p)) if !v.is_empty() => (v.to_owned(), p.to_owned()),
                        _ => return Err(syntax("any takes a lambda such as c:c/issuer eq '…'")),
                    },
                    _ => return Err(syntax("any takes a lambda such as c:c/issuer eq '…'")),
                };
                let mut conditions = Vec::new();
                let mut path = first;
                loop {
                    let property = path
                        .strip_prefix(&format!("{variable}/"))
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| syntax(&format!("expected {variable}/<property>")))?
                        .to_owned();
                    match self.next() {
                        Some(Token::Word(op)) if op.eq_ignore_ascii_case("eq") => {}
                        _ => {
                            return Err(ApiError::unsupported_query(
                                "Unsupported $filter: inside any, only 'eq' joined by 'and' is supported.",
                            ))
                        }
                    }
                    conditions.push((property, self.literal()?));
                    if self.is_word("and") {
                        self.next();
                        path = match self.next() {
                            Some(Token::Word(w)) => w,
                            _ => return Err(syntax("expected a property after 'and'")),
                        };
                    } else {
                        break;
                    }
                }
                self.expect(Token::Close, "')' after the lambda")?;
                out.push(Condition::Any {
                    collection,
                    conditions,
                });
                Ok(())
            }
            Some(Token::Word(property)) => {
                check_property(&property)?;
                let op = match self.next() {
                    Some(Token::Word(op)) => Op::parse(&op).ok_or_else(|| {
                        ApiError::unsupported_query(format!(
                            "Unsupported $filter operator '{op}' (supported: eq, ne, gt, ge, lt, le)."
                        ))
                    })?,
                    _ => return Err(syntax("expected an operator such as eq")),
                };
                let value = self.literal()?;
                out.push(Condition::Compare {
                    property,
                    op,
                    value,
                });
                Ok(())
            }
            _ => Err(syntax("expected a condition")),
        }
    }

    fn property(&mut self) -> ApiResult<String> {
        match self.next() {
            Some(Token::Word(w)) => {
                check_property(&w)?;
                Ok(w)
            }
            _ => Err(syntax("expected a property name")),
        }
    }

    fn literal(&mut self) -> ApiResult<Literal> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::String(s)),
            Some(Token::Word(w)) => Ok(Literal::Bare(w)),
            _ => Err(syntax("expected a value")),
        }
    }
}

fn check_property(name: &str) -> ApiResult<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.'))
    {
        return Err(syntax(&format!("'{name}' is not a property name")));
    }
    Ok(())
}

/// Parses a `$filter` into conditions that must all hold.
pub fn parse_filter(filter: &str) -> ApiResult<Vec<Condition>> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(syntax("it is too long"));
    }
    let mut parser = Parser {
        tokens: tokenize(filter)?,
        at: 0,
        depth: 0,
    };
    let mut out = Vec::new();
    parser.conjunction(&mut out)?;
    if parser.peek().is_some() {
        return Err(syntax("unexpected text after the last condition"));
    }
    Ok(out)
}

/// Whether an `@odata.type` a client sent names `expected`: without regard to case
/// or to the leading `#`, which Graph's examples write both ways.
pub fn same_type(given: &str, expected: &str) -> bool {
    given
        .trim_start_matches('#')
        .eq_ignore_ascii_case(expected.trim_start_matches('#'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_nesting_is_refused_not_recursed() {
        let deep = format!("{}mail eq 'a'{}", "(".repeat(20), ")".repeat(20));
        assert!(super::parse_filter(&deep).is_err());
        let huge = "(".repeat(100_000);
        assert!(super::parse_filter(&huge).is_err());
        let fine = "((mail eq 'a@example.com'))";
        assert!(super::parse_filter(fine).is_ok());
    }

    use super::*;

    fn s(v: &str) -> Literal {
        Literal::String(v.into())
    }

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse_filter("mail eq 'a@b.c'").unwrap(),
            vec![Condition::Compare {
                property: "mail".into(),
                op: Op::Eq,
                value: s("a@b.c")
            }]
        );
        assert_eq!(
            parse_filter(
                "identities/any(c:c/issuerAssignedId eq 'o''neil@x.com' and c/issuer eq 'mail') and startswith(displayName,'Ad')"
            )
            .unwrap(),
            vec![
                Condition::Any {
                    collection: "identities".into(),
                    conditions: vec![
                        ("issuerAssignedId".into(), s("o'neil@x.com")),
                        ("issuer".into(), s("mail")),
                    ],
                },
                Condition::StartsWith {
                    property: "displayName".into(),
                    prefix: "Ad".into()
                },
            ]
        );
        assert_eq!(
            parse_filter("(createdDateTime ge 2026-01-01T00:00:00Z) and outcome eq 'failed'")
                .unwrap()
                .len(),
            2
        );
        let c = &parse_filter("createdDateTime lt 2026-01-01T00:00:00Z").unwrap()[0];
        let Condition::Compare { value, op, .. } = c else {
            panic!()
        };
        assert_eq!(*op, Op::Lt);
        assert!(value.as_datetime().is_some());
    }

    #[test]
    fn bad_filters_are_refused() {
        for f in [
            "",
            "mail eq",
            "mail eq 'x",
            "mail eq 'a' or mail eq 'b'",
            "mail foo 'a'",
            "startswith(displayName)",
            "identities/any(c:c/issuer ne 'x')",
            "mail eq 'a' garbage",
            "not mail eq 'a'",
            "(mail eq 'a'",
        ] {
            let e = parse_filter(f).unwrap_err();
            assert_eq!(e.status, 400, "{f}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(f in "\\PC{0,80}") {
            let _ = parse_filter(&f);
        }
    }
}
