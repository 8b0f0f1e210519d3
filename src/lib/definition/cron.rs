//! Cron strings: parsing the forms the format allows, and DST-safe slot arithmetic.
//!
//! Owns: the five-field crontab grammar (minute hour day-of-month month day-of-week, with `*`, `a-b`,
//! `/n`, lists, month and day names, Sunday as 0 or 7), the natural forms, and `next_after`.
//! Our own matcher rather than the `cron` crate: that crate numbers weekdays from Sunday = 1 and ANDs
//! day-of-month with day-of-week, where crontab (and the original's users) mean Sunday = 0 and OR.
//! Slots are computed on the zone's wall clock and mapped to UTC; the host clock is never read.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed cron: normalised five-field text plus what is needed to compute slots.
#[derive(Clone, Debug)]
pub struct CronSpec {
    normalized: String,
    /// Bit i set: minute i (0..=59) matches; likewise for the other fields.
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days_of_month: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    days_of_week: u8,
    /// crontab's rule: when either day field starts with `*`, both must match; otherwise either.
    day_fields_and: bool,
}

/// The result of parsing a user's cron string.
#[derive(Clone, Debug)]
pub struct ParsedCron {
    pub spec: CronSpec,
    /// Set when the input was accepted with a caveat (six or more fields: only the first five used).
    pub warning: Option<String>,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far `next_after` looks: enough for `0 0 29 2 *` across a non-leap century year.
const SEARCH_DAYS: u32 = 366 * 9;

impl CronSpec {
    /// Parses five-field crontab, six-or-more-field strings (first five used, with a warning), and the
    /// natural forms "every N minutes", "every N hours", "every day at HH:MM".
    pub fn parse(text: &str) -> Result<ParsedCron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.eq_ignore_ascii_case("every"))
        {
            let five = natural(&fields).map_err(|e| format!("cron `{}`: {e}", text.trim()))?;
            let spec = Self::from_fields(&five.iter().map(String::as_str).collect::<Vec<_>>())
                .map_err(|e| format!("cron `{}`: {e}", text.trim()))?;
            return Ok(ParsedCron {
                spec,
                warning: None,
            });
        }
        let warning = match fields.len() {
            0 => return Err("empty cron string".to_string()),
            1..=4 => {
                return Err(format!(
                    "cron `{}` has {} field(s): expected five (minute hour day-of-month month day-of-week)",
                    text.trim(),
                    fields.len()
                ))
            }
            5 => None,
            n => Some(format!(
                "cron `{}` has {n} fields: only the first five (`{}`) are used, as the original did",
                text.trim(),
                fields[..5].join(" ")
            )),
        };
        let spec =
            Self::from_fields(&fields[..5]).map_err(|e| format!("cron `{}`: {e}", text.trim()))?;
        Ok(ParsedCron { spec, warning })
    }

    fn from_fields(f: &[&str]) -> Result<CronSpec, String> {
        let minutes = parse_field(f[0], "minute", 0, 59, &[])?;
        let hours = parse_field(f[1], "hour", 0, 23, &[])?;
        let days_of_month = parse_field(f[2], "day-of-month", 1, 31, &[])?;
        let months = parse_field(f[3], "month", 1, 12, &MONTH_NAMES)?;
        let mut days_of_week = parse_field(f[4], "day-of-week", 0, 7, &DAY_NAMES)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & 0x7f;
        }
        let spec = CronSpec {
            normalized: f.join(" "),
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week: days_of_week as u8,
            day_fields_and: f[2].starts_with('*') || f[4].starts_with('*'),
        };
        if spec.day_fields_and && !spec.some_date_exists() {
            return Err("day-of-month and month never coincide: this cron never fires".to_string());
        }
        Ok(spec)
    }

    /// Whether any (month, day-of-month) pair of the spec is a real date (Feb 29 counts).
    fn some_date_exists(&self) -> bool {
        (1..=12u32).any(|m| {
            let last = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            self.months & (1 << m) != 0 && (1..=last).any(|d| self.days_of_month & (1 << d) != 0)
        })
    }

    /// The normalised five-field string (what is stored in `coordinator.cron`).
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.day_fields_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first slot strictly after `after`, in zone `tz`. A local time skipped by a DST gap fires at
    /// the first valid instant after the gap; an ambiguous local time fires once (its earlier instant).
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Candidates before the local time of `after` map to instants at or before `after`: the
        // local→UTC mapping below never goes backwards, so starting here loses nothing.
        let local = after.with_timezone(&tz).naive_local();
        let start = local.with_second(0)?.with_nanosecond(0)?;
        let mut date = start.date();
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                for hour in (0..24u32).filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60u32).filter(|m| self.minutes & (1 << m) != 0) {
                        let candidate = date.and_hms_opt(hour, minute, 0)?;
                        if candidate < start {
                            continue;
                        }
                        // Several gap slots map to the same instant; "strictly after" fires it once.
                        let instant = to_utc(tz, candidate)?;
                        if instant > after {
                            return Some(instant);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// Maps a wall-clock time of `tz` to UTC: ambiguous → the earlier instant, skipped → the first valid
/// minute after the gap.
fn to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = local;
    // Real gaps are at most a few hours; a day bounds the walk.
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => {
                return Some(x.with_timezone(&Utc))
            }
            LocalResult::None => t += chrono::TimeDelta::minutes(1),
        }
    }
    None
}

