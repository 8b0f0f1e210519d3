//! Values on their way into a target table: each is checked against and converted to its target
//! column's type in Rust (so an unconvertible value fails the node naming row and column on every
//! backend, SQLite included, which would store anything), then spelled for the backend's bulk path:
//! PostgreSQL's `COPY … FROM STDIN` text format, or values bound to MySQL's and SQLite's multi-row
//! INSERTs.
//!
//! Spelling between executors: every value is text; a binary value is lower-case hex; timestamps
//! are `YYYY-MM-DD HH:MM:SS[.ffffff]` with a `+HH[:MM]` suffix when they carry a zone (sessions run
//! in UTC, so it is `+00`).

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::links::Dialect;
use super::typemap::ColType;

/// A target column as the table declares it.
#[derive(Clone, Debug)]
pub(crate) struct TargetColumn {
    pub name: String,
    pub declared: String,
    pub ty: ColType,
    /// Values are checked before writing (the table existed, or the source has no types).
    pub check: bool,
    /// Incoming values for a binary column are hex (a binary source column, or a file).
    pub hex_in: bool,
}

/// A value ready for the target: text, or hex for a binary column.
pub(crate) enum Ready<'a> {
    Null,
    Text(Cow<'a, str>),
    Hex(Cow<'a, str>),
}

/// Checks and converts one value for `col` in `dialect`; `Err` says why it cannot go there.
pub(crate) fn ready<'a>(
    dialect: Dialect,
    col: &TargetColumn,
    v: Option<&'a str>,
) -> Result<Ready<'a>, String> {
    let Some(v) = v else {
        return Ok(Ready::Null);
    };
    match &col.ty {
        ColType::Bool => {
            let b = match v.to_ascii_lowercase().as_str() {
                "1" | "t" | "true" | "y" | "yes" | "on" => true,
                "0" | "f" | "false" | "n" | "no" | "off" => false,
                _ => return Err("not a boolean".into()),
            };
            let text = match (dialect, b) {
                (Dialect::Postgres, true) => "t",
                (Dialect::Postgres, false) => "f",
                (_, true) => "1",
                (_, false) => "0",
            };
            Ok(Ready::Text(Cow::Borrowed(text)))
        }
        ColType::Binary { len, .. } => {
            let hex = if col.hex_in {
                if col.check && (v.len() % 2 != 0 || !v.bytes().all(|b| b.is_ascii_hexdigit())) {
                    return Err("not hex digits (binary values are written as hex)".into());
                }
                Cow::Borrowed(v)
            } else {
                Cow::Owned(hex_encode(v.as_bytes()))
            };
            if col.check {
                if let Some(n) = len {
                    if hex.len() / 2 > *n as usize {
                        return Err(format!("{} bytes, more than {n}", hex.len() / 2));
                    }
                }
            }
            Ok(Ready::Hex(hex))
        }
        // MySQL refuses a FLOAT spelled by its shortest text when that rounds above FLT_MAX as a
        // double (3.4028235e38): spell the float's exact value instead
        ColType::Float { double: false } if dialect == Dialect::Mysql => match v.parse::<f32>() {
            Ok(f) if f.is_finite() => Ok(Ready::Text(Cow::Owned(float_text(f64::from(f))))),
            _ => Err("not a number MySQL's FLOAT holds".into()),
        },
        // MySQL takes no zone in a value (its sessions here run in UTC)
        ColType::Timestamp { tz, .. } | ColType::Time { tz, .. }
            if !tz || dialect == Dialect::Mysql =>
        {
            let v = match zone_start(v) {
                Some(at) => Cow::Owned(to_utc(v, at)?),
                None => Cow::Borrowed(v),
            };
            if col.check {
                check(dialect, &col.ty, &v)?;
            }
            Ok(Ready::Text(v))
        }
        ty => {
            if col.check {
                check(dialect, ty, v)?;
            }
            Ok(Ready::Text(Cow::Borrowed(v)))
        }
    }
}

/// Where a `+HH`/`-HH:MM` zone suffix starts in a time or timestamp, if it has one.
fn zone_start(v: &str) -> Option<usize> {
    // after the hours, so a date's and a negative MySQL TIME's `-` are not taken for one
    let from = v.find(':')?;
    let at = v[from..].find(['+', '-'])? + from;
    Some(at).filter(|_| v.len() > at + 2)
}

/// A zoned value in UTC, without the zone (for a column without one).
fn to_utc(v: &str, at: usize) -> Result<String, String> {
    let zone = &v[at..];
    if matches!(zone, "+00" | "+00:00" | "+0000" | "-00" | "-00:00") {
        return Ok(v[..at].to_string());
    }
    if v.len() <= 18 || !v[..at].contains(' ') && !v[..at].contains('T') {
        return Err(format!(
            "a time of day with zone {zone} does not fit a column without a zone"
        ));
    }
    let zone = if zone.len() == 3 {
        format!("{zone}:00")
    } else {
        zone.to_string()
    };
    let text = format!("{}{zone}", &v[..at]);
    DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%:z")
        .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%:z"))
        .map(|t| {
            t.with_timezone(&Utc)
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.f")
                .to_string()
        })
        .map_err(|_| "not a timestamp".into())
}

