//! Templates: text with `${param:name}` and `${time.BASE|FORMAT|±N UNIT}` expressions, parsed once.
//!
//! Owns: the expression grammar, the translation of Java `SimpleDateFormat` letters to chrono, and
//! rendering against a [`RenderContext`]. Invariant: a [`Template`] that exists has parsed, so
//! rendering can only fail on an undefined parameter (or a date chrono cannot represent).
//! Any `${...}` that is neither `param:` nor `time.` (shell variables such as `${HOME}`) stays literal.
//!
//! Time expressions, as in the original `ParamHandler`:
//! - BASE `today` is "now" (the instance's scheduled time), `yestoday`/`yesterday` is now minus one
//!   day, `cur_month` is now, `last_month` is now minus one month;
//! - FORMAT is Java `SimpleDateFormat` (`yyyy-MM-dd HH:mm:ss`, `yyyyMM`, `'T'` quoted literals);
//!   when absent it is `yyyy-MM-dd` for the day bases and `yyyy-MM` for the month bases;
//! - `±N UNIT` (UNIT `day`, `month`, `hour`, `minute`, singular or plural, sign optional) is added
//!   after BASE; all arithmetic is on the wall-clock time of "now"'s zone, so `-1 day` is the previous
//!   calendar day even across a DST change, and a month step clamps the day (Mar 31 − 1 month = Feb 28/29).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Days, Months, NaiveDateTime, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;

/// A coordinator parameter, evaluated in order at fire time (a name and the template of its value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: Template,
}

/// Parsed text; serialises as its source string.
///
/// One pointer wide (shared, immutable): the model holds many templates, and a two-`Vec` value made
/// every enum that contains them several hundred bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    inner: Arc<Inner>,
}

#[derive(Debug, PartialEq)]
struct Inner {
    source: String,
    parts: Vec<Part>,
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.inner.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Literal(String),
    /// `${param:x}`: the value as it is (raw text, the original's semantics).
    Param(String),
    /// `${param:x|sh}` or `${param:x|sql}`: the value as one quoted literal of the target.
    QuotedParam(String, Quote),
    Time(TimeExpr),
}

/// A quoting filter: `${param:x|sh}`, `${param:x|sql}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// One single-quoted shell word: `'` + the value with each `'` written `'\''` + `'`. Safe
    /// anywhere a word goes in bash or sh (`echo ${param:x|sh}`), never inside other quotes.
    Sh,
    /// One SQL string literal: `'` + the value with each `'` doubled + `'`. A value holding a
    /// backslash or a NUL fails the render: MySQL reads `\` as an escape where PostgreSQL and
    /// SQLite do not, so no single spelling is both safe and exact on every backend.
    Sql,
}

impl Quote {
    fn apply(self, name: &str, value: &str) -> Result<String, RenderError> {
        Ok(match self {
            Quote::Sh => format!("'{}'", value.replace('\'', r"'\''")),
            Quote::Sql => {
                if value.contains(['\\', '\0']) {
                    return Err(RenderError::Unquotable(name.to_string()));
                }
                format!("'{}'", value.replace('\'', "''"))
            }
        })
    }
}

/// `${time.BASE|FORMAT|±N UNIT}` after parsing.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeExpr {
    pub base: TimeBase,
    /// chrono `strftime` text translated from the Java pattern (already checked to be valid).
    pub chrono_format: String,
    pub offset: Option<TimeOffset>,
}

/// The `BASE` of `${time.BASE}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBase {
    Today,
    /// `yestoday` (the original's spelling) or `yesterday`.
    Yesterday,
    CurMonth,
    LastMonth,
}

/// `±N UNIT`, added after the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeOffset {
    pub amount: i64,
    pub unit: TimeUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The unit of a [`TimeOffset`].
pub enum TimeUnit {
    Day,
    Month,
    Hour,
    Minute,
    /// Business days of the coordinator's calendar (the time of day is kept).
    Workday,
}

