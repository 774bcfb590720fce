//! The TOML document as a tree that remembers where each value was written.
//!
//! Deserializing straight into structs would stop at the first wrong value; reading
//! this tree instead lets the loader report every problem, each with its line.

use std::{fmt, ops::Range};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

// toml hands out byte spans only to types that ask for them under serde_spanned's
// private struct name. Asking for it ourselves, rather than using `toml::Spanned`,
// lets values that have no span (the implicit `a` in `[a.b]`) still deserialize: they
// arrive as plain values and are accepted as such. Should these names ever change,
// values merely lose their line numbers.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPAN_START: &str = "$__serde_spanned_private_start";
const SPAN_END: &str = "$__serde_spanned_private_end";
const SPAN_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPAN_START, SPAN_END, SPAN_VALUE];
// How toml presents a datetime to `deserialize_any`.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// Byte range in the document, when toml knows it.
    pub span: Option<Range<usize>>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    /// Entries in document order, so errors come out in the order they were written.
    Table(Vec<(String, Node)>),
}

impl Kind {
    /// The type as an error message names it.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::String(_) => "a string",
            Kind::Integer(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Boolean(_) => "a boolean",
            Kind::Datetime(_) => "a datetime",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

impl Node {
    fn bare(kind: Kind) -> Self {
        Node { span: None, kind }
    }
}

/// Parses a TOML document.
pub(crate) fn parse(text: &str) -> Result<Node, toml::de::Error> {
    toml::from_str(text)
}

/// 1-based line and column (in characters) of a byte offset. Never panics, whatever
/// the offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let prefix = &bytes[..offset.min(bytes.len())];
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    #[allow(
        clippy::naive_bytecount,
        reason = "once per configuration error; not worth a dependency"
    )]
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let last = &prefix[line_start..];
    let column = match std::str::from_utf8(last) {
        Ok(s) => s.chars().count(),
        // The offset fell inside a character: count the whole ones before it.
        Err(e) => {
            std::str::from_utf8(&last[..e.valid_up_to()]).map_or(last.len(), |s| s.chars().count())
        }
    };
    (line, column + 1)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// The value inside a span. It must not ask for a span again: toml would hand out the
/// same span forever.
struct Bare(Node);

impl<'de> Deserialize<'de> for Bare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(Bare)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::bare(Kind::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::bare(Kind::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| Node::bare(Kind::Integer(v)))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::bare(Kind::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::bare(Kind::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::bare(Kind::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::bare(Kind::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Node::bare(Kind::Table(Vec::new())));
        };
        if first == SPAN_START {
            let start: usize = map.next_value()?;
            let mut end = start;
            let mut value = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == SPAN_END {
                    end = map.next_value()?;
                } else if key == SPAN_VALUE {
                    value = Some(map.next_value::<Bare>()?.0);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            let mut node = value.ok_or_else(|| de::Error::custom("a span without a value"))?;
            node.span = Some(start..end.max(start));
            return Ok(node);
        }
        if first == DATETIME_FIELD {
            let text: String = map.next_value()?;
            return Ok(Node::bare(Kind::Datetime(text)));
        }
        let mut entries = vec![(first, map.next_value::<Node>()?)];
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Node::bare(Kind::Table(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(node: &Node) -> &[(String, Node)] {
        match &node.kind {
            Kind::Table(t) => t,
            other => panic!("not a table: {other:?}"),
        }
    }

    #[test]
    fn values_carry_spans() {
        let text = "a = 1\n[b]\nc = \"x\"\nd = [true, 2.5]\n";
        let root = parse(text).unwrap();
        let t = table(&root);
        assert_eq!(t[0].0, "a");
        assert_eq!(t[0].1.kind, Kind::Integer(1));
        assert_eq!(line_col(text, t[0].1.span.clone().unwrap().start), (1, 5));
        let b = table(&t[1].1);
        assert_eq!(b[0].1.kind, Kind::String("x".into()));
        assert_eq!(line_col(text, b[0].1.span.clone().unwrap().start), (3, 5));
        let Kind::Array(items) = &b[1].1.kind else {
            panic!()
        };
        assert_eq!(items[1].kind, Kind::Float(2.5));
        assert!(items[1].span.is_some());
    }

    #[test]
    fn implicit_tables_and_datetimes_are_read() {
        let text = "[a.b.c]\nd = 1979-05-27T07:32:00Z\n[[e.f]]\ng = { h.i = 1 }\n";
        let root = parse(text).unwrap();
        let a = table(&root);
        let b = table(&a[0].1);
        let c = table(&table(&b[0].1)[0].1);
        assert!(matches!(c[0].1.kind, Kind::Datetime(_)));
        let e = table(&a[1].1);
        assert!(matches!(e[0].1.kind, Kind::Array(_)));
    }

    #[test]
    fn syntax_errors_have_spans() {
        let text = "a = 1\nb = \n";
        let e = parse(text).unwrap_err();
        let span = e.span().unwrap();
        assert_eq!(line_col(text, span.start).0, 2);
    }

    #[test]
    fn line_col_never_panics() {
        assert_eq!(line_col("", 10), (1, 1));
        assert_eq!(line_col("é\nxé", 6), (2, 3));
        assert_eq!(line_col("é\nxé", 5), (2, 2));
        // Inside the two-byte `é`.
        assert_eq!(line_col("aé", 2), (1, 2));
    }
}