/// Whether `v` is a valid value of `ty` (text and numbers: their width too).
pub(crate) fn check(dialect: Dialect, ty: &ColType, v: &str) -> Result<(), String> {
    match ty {
        ColType::Int { bytes, unsigned } => {
            let n: i128 = v.parse().map_err(|_| "not an integer".to_string())?;
            let bits = u32::from(*bytes) * 8;
            let (lo, hi) = if *unsigned {
                (0, (1i128 << bits) - 1)
            } else {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            };
            if n < lo || n > hi {
                return Err(format!("out of range {lo}..{hi}"));
            }
            Ok(())
        }
        ColType::Decimal { precision, scale } => {
            let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if int.is_empty() && frac.is_empty()
                || !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
            {
                return Err("not a decimal number".into());
            }
            if let Some(p) = precision {
                let int_digits = int.trim_start_matches('0').len() as u32;
                let frac_digits = frac.trim_end_matches('0').len() as u32;
                if int_digits > p.saturating_sub(*scale) || frac_digits > *scale {
                    return Err(format!("does not fit DECIMAL({p},{scale})"));
                }
            }
            Ok(())
        }
        ColType::Float { .. } => v
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| "not a number".into()),
        ColType::Date => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|_| ())
            .map_err(|_| "not a date (YYYY-MM-DD)".into()),
        ColType::Time { .. } => {
            let t = v.get(..zone_start(v).unwrap_or(v.len())).unwrap_or(v);
            // MySQL's TIME is also a duration: -838:59:59 to 838:59:59
            let ok = if dialect == Dialect::Mysql {
                let t = t.strip_prefix('-').unwrap_or(t);
                let mut parts = t.splitn(3, ':');
                let h = parts.next().and_then(|h| h.parse::<u32>().ok());
                let rest = format!("00:{}", parts.collect::<Vec<_>>().join(":"));
                h.is_some_and(|h| h <= 838)
                    && NaiveTime::parse_from_str(&rest, "%H:%M:%S%.f").is_ok()
            } else {
                NaiveTime::parse_from_str(t, "%H:%M:%S%.f").is_ok() || t.starts_with("24:00:00")
            };
            ok.then_some(())
                .ok_or_else(|| "not a time (HH:MM:SS)".into())
        }
        ColType::Timestamp { .. } => {
            let t = v.get(..zone_start(v).unwrap_or(v.len())).unwrap_or(v);
            NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| NaiveDate::parse_from_str(t, "%Y-%m-%d").map(|d| d.into()))
                .map(|_| ())
                .map_err(|_| "not a timestamp (YYYY-MM-DD HH:MM:SS)".into())
        }
        ColType::Text { len: Some(n), .. } => {
            let chars = v.chars().count();
            if chars > *n as usize {
                return Err(format!("{chars} characters, more than {n}"));
            }
            Ok(())
        }
        ColType::Json { .. } => serde_json::from_str::<serde::de::IgnoredAny>(v)
            .map(|_| ())
            .map_err(|e| format!("not JSON: {e}")),
        ColType::Uuid => {
            let hex: String = v.chars().filter(|c| *c != '-').collect();
            (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some(())
                .ok_or_else(|| "not a UUID".into())
        }
        _ => Ok(()),
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    hex_into(&mut s, bytes);
    s
}

/// Appends `bytes` as lower-case hex.
pub(crate) fn hex_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