/// One crontab field into a bit set over `lo..=hi`.
fn parse_field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Month names start at 1 (jan), day names at 0 (sun): the same as the field's low end.
            return Ok(i as u32 + lo);
        }
        let v: u32 = s.parse().map_err(|_| format!("bad {what} value `{s}`"))?;
        if v < lo || v > hi {
            return Err(format!("{what} value {v} out of range {lo}-{hi}"));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("bad {what} step `{s}`"))?;
                if step == 0 {
                    return Err(format!("{what} step must be at least 1"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            // `a/n` means from a to the end, stepping n.
            (a, if item.contains('/') { hi } else { a })
        };
        if a > b {
            return Err(format!("{what} range `{range}` is backwards"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            // a huge step (`59/4294967295`) must end the loop, not wrap around into an endless one
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
    }
    Ok(bits)
}

/// "every N minutes", "every N hours", "every day at HH:MM" (and the singular "every minute/hour").
fn natural(words: &[&str]) -> Result<Vec<String>, String> {
    const HELP: &str =
        "expected five-field crontab, \"every N minutes\", \"every N hours\" or \"every day at HH:MM\"";
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let w: Vec<&str> = lower.iter().map(String::as_str).collect();
    let every_n = |n: &str, unit: &str, period: u32| -> Result<u32, String> {
        let n: u32 = n.parse().map_err(|_| format!("bad number `{n}`: {HELP}"))?;
        if n == 0 || n >= period || period % n != 0 {
            return Err(format!(
                "every N {unit} needs N between 1 and {} dividing {period}",
                period - 1
            ));
        }
        Ok(n)
    };
    let star_or_step = |n: u32| {
        if n == 1 {
            "*".to_string()
        } else {
            format!("*/{n}")
        }
    };
    let fields = match w[1..] {
        ["minute"] => vec!["*".to_string(), "*".to_string()],
        [n, "minute" | "minutes"] => {
            vec![star_or_step(every_n(n, "minutes", 60)?), "*".to_string()]
        }
        ["hour"] => vec!["0".to_string(), "*".to_string()],
        [n, "hour" | "hours"] => vec!["0".to_string(), star_or_step(every_n(n, "hours", 24)?)],
        ["day", "at", hm] => {
            let (h, m) = hm
                .split_once(':')
                .ok_or_else(|| format!("bad time `{hm}`: expected HH:MM"))?;
            let h: u32 = h
                .parse()
                .ok()
                .filter(|h| *h < 24)
                .ok_or_else(|| format!("bad hour in `{hm}`"))?;
            let m: u32 = m
                .parse()
                .ok()
                .filter(|m| *m < 60)
                .ok_or_else(|| format!("bad minute in `{hm}`"))?;
            vec![m.to_string(), h.to_string()]
        }
        _ => return Err(HELP.to_string()),
    };
    Ok(fields
        .into_iter()
        .chain(["*", "*", "*"].map(String::from))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap()
    }

    #[test]
    fn parses_the_allowed_forms() {
        let cases = [
            ("30 1 * * *", "30 1 * * *", false),
            ("  */20   *  * * * ", "*/20 * * * *", false),
            ("*/30 * * * * *", "*/30 * * * *", true),
            ("0 * * * * * 2024", "0 * * * *", true),
            ("every 15 minutes", "*/15 * * * *", false),
            ("Every 1 Minute", "* * * * *", false),
            ("every minute", "* * * * *", false),
            ("every 6 hours", "0 */6 * * *", false),
            ("every hour", "0 * * * *", false),
            ("every day at 01:30", "30 1 * * *", false),
            ("EVERY DAY AT 23:05", "5 23 * * *", false),
            ("0 9 * jan-mar mon-fri", "0 9 * jan-mar mon-fri", false),
            ("0 0 29 2 *", "0 0 29 2 *", false),
        ];
        for (input, normalized, warns) in cases {
            let parsed = CronSpec::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.spec.as_str(), normalized, "{input}");
            assert_eq!(parsed.warning.is_some(), warns, "{input}");
        }
        let warning = CronSpec::parse("*/30 * * * * *").unwrap().warning.unwrap();
        assert!(
            warning.contains("only the first five (`*/30 * * * *`)"),
            "{warning}"
        );
    }

    #[test]
    fn rejects_bad_strings_clearly() {
        let cases = [
            ("", "empty cron string"),
            ("* * * *", "has 4 field(s): expected five"),
            ("60 * * * *", "minute value 60 out of range 0-59"),
            ("* 24 * * *", "hour value 24 out of range 0-23"),
            ("* * 0 * *", "day-of-month value 0 out of range 1-31"),
            ("* * * 13 *", "month value 13 out of range 1-12"),
            ("* * * * 8", "day-of-week value 8 out of range 0-7"),
            ("*/0 * * * *", "minute step must be at least 1"),
            ("59/4294967295 * * * 8", "day-of-week value 8 out of range"),
            ("5-1 * * * *", "minute range `5-1` is backwards"),
            ("x * * * *", "bad minute value `x`"),
            ("0 0 30 2 *", "never fires"),
            ("every 7 minutes", "needs N between 1 and 59 dividing 60"),
            ("every 5 hours", "needs N between 1 and 23 dividing 24"),
            ("every day at 25:00", "bad hour in `25:00`"),
            ("every day at 1:61", "bad minute in `1:61`"),
            ("every tuesday", "expected five-field crontab"),
        ];
        for (input, msg) in cases {
            let err = CronSpec::parse(input).unwrap_err();
            assert!(err.contains(msg), "{input}: {err}");
        }
    }

    /// (zone, cron, after, expected next) rows, each chained: the next row's `after` is free.
    #[test]
    fn next_after_across_zones_and_dst() {
        use chrono_tz::America::New_York as NY;
        use chrono_tz::Asia::Shanghai;
        use chrono_tz::Europe::Berlin;
        let cases: &[(Tz, &str, DateTime<Utc>, DateTime<Utc>)] = &[
            // UTC: strictly after, seconds ignored.
            (
                Tz::UTC,
                "*/20 * * * *",
                utc(2024, 1, 1, 10, 5),
                utc(2024, 1, 1, 10, 20),
            ),
            (
                Tz::UTC,
                "*/20 * * * *",
                utc(2024, 1, 1, 10, 20),
                utc(2024, 1, 1, 10, 40),
            ),
            (
                Tz::UTC,
                "0 0 29 2 *",
                utc(2024, 3, 1, 0, 0),
                utc(2028, 2, 29, 0, 0),
            ),
            // Shanghai (UTC+8, no DST): 01:00 local is 17:00 UTC the day before.
            (
                Shanghai,
                "0 1 * * *",
                utc(2024, 1, 1, 0, 0),
                utc(2024, 1, 1, 17, 0),
            ),
            (
                Shanghai,
                "0 1 * * *",
                utc(2024, 1, 1, 17, 0),
                utc(2024, 1, 2, 17, 0),
            ),
            // New York spring forward 2024-03-10 02:00 EST → 03:00 EDT (07:00 UTC).
            (
                NY,
                "30 2 * * *",
                utc(2024, 3, 10, 5, 0),
                utc(2024, 3, 10, 7, 0),
            ),
            (
                NY,
                "30 2 * * *",
                utc(2024, 3, 10, 7, 0),
                utc(2024, 3, 11, 6, 30),
            ),
            (
                NY,
                "*/30 * * * *",
                utc(2024, 3, 10, 6, 30),
                utc(2024, 3, 10, 7, 0),
            ),
            // 02:30 (gap) would also be 07:00 UTC: it fires once, then 03:30 EDT.
            (
                NY,
                "*/30 * * * *",
                utc(2024, 3, 10, 7, 0),
                utc(2024, 3, 10, 7, 30),
            ),
            // New York fall back 2024-11-03 02:00 EDT → 01:00 EST: 01:30 fires once, as EDT.
            (
                NY,
                "30 1 * * *",
                utc(2024, 11, 3, 4, 0),
                utc(2024, 11, 3, 5, 30),
            ),
            (
                NY,
                "30 1 * * *",
                utc(2024, 11, 3, 5, 30),
                utc(2024, 11, 4, 6, 30),
            ),
            (
                NY,
                "0 * * * *",
                utc(2024, 11, 3, 5, 0),
                utc(2024, 11, 3, 7, 0),
            ),
            // `after` inside the repeated hour (01:10 EST): the repeated 01:30 does not fire again.
            (
                NY,
                "*/30 * * * *",
                utc(2024, 11, 3, 6, 10),
                utc(2024, 11, 3, 7, 0),
            ),
            // Berlin spring 2024-03-31 02:00 CET → 03:00 CEST (01:00 UTC); fall 2024-10-27 03:00 → 02:00.
            (
                Berlin,
                "30 2 * * *",
                utc(2024, 3, 31, 0, 0),
                utc(2024, 3, 31, 1, 0),
            ),
            (
                Berlin,
                "30 2 * * *",
                utc(2024, 3, 31, 1, 0),
                utc(2024, 4, 1, 0, 30),
            ),
            (
                Berlin,
                "30 2 * * *",
                utc(2024, 10, 26, 23, 0),
                utc(2024, 10, 27, 0, 30),
            ),
            (
                Berlin,
                "30 2 * * *",
                utc(2024, 10, 27, 0, 30),
                utc(2024, 10, 28, 1, 30),
            ),
            (
                Berlin,
                "0 9 * * *",
                utc(2024, 10, 27, 0, 0),
                utc(2024, 10, 27, 8, 0),
            ),
            // Day fields: both restricted → either matches (13th or a Friday); one `*` → both.
            (
                Tz::UTC,
                "0 0 13 * 5",
                utc(2024, 9, 1, 0, 0),
                utc(2024, 9, 6, 0, 0),
            ),
            (
                Tz::UTC,
                "0 0 13 * 5",
                utc(2024, 9, 11, 0, 0),
                utc(2024, 9, 13, 0, 0),
            ),
            (
                Tz::UTC,
                "0 0 */2 * 1",
                utc(2024, 9, 1, 0, 0),
                utc(2024, 9, 9, 0, 0),
            ),
            (
                Tz::UTC,
                "0 12 * * 7",
                utc(2024, 9, 2, 0, 0),
                utc(2024, 9, 8, 12, 0),
            ),
            (
                Tz::UTC,
                "0 12 * * sun",
                utc(2024, 9, 2, 0, 0),
                utc(2024, 9, 8, 12, 0),
            ),
            (
                Tz::UTC,
                "0 0 1 feb *",
                utc(2024, 3, 1, 0, 0),
                utc(2025, 2, 1, 0, 0),
            ),
            (
                Tz::UTC,
                "15 10/6 * * *",
                utc(2024, 1, 1, 11, 0),
                utc(2024, 1, 1, 16, 15),
            ),
        ];
        for (tz, cron, after, want) in cases {
            let spec = CronSpec::parse(cron).unwrap().spec;
            assert_eq!(
                spec.next_after(*tz, *after),
                Some(*want),
                "{tz} `{cron}` after {after}"
            );
        }
    }

    #[test]
    fn every_spring_forward_slot_fires_exactly_once() {
        let spec = CronSpec::parse("*/15 * * * *").unwrap().spec;
        let mut t = utc(2024, 3, 10, 6, 0);
        let mut fired = Vec::new();
        while t < utc(2024, 3, 10, 8, 0) {
            t = spec.next_after(chrono_tz::America::New_York, t).unwrap();
            fired.push(t);
        }
        let minutes: Vec<u32> = fired.iter().map(|t| t.hour() * 60 + t.minute()).collect();
        // 01:00..01:45 EST, then the gap's four slots collapse into 03:00 EDT, then every 15 minutes.
        assert_eq!(minutes, vec![375, 390, 405, 420, 435, 450, 465, 480]);
    }
}