/// A malformed expression at a byte offset of the template's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Why a parsed template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("undefined parameter `{0}`")]
    UndefinedParam(String),
    /// Only reachable with a "now" near chrono's limits; offsets are bounded at parse time.
    #[error("date out of range in `{0}`")]
    DateOutOfRange(String),
    #[error("`{0}` counts workdays, but the workflow's coordinator names no calendar")]
    NoCalendar(String),
    #[error(
        "parameter `{0}` holds a backslash or a NUL, which `|sql` refuses (the SQL dialects read a backslash differently): pass it another way"
    )]
    Unquotable(String),
}

/// What a template is rendered against: the instance's parameters and its "now" (the scheduled time).
pub struct RenderContext<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub now: DateTime<Tz>,
    /// The coordinator's business calendar, which `workday` offsets count in.
    pub calendar: Option<&'a Calendar>,
}

/// Bounds `±N`, so that date arithmetic on any realistic "now" stays inside chrono's range.
const MAX_OFFSET: i64 = 1_000_000;

impl Template {
    /// Parses `source`; an error names the malformed `${param:..}`/`${time..}` expression.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while let Some(rel) = source[i..].find("${") {
            let start = i + rel;
            let body_start = start + 2;
            let rest = &source[body_start..];
            let trimmed = rest.trim_start();
            if !(trimmed.starts_with("param:") || trimmed.starts_with("time.")) {
                // A shell variable or similar: not ours, keep it as text.
                literal.push_str(&source[i..body_start]);
                i = body_start;
                continue;
            }
            let Some(end) = rest.find('}') else {
                return Err(TemplateError {
                    offset: start,
                    message: format!(
                        "unterminated expression `{}`: missing `}}`",
                        &source[start..]
                    ),
                });
            };
            let body = &rest[..end];
            let part = parse_expression(body).map_err(|message| TemplateError {
                offset: start,
                message,
            })?;
            literal.push_str(&source[i..start]);
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            i = body_start + end + 1;
        }
        literal.push_str(&source[i..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            inner: Arc::new(Inner {
                source: source.to_string(),
                parts,
            }),
        })
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.inner.source
    }

    /// The parsed pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.inner.parts
    }

    /// Whether a time expression counts `workday`s (and so needs a calendar).
    pub fn counts_workdays(&self) -> bool {
        self.inner.parts.iter().any(
            |p| matches!(p, Part::Time(e) if e.offset.is_some_and(|o| o.unit == TimeUnit::Workday)),
        )
    }

    /// Names used as `${param:name}`, in order of first appearance.
    pub fn param_refs(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.inner.parts {
            if let Part::Param(name) | Part::QuotedParam(name, _) = part {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Substitutes parameters and times; any other `${...}` is kept as written.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.inner.source.len());
        for part in &self.inner.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Param(name) => match ctx.params.get(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(RenderError::UndefinedParam(name.clone())),
                },
                Part::QuotedParam(name, quote) => match ctx.params.get(name) {
                    Some(value) => out.push_str(&quote.apply(name, value)?),
                    None => return Err(RenderError::UndefinedParam(name.clone())),
                },
                Part::Time(expr) => {
                    let workdays = expr.offset.is_some_and(|o| o.unit == TimeUnit::Workday);
                    if workdays && ctx.calendar.is_none() {
                        return Err(RenderError::NoCalendar(self.inner.source.clone()));
                    }
                    let at = expr
                        .instant(ctx.now.naive_local(), ctx.calendar)
                        .ok_or_else(|| RenderError::DateOutOfRange(self.inner.source.clone()))?;
                    out.push_str(&at.format(&expr.chrono_format).to_string());
                }
            }
        }
        Ok(out)
    }
}