pub(crate) fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Appends a value in COPY's text format.
pub(crate) fn copy_value(out: &mut String, v: &Ready<'_>) {
    match v {
        Ready::Null => out.push_str("\\N"),
        // bytea's `\x` input, its backslash escaped for COPY
        Ready::Hex(h) => {
            out.push_str("\\\\x");
            out.push_str(h);
        }
        Ready::Text(t) => {
            if !t.contains(['\\', '\t', '\n', '\r']) {
                out.push_str(t);
                return;
            }
            for c in t.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// A float as the shortest text that reads back as the same number (SQLite's own text for a
/// REAL keeps only 15 digits).
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f == 0.0 || (1e-5..1e16).contains(&f.abs()) {
        format!("{f}")
    } else {
        format!("{f:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColType, check: bool) -> TargetColumn {
        TargetColumn {
            name: "c".into(),
            declared: String::new(),
            ty,
            check,
            hex_in: true,
        }
    }

    fn text(d: Dialect, c: &TargetColumn, v: &str) -> Result<String, String> {
        match ready(d, c, Some(v))? {
            Ready::Text(t) | Ready::Hex(t) => Ok(t.into_owned()),
            Ready::Null => Ok("NULL".into()),
        }
    }

    #[test]
    fn values_convert_to_the_target_spelling() {
        let b = col(ColType::Bool, false);
        assert_eq!(text(Dialect::Mysql, &b, "t").unwrap(), "1");
        assert_eq!(text(Dialect::Postgres, &b, "0").unwrap(), "f");
        assert!(text(Dialect::Postgres, &b, "5").is_err());
        let ts = col(ColType::Timestamp { frac: 6, tz: false }, true);
        assert_eq!(
            text(Dialect::Mysql, &ts, "2024-01-02 03:04:05.5+00").unwrap(),
            "2024-01-02 03:04:05.5"
        );
        assert_eq!(
            text(Dialect::Mysql, &ts, "2024-01-02 01:04:05.25-02:30").unwrap(),
            "2024-01-02 03:34:05.250"
        );
        assert_eq!(
            text(Dialect::Mysql, &ts, "1999-12-31 23:59:59").unwrap(),
            "1999-12-31 23:59:59"
        );
        let raw = TargetColumn {
            hex_in: false,
            ..col(
                ColType::Binary {
                    len: None,
                    fixed: false,
                },
                false,
            )
        };
        assert_eq!(text(Dialect::Postgres, &raw, "é").unwrap(), "c3a9");
        assert!(ready(Dialect::Mysql, &b, None).is_ok());
    }

    #[test]
    fn checks_name_what_does_not_fit() {
        let fails: &[(ColType, &str)] = &[
            (
                ColType::Int {
                    bytes: 1,
                    unsigned: false,
                },
                "128",
            ),
            (
                ColType::Int {
                    bytes: 8,
                    unsigned: true,
                },
                "-1",
            ),
            (
                ColType::Int {
                    bytes: 4,
                    unsigned: false,
                },
                "1.5",
            ),
            (
                ColType::Decimal {
                    precision: Some(5),
                    scale: 2,
                },
                "1234.5",
            ),
            (
                ColType::Decimal {
                    precision: Some(5),
                    scale: 2,
                },
                "1.234",
            ),
            (
                ColType::Decimal {
                    precision: None,
                    scale: 0,
                },
                "1e5",
            ),
            (ColType::Float { double: true }, "abc"),
            (ColType::Date, "2024-02-30"),
            (ColType::Timestamp { frac: 0, tz: false }, "yesterday"),
            (
                ColType::Text {
                    len: Some(3),
                    fixed: false,
                },
                "名字长了",
            ),
            (ColType::Json { binary: false }, "{oops"),
            (ColType::Uuid, "not-a-uuid"),
        ];
        for (ty, v) in fails {
            assert!(check(Dialect::Postgres, ty, v).is_err(), "{ty:?} {v}");
        }
        let fits: &[(ColType, &str)] = &[
            (
                ColType::Int {
                    bytes: 8,
                    unsigned: true,
                },
                "18446744073709551615",
            ),
            (
                ColType::Int {
                    bytes: 1,
                    unsigned: false,
                },
                "-128",
            ),
            (
                ColType::Decimal {
                    precision: Some(5),
                    scale: 2,
                },
                "-123.40",
            ),
            (
                ColType::Decimal {
                    precision: None,
                    scale: 0,
                },
                "0.000000000000000000000000000001",
            ),
            (ColType::Date, "2024-02-29"),
            (
                ColType::Timestamp { frac: 6, tz: true },
                "2024-01-02 03:04:05.123456+00",
            ),
            (
                ColType::Text {
                    len: Some(4),
                    fixed: false,
                },
                "名字长了",
            ),
            (ColType::Json { binary: true }, "{\"a\": [1, null]}"),
            (ColType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ];
        for (ty, v) in fits {
            assert!(check(Dialect::Postgres, ty, v).is_ok(), "{ty:?} {v}");
        }
        let time = ColType::Time { frac: 0, tz: false };
        assert!(check(Dialect::Mysql, &time, "-838:59:59").is_ok());
        assert!(check(Dialect::Postgres, &time, "-838:59:59").is_err());
        assert!(check(Dialect::Postgres, &time, "23:59:59.999999").is_ok());
    }

    #[test]
    fn bulk_spellings_escape_what_they_must() {
        let mut out = String::new();
        copy_value(&mut out, &Ready::Text("a\tb\\c\nd".into()));
        out.push('|');
        copy_value(&mut out, &Ready::Null);
        out.push('|');
        copy_value(&mut out, &Ready::Hex("00ff".into()));
        assert_eq!(out, "a\\tb\\\\c\\nd|\\N|\\\\x00ff");
    }
}
