//! `calendars.xml`: business calendars that coordinators name in `calendar="..."`.
//!
//! Recognised by its root element (`<calendars>`), wherever it lies in the set. Each problem inside
//! a calendar (a bad date, a reversed or overlapping range, a date both holiday and workday, an
//! unknown weekday) is an error at its element; names unique across files are the validator's.

use chrono::NaiveDate;

use super::super::calendar::{Calendar, WEEKDAYS};
use super::super::xml::Element;
use super::schema;
use super::{Ctx, Site};

const DATE_FORMAT: &str = "%Y-%m-%d";

pub(crate) fn parse_calendars(ctx: &mut Ctx<'_>, root: &Element) -> Vec<(Calendar, Site)> {
    ctx.allow(root, "<calendars>", &schema::CALENDARS);
    let mut out = Vec::new();
    for el in root.children_named("calendar") {
        let Some(name) = ctx.required(el, "<calendar>", "name") else {
            continue;
        };
        let subject = format!("calendar \"{name}\"");
        ctx.allow(el, &subject, &schema::CALENDAR);
        let weekend = weekend(ctx, el, &subject);
        // (range, line) of each holiday, and (date, line) of each workday, for the set checks
        let mut holidays: Vec<((NaiveDate, NaiveDate), u32)> = Vec::new();
        let mut workdays: Vec<(NaiveDate, u32)> = Vec::new();
        for h in el.children_named("holiday") {
            let hsub = format!("<holiday> of {subject}");
            ctx.allow(h, &hsub, &schema::HOLIDAY);
            let range = match (ctx.optional(h, "date"), ctx.optional(h, "from")) {
                (Some(_), Some(_)) => {
                    ctx.error(h, format!("{hsub}: give either date or from/to, not both"));
                    None
                }
                (Some(date), None) => date_attr(ctx, h, &hsub, "date", &date).map(|d| (d, d)),
                (None, Some(from)) => {
                    let from = date_attr(ctx, h, &hsub, "from", &from);
                    let to = ctx
                        .required(h, &hsub, "to")
                        .and_then(|to| date_attr(ctx, h, &hsub, "to", &to));
                    match (from, to) {
                        (Some(f), Some(t)) if f > t => {
                            ctx.error(h, format!("{hsub}: from {f} is after to {t}"));
                            None
                        }
                        (Some(f), Some(t)) => Some((f, t)),
                        _ => None,
                    }
                }
                (None, None) => {
                    ctx.error(h, format!("{hsub} has no date (or from and to) attribute"));
                    None
                }
            };
            let Some(range) = range else { continue };
            if let Some((_, line)) = holidays
                .iter()
                .find(|((f, t), _)| range.0 <= *t && *f <= range.1)
            {
                ctx.error(
                    h,
                    format!(
                        "{hsub}: {} to {} overlaps the holiday at line {line}",
                        range.0, range.1
                    ),
                );
                continue;
            }
            holidays.push((range, h.pos.line));
        }
        for w in el.children_named("workday") {
            let wsub = format!("<workday> of {subject}");
            ctx.allow(w, &wsub, &schema::WORKDAY);
            let Some(date) = ctx
                .required(w, &wsub, "date")
                .and_then(|v| date_attr(ctx, w, &wsub, "date", &v))
            else {
                continue;
            };
            if let Some((_, line)) = workdays.iter().find(|(d, _)| *d == date) {
                ctx.error(
                    w,
                    format!("{wsub}: {date} is already a workday at line {line}"),
                );
                continue;
            }
            if let Some((_, line)) = holidays.iter().find(|((f, t), _)| *f <= date && date <= *t) {
                ctx.error(
                    w,
                    format!("{wsub}: {date} is both a workday and a holiday (line {line})"),
                );
                continue;
            }
            workdays.push((date, w.pos.line));
        }
        let mut holidays: Vec<(NaiveDate, NaiveDate)> = holidays.into_iter().map(|h| h.0).collect();
        let mut workdays: Vec<NaiveDate> = workdays.into_iter().map(|w| w.0).collect();
        holidays.sort();
        workdays.sort();
        out.push((
            Calendar {
                name,
                weekend,
                holidays,
                workdays,
            },
            ctx.site(el),
        ));
    }
    out
}

/// `weekend="sat,sun"` as ISO weekday numbers; the default is Saturday and Sunday, `""` none.
fn weekend(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Vec<u32> {
    let Some(text) = el.attr("weekend") else {
        return vec![6, 7];
    };
    let mut days = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let lower = item.to_ascii_lowercase();
        match WEEKDAYS.iter().position(|d| lower.starts_with(d)) {
            Some(i) if !days.contains(&(i as u32 + 1)) => days.push(i as u32 + 1),
            Some(_) => {}
            None => ctx.error(
                el,
                format!(
                    "{subject}: unknown weekday \"{item}\" in weekend: expected {}",
                    WEEKDAYS.join(", ")
                ),
            ),
        }
    }
    days.sort_unstable();
    days
}

fn date_attr(
    ctx: &mut Ctx<'_>,
    el: &Element,
    subject: &str,
    attr: &str,
    value: &str,
) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(value, DATE_FORMAT) {
        Ok(d) => Some(d),
        Err(_) => {
            ctx.error(
                el,
                format!("{subject}: {attr} \"{value}\" is not a date in the form yyyy-MM-dd"),
            );
            None
        }
    }
}