impl TimeExpr {
    /// The wall-clock time this expression denotes for `now` (`workday`s counted in `calendar`).
    fn instant(&self, now: NaiveDateTime, calendar: Option<&Calendar>) -> Option<NaiveDateTime> {
        let base = match self.base {
            TimeBase::Today | TimeBase::CurMonth => now,
            TimeBase::Yesterday => now.checked_sub_days(Days::new(1))?,
            TimeBase::LastMonth => now.checked_sub_months(Months::new(1))?,
        };
        let Some(offset) = self.offset else {
            return Some(base);
        };
        let n = offset.amount;
        match offset.unit {
            TimeUnit::Day if n >= 0 => base.checked_add_days(Days::new(n.unsigned_abs())),
            TimeUnit::Day => base.checked_sub_days(Days::new(n.unsigned_abs())),
            TimeUnit::Month => {
                let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
                if n >= 0 {
                    base.checked_add_months(months)
                } else {
                    base.checked_sub_months(months)
                }
            }
            TimeUnit::Hour => base.checked_add_signed(TimeDelta::try_hours(n)?),
            TimeUnit::Minute => base.checked_add_signed(TimeDelta::try_minutes(n)?),
            TimeUnit::Workday => {
                let day = calendar?.add_business_days(base.date(), n)?;
                Some(day.and_time(base.time()))
            }
        }
    }
}

/// Parses the text between `${` and `}` of a `param:` or `time.` expression.
fn parse_expression(body: &str) -> Result<Part, String> {
    let trimmed = body.trim();
    if let Some(name) = trimmed.strip_prefix("param:") {
        let (name, filter) = match name.split_once('|') {
            Some((n, f)) => (n.trim(), Some(f.trim())),
            None => (name.trim(), None),
        };
        if name.is_empty() {
            return Err("empty parameter name in `${param:}`".to_string());
        }
        if name.chars().any(char::is_whitespace) {
            return Err(format!("parameter name `{name}` contains white space"));
        }
        return match filter {
            None => Ok(Part::Param(name.to_string())),
            Some("sh") => Ok(Part::QuotedParam(name.to_string(), Quote::Sh)),
            Some("sql") => Ok(Part::QuotedParam(name.to_string(), Quote::Sql)),
            Some(other) => Err(format!(
                "unknown filter `{other}` in `${{{trimmed}}}`: expected `|sh` (a quoted shell word) or `|sql` (a quoted SQL string)"
            )),
        };
    }
    let pieces: Vec<&str> = trimmed.split('|').map(str::trim).collect();
    if pieces.len() > 3 {
        return Err(format!(
            "too many `|` in `${{{trimmed}}}`: expected ${{time.BASE}}, ${{time.BASE|FORMAT}} or ${{time.BASE|FORMAT|±N UNIT}}"
        ));
    }
    let base_name = pieces[0].strip_prefix("time.").unwrap_or(pieces[0]);
    let base = match base_name {
        "today" => TimeBase::Today,
        "yestoday" | "yesterday" => TimeBase::Yesterday,
        "cur_month" => TimeBase::CurMonth,
        "last_month" => TimeBase::LastMonth,
        other => {
            return Err(format!(
                "unknown time base `{other}` in `${{{trimmed}}}`: expected today, yestoday, yesterday, cur_month or last_month"
            ))
        }
    };
    let java_format = match pieces.get(1) {
        Some(f) if !f.is_empty() => f,
        _ => match base {
            TimeBase::Today | TimeBase::Yesterday => "yyyy-MM-dd",
            TimeBase::CurMonth | TimeBase::LastMonth => "yyyy-MM",
        },
    };
    let chrono_format = java_to_chrono(java_format)
        .map_err(|e| format!("bad date format `{java_format}` in `${{{trimmed}}}`: {e}"))?;
    let offset = match pieces.get(2) {
        Some(text) => Some(
            parse_offset(text)
                .map_err(|e| format!("bad offset `{text}` in `${{{trimmed}}}`: {e}"))?,
        ),
        None => None,
    };
    Ok(Part::Time(TimeExpr {
        base,
        chrono_format,
        offset,
    }))
}

