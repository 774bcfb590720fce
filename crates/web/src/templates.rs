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
    ("blocked.html", include_str!("../templates/blocked.html")),
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
        "email_code.txt",
        include_str!("../templates/email_code.txt"),
    ),
    (
        "email_account_exists.txt",
        include_str!("../templates/email_account_exists.txt"),
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
