//! Templates: text with `${param:name}` and `${time.BASE|FORMAT|±N UNIT}` expressions, parsed once.

use std::collections::BTreeMap;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::model::Param;

/// Parsed text; serialises as its source string.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A malformed expression at a byte offset of the template's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("undefined parameter `{0}`")]
    UndefinedParam(String),
}

/// What a template is rendered against: the instance's parameters and its "now" (the scheduled time).
pub struct RenderContext<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub now: DateTime<Tz>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            source: source.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Names used as `${param:name}`, in order of appearance.
    pub fn param_refs(&self) -> Vec<&str> {
        todo!("Template::param_refs")
    }

    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        let _ = ctx;
        todo!("Template::render")
    }
}

/// Evaluates coordinator parameters in order (a later one may use an earlier one), on top of `given`
/// (values given explicitly win and are not re-evaluated).
pub fn evaluate_params(
    params: &[Param],
    given: &BTreeMap<String, String>,
    now: DateTime<Tz>,
) -> Result<BTreeMap<String, String>, RenderError> {
    let _ = (params, given, now);
    todo!("evaluate_params")
}