/// `-1 day`, `+2 months`, `3 hour`.
fn parse_offset(text: &str) -> Result<TimeOffset, String> {
    let t = text.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, t[1..].trim_start()),
        Some(b'+') => (false, t[1..].trim_start()),
        _ => (false, t),
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return Err("expected ±N UNIT, for example -1 day".to_string());
    }
    let amount: i64 = rest[..digits_end]
        .parse()
        .map_err(|_| "number too large".to_string())?;
    if amount > MAX_OFFSET {
        return Err(format!("offset larger than {MAX_OFFSET}"));
    }
    let unit = match rest[digits_end..].trim().to_ascii_lowercase().as_str() {
        "day" | "days" => TimeUnit::Day,
        "month" | "months" => TimeUnit::Month,
        "hour" | "hours" => TimeUnit::Hour,
        "minute" | "minutes" => TimeUnit::Minute,
        "workday" | "workdays" => TimeUnit::Workday,
        "" => return Err("missing unit: expected day, month, hour, minute or workday".to_string()),
        other => {
            return Err(format!(
                "unknown unit `{other}`: expected day, month, hour, minute or workday"
            ))
        }
    };
    Ok(TimeOffset {
        amount: if negative { -amount } else { amount },
        unit,
    })
}

/// Translates a Java `SimpleDateFormat` pattern into chrono `strftime` text.
///
/// Letters with no faithful chrono equivalent (time zones, week numbers, `k`/`K` hours) are refused
/// rather than approximated, so a date never silently comes out different from the original's.
pub fn java_to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // '' is a quote; 'text' is literal text in which '' is a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated quoted text".to_string()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('%') => {
                        out.push_str("%%");
                        i += 1;
                    }
                    Some(&other) => {
                        out.push(other);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', _) => return Err("milliseconds must be written SSS".to_string()),
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', 1) => "%-j",
            ('D', _) => "%j",
            ('u', _) => "%u",
            (other, _) => return Err(format!("unsupported date letter `{other}`")),
        };
        out.push_str(spec);
        i += n;
    }
    // Formatting with an invalid item panics in chrono's Display: make sure that cannot happen.
    if StrftimeItems::new(&out).any(|item| matches!(item, Item::Error)) {
        return Err(format!("cannot translate to a chrono format (got `{out}`)"));
    }
    Ok(out)
}

/// Evaluates coordinator parameters in order (a later one may use an earlier one), on top of `given`
/// (values given explicitly win and are not re-evaluated).
pub fn evaluate_params(
    params: &[Param],
    given: &BTreeMap<String, String>,
    now: DateTime<Tz>,
) -> Result<BTreeMap<String, String>, RenderError> {
    let (values, missing) = evaluate_params_leniently(params, given, now, None)?;
    match missing.into_iter().next() {
        Some(name) => Err(RenderError::UndefinedParam(name)),
        None => Ok(values),
    }
}

