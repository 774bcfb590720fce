//! Message catalogues and language negotiation. Pages are shown in the language the
//! application asked for with `ui_locales`, else the browser's `Accept-Language`,
//! else English.

use std::collections::{BTreeMap, HashMap};

/// Locales with a catalogue, the default first.
pub const SUPPORTED: &[&str] = &["en", "nb"];
pub const DEFAULT_LOCALE: &str = usher_signup::DEFAULT_LOCALE;

const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.toml")),
    ("nb", include_str!("../locales/nb.toml")),
];

#[derive(Debug, thiserror::Error)]
#[error("message catalogue {locale}: {message}")]
pub struct CatalogueError {
    locale: String,
    message: String,
}

/// Every message in every supported language.
#[derive(Debug)]
pub struct Catalogue {
    messages: HashMap<&'static str, BTreeMap<String, String>>,
}

impl Catalogue {
    pub fn load() -> Result<Self, CatalogueError> {
        let mut messages = HashMap::new();
        for (locale, source) in SOURCES {
            let table: BTreeMap<String, String> =
                toml::from_str(source).map_err(|e| CatalogueError {
                    locale: (*locale).into(),
                    message: e.to_string(),
                })?;
            messages.insert(*locale, table);
        }
        Ok(Self { messages })
    }

    pub fn keys(&self, locale: &str) -> impl Iterator<Item = &str> {
        self.messages
            .get(locale)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    pub fn has(&self, key: &str) -> bool {
        self.messages
            .get(DEFAULT_LOCALE)
            .is_some_and(|m| m.contains_key(key))
    }

    /// The message `key` in `locale` with `{name}` placeholders filled. A key missing in
    /// `locale` falls back to English; a key missing everywhere is shown as itself so a
    /// page never fails to render (the catalogue tests catch it).
    pub fn message(&self, locale: &str, key: &str, args: &[(&str, String)]) -> String {
        let template = self
            .messages
            .get(locale)
            .and_then(|m| m.get(key))
            .or_else(|| self.messages.get(DEFAULT_LOCALE).and_then(|m| m.get(key)));
        let Some(template) = template else {
            return key.to_owned();
        };
        let mut out = template.clone();
        for (name, value) in args {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

/// Picks the locale: the first supported tag of `ui_locales` (space-separated), else
/// the best of `Accept-Language`, else English. `nn` and `no` are served Bokmål, the
/// closest catalogue.
pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> &'static str {
    if let Some(found) = ui_locales
        .into_iter()
        .flat_map(|s| s.split_whitespace())
        .find_map(supported)
    {
        return found;
    }
    if let Some(found) = accept_language
        .map(ranked_languages)
        .unwrap_or_default()
        .into_iter()
        .find_map(supported)
    {
        return found;
    }
    DEFAULT_LOCALE
}

/// The person's preferred language as the browser states it (the highest-ranked tag of
/// `Accept-Language`), whether or not Usher has pages in it: connectors are told what
/// the person reads, not what the page fell back to.
pub fn browser_language(accept_language: Option<&str>) -> Option<String> {
    ranked_languages(accept_language?)
        .into_iter()
        .find(|tag| {
            (1..=35).contains(&tag.len())
                && tag.split('-').all(|p| {
                    (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
                })
        })
        .map(str::to_owned)
}

/// The tags of an `Accept-Language` header, best first (ties keep their order); `q=0`
/// and unparsable weights are dropped.
fn ranked_languages(header: &str) -> Vec<&str> {
    let mut ranked: Vec<(f32, usize, &str)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            (q > 0.0 && !tag.is_empty()).then_some((q, i, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, tag)| tag).collect()
}

fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    match primary.as_str() {
        "en" => Some("en"),
        "nb" | "no" | "nn" => Some("nb"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_have_the_same_keys() {
        let c = Catalogue::load().unwrap();
        let en: Vec<_> = c.keys("en").collect();
        for locale in SUPPORTED {
            let other: Vec<_> = c.keys(locale).collect();
            assert_eq!(en, other, "catalogue {locale} differs from en");
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let c = Catalogue::load().unwrap();
        assert_eq!(
            c.message("nb", "error.too_long", &[("max", "64".into())]),
            "Bruk høyst 64 tegn."
        );
        assert_eq!(c.message("en", "no.such.key", &[]), "no.such.key");
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("nb-NO"), Some("en")), "nb");
        assert_eq!(negotiate(Some("fr en-US"), None), "en");
        assert_eq!(negotiate(None, Some("fr;q=0.9, nb;q=0.8, en;q=0.5")), "nb");
        assert_eq!(negotiate(None, Some("en;q=0.1, no")), "nb");
        assert_eq!(negotiate(None, Some("de")), "en");
        assert_eq!(negotiate(Some(""), Some("nb;q=0")), "en");
        assert_eq!(negotiate(None, Some(";;;,,q=x")), "en");
    }

    #[test]
    fn the_browser_language_is_the_first_choice_even_without_pages_in_it() {
        let de = Some("de-DE,de;q=0.9,en;q=0.5");
        assert_eq!(browser_language(de).as_deref(), Some("de-DE"));
        assert_eq!(negotiate(None, de), "en");
        assert_eq!(
            browser_language(Some("en;q=0.2, fr-CA")).as_deref(),
            Some("fr-CA")
        );
        assert_eq!(browser_language(Some("*, nb")).as_deref(), Some("nb"));
        assert_eq!(browser_language(Some("<script>, de;q=0")), None);
        assert_eq!(browser_language(None), None);
    }
}