/// [`evaluate_params`], going on past undefined parameters: the values it could compute (a parameter
/// built from an undefined one is left out) and the undefined names, in order of first use.
pub fn evaluate_params_leniently(
    params: &[Param],
    given: &BTreeMap<String, String>,
    now: DateTime<Tz>,
    calendar: Option<&Calendar>,
) -> Result<(BTreeMap<String, String>, Vec<String>), RenderError> {
    let mut values = given.clone();
    let mut missing: Vec<String> = Vec::new();
    for param in params {
        if given.contains_key(&param.name) {
            continue;
        }
        let rendered = param.value.render(&RenderContext {
            params: &values,
            now,
            calendar,
        });
        match rendered {
            Ok(value) => {
                values.insert(param.name.clone(), value);
            }
            Err(RenderError::UndefinedParam(name)) => {
                values.remove(&param.name);
                if !missing.contains(&name) {
                    missing.push(name);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok((values, missing))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Tz> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    fn render(
        src: &str,
        params: &[(&str, &str)],
        now: DateTime<Tz>,
    ) -> Result<String, RenderError> {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::parse(src).unwrap().render(&RenderContext {
            params: &params,
            now,
            calendar: None,
        })
    }

    #[test]
    fn renders_time_expressions() {
        let now = at(Tz::Asia__Shanghai, 2024, 3, 1, 9, 5, 7);
        let cases = [
            ("${time.today}", "2024-03-01"),
            ("${time.yestoday}", "2024-02-29"),
            ("${time.yesterday|yyyyMMdd}", "20240229"),
            ("${time.cur_month}", "2024-03"),
            ("${time.last_month}", "2024-02"),
            ("${time.last_month|yyyyMM}", "202402"),
            ("${time.today|yyyy-MM-dd|-1 day}", "2024-02-29"),
            ("${time.today|yyyy-MM-dd|+1 day}", "2024-03-02"),
            ("${time.today|yyyy-MM-dd|1 days}", "2024-03-02"),
            ("${time.today|yyyy-MM|-13 month}", "2023-02"),
            ("${time.today|HH:mm|-2 hours}", "07:05"),
            ("${time.today|HH:mm|+90 minute}", "10:35"),
            ("${time.today|yyyy-MM-dd HH:mm:ss}", "2024-03-01 09:05:07"),
            ("${time.today|yyyy-MM-dd hh:mm a}", "2024-03-01 09:05 AM"),
            ("${time.today|yyyy-MM-dd'T'HH:mm}", "2024-03-01T09:05"),
            ("${time.today|yy/M/d H:m:s}", "24/3/1 9:5:7"),
            ("${time.today|EEE, MMM d}", "Fri, Mar 1"),
            ("${time.today|EEEE MMMM}", "Friday March"),
            ("${time.today|HH:mm:ss.SSS}", "09:05:07.000"),
            ("${time.today|DDD u}", "061 5"),
            ("${time.today|'it''s' yyyy}", "it's 2024"),
            ("${time.today|yyyy '%' MM}", "2024 % 03"),
            ("${ time.today | yyyy | -1 month }", "2024"),
            ("d=${time.today|dd}, m=${time.cur_month|MM}", "d=01, m=03"),
        ];
        for (src, want) in cases {
            assert_eq!(render(src, &[], now).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn month_arithmetic_clamps_the_day() {
        let now = at(Tz::UTC, 2024, 3, 31, 0, 0, 0);
        assert_eq!(
            render("${time.last_month|yyyy-MM-dd}", &[], now).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            render("${time.today|yyyy-MM-dd|+1 month}", &[], now).unwrap(),
            "2024-04-30"
        );
    }

    #[test]
    fn day_arithmetic_is_on_the_wall_clock_across_dst() {
        // 2024-03-10 is 23 hours long in New York; "-1 day" still lands on the same clock time.
        let now = at(Tz::America__New_York, 2024, 3, 11, 0, 30, 0);
        assert_eq!(
            render("${time.today|yyyy-MM-dd HH:mm|-1 day}", &[], now).unwrap(),
            "2024-03-10 00:30"
        );
    }

    #[test]
    fn params_and_other_dollar_braces() {
        let now = at(Tz::UTC, 2024, 1, 1, 0, 0, 0);
        let cases = [
            ("a ${param:x} b", "a 1 b"),
            ("${param:x}${param:y}", "12"),
            ("echo ${HOME} $x ${param:x}", "echo ${HOME} $x 1"),
            ("${timeout} ${parameter}", "${timeout} ${parameter}"),
            ("${", "${"),
            ("cost: $5 {x}", "cost: $5 {x}"),
            ("中文${param:y}名", "中文2名"),
        ];
        for (src, want) in cases {
            assert_eq!(
                render(src, &[("x", "1"), ("y", "2")], now).unwrap(),
                want,
                "{src}"
            );
        }
    }

    #[test]
    fn quoting_filters_make_one_literal_of_any_value() {
        let now = at(Tz::UTC, 2024, 1, 1, 0, 0, 0);
        let nasty = "it's $(touch f) `id` \"x\" ; rm -rf /";
        let sh = render("echo ${param:x|sh}", &[("x", nasty)], now).unwrap();
        assert_eq!(sh, r#"echo 'it'\''s $(touch f) `id` "x" ; rm -rf /'"#);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {}", &sh["echo ".len()..]))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            nasty,
            "bash reads back the value"
        );
        assert_eq!(
            render("where a = ${ param:x | sql }", &[("x", "o'brien")], now).unwrap(),
            "where a = 'o''brien'"
        );
        assert_eq!(
            render("${param:x|sql}", &[("x", r"a\'")], now),
            Err(RenderError::Unquotable("x".into()))
        );
        let t = Template::parse("${param:x|sh} ${param:y|sql} ${param:x}").unwrap();
        assert_eq!(t.param_refs(), vec!["x", "y"]);
        let e = Template::parse("${param:x|html}").unwrap_err();
        assert!(e.message.contains("unknown filter `html`"), "{}", e.message);
    }

    #[test]
    fn undefined_param_is_named() {
        let now = at(Tz::UTC, 2024, 1, 1, 0, 0, 0);
        assert_eq!(
            render("x ${param:nope}", &[], now),
            Err(RenderError::UndefinedParam("nope".to_string()))
        );
    }

    #[test]
    fn parse_errors_have_offsets_and_say_what_is_wrong() {
        let cases = [
            ("ab ${time.tomorrow}", 3, "unknown time base `tomorrow`"),
            ("${time.today|yyyy|-1 week}", 0, "unknown unit `week`"),
            ("${time.today|yyyy|day}", 0, "expected ±N UNIT"),
            ("${time.today|yyyy|-1}", 0, "missing unit"),
            ("${time.today|yyyy|-99999999 day}", 0, "offset larger than"),
            ("${time.today|yyyy-ww}", 0, "unsupported date letter `w`"),
            ("${time.today|HH:mm z}", 0, "unsupported date letter `z`"),
            ("${time.today|'T}", 0, "unterminated quoted text"),
            ("${time.today|a|b|c}", 0, "too many `|`"),
            ("x${param:}", 1, "empty parameter name"),
            ("x${param:a b}", 1, "contains white space"),
            ("run ${param:x", 4, "unterminated expression"),
            ("${time.today|ss.S}", 0, "milliseconds must be written SSS"),
        ];
        for (src, offset, msg) in cases {
            let err = Template::parse(src).unwrap_err();
            assert_eq!(err.offset, offset, "{src}");
            assert!(err.message.contains(msg), "{src}: {}", err.message);
        }
    }

    #[test]
    fn param_refs_in_order_without_duplicates() {
        let t = Template::parse("${param:b} ${time.today} ${param:a} ${param:b}").unwrap();
        assert_eq!(t.param_refs(), vec!["b", "a"]);
    }

    #[test]
    fn serialises_as_its_source() {
        let t = Template::parse("x ${param:a}").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"x ${param:a}\"");
        let back: Template = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<Template>("\"${time.never}\"").is_err());
    }

    #[test]
    fn evaluate_params_in_order_with_given_values_winning() {
        let now = at(Tz::Asia__Shanghai, 2024, 5, 10, 1, 30, 0);
        let p = |name: &str, value: &str| Param {
            name: name.to_string(),
            value: Template::parse(value).unwrap(),
        };
        let params = [
            p("stadate", "${time.today|yyyy-MM-dd|-1 day}"),
            p("table", "t_${param:stadate}"),
            p("cnt", "2"),
            p("label", "${param:cnt}/${param:table}"),
        ];
        let values = evaluate_params(&params, &BTreeMap::new(), now).unwrap();
        assert_eq!(values["stadate"], "2024-05-09");
        assert_eq!(values["table"], "t_2024-05-09");
        assert_eq!(values["label"], "2/t_2024-05-09");

        let given = BTreeMap::from([("stadate".to_string(), "2000-01-01".to_string())]);
        let values = evaluate_params(&params, &given, now).unwrap();
        assert_eq!(values["stadate"], "2000-01-01");
        assert_eq!(values["label"], "2/t_2000-01-01");

        let later = [p("a", "${param:b}"), p("b", "1")];
        assert_eq!(
            evaluate_params(&later, &BTreeMap::new(), now),
            Err(RenderError::UndefinedParam("b".to_string()))
        );
    }
}
