//! A coordinator's `deadline`: when a cron slot's run must have succeeded. Either a wall time
//! (`07:00`: the first such time at or after the slot, in the coordinator's zone) or an offset
//! from the slot (`+90s`, `+30m`, `+2h`, `+1d`).

use std::fmt;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    /// The first time of day at or after the slot.
    WallTime(NaiveTime),
    /// Seconds after the slot.
    After(i64),
}

impl Deadline {
    /// Parses `HH:MM` or `+N` with a unit `s`, `m`, `h` or `d`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Deadline, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "deadline \"{text}\" is neither a time of day (\"07:00\") nor an offset after the slot (\"+90s\", \"+30m\", \"+2h\", \"+1d\")"
            )
        };
        if let Some(offset) = t.strip_prefix('+') {
            let split = offset.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let (n, unit) = offset.split_at(split);
            let n: i64 = n.parse().map_err(|_| bad())?;
            let secs = match unit {
                "s" => Some(n),
                "m" => n.checked_mul(60),
                "h" => n.checked_mul(3600),
                "d" => n.checked_mul(86_400),
                _ => return Err(bad()),
            }
            .filter(|s| (1..=366 * 86_400).contains(s))
            .ok_or_else(|| {
                format!("deadline \"{text}\" must be between 1 second and 366 days after the slot")
            })?;
            return Ok(Deadline::After(secs));
        }
        NaiveTime::parse_from_str(t, "%H:%M")
            .map(Deadline::WallTime)
            .map_err(|_| bad())
    }

    /// When the run of `slot` must have succeeded.
    pub fn due_at(&self, slot: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match *self {
            Deadline::After(secs) => slot + Duration::seconds(secs),
            Deadline::WallTime(at) => {
                let local = slot.with_timezone(&tz).date_naive();
                // today's wall time, else tomorrow's; a time a DST gap skips is taken an hour later
                (0..3)
                    .filter_map(|day| {
                        let naive = (local + Duration::days(day)).and_time(at);
                        tz.from_local_datetime(&naive).earliest().or_else(|| {
                            tz.from_local_datetime(&(naive + Duration::hours(1)))
                                .earliest()
                        })
                    })
                    .map(|t| t.with_timezone(&Utc))
                    .find(|t| *t >= slot)
                    .unwrap_or(slot + Duration::days(1))
            }
        }
    }

    /// The longest a deadline can lie after its slot: how far back a check must look for slots.
    pub fn max_span(&self) -> Duration {
        match *self {
            Deadline::After(secs) => Duration::seconds(secs),
            Deadline::WallTime(_) => Duration::hours(26),
        }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Deadline::WallTime(t) => write!(f, "{}", t.format("%H:%M")),
            Deadline::After(s) if s % 86_400 == 0 => write!(f, "+{}d", s / 86_400),
            Deadline::After(s) if s % 3600 == 0 => write!(f, "+{}h", s / 3600),
            Deadline::After(s) if s % 60 == 0 => write!(f, "+{}m", s / 60),
            Deadline::After(s) => write!(f, "+{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn offsets_and_wall_times_parse_and_print_back() {
        for (text, printed) in [
            ("+90s", "+90s"),
            ("+30m", "+30m"),
            ("+2h", "+2h"),
            ("+120m", "+2h"),
            ("+1d", "+1d"),
            ("07:00", "07:00"),
        ] {
            assert_eq!(
                Deadline::parse(text).unwrap().to_string(),
                printed,
                "{text}"
            );
        }
        for bad in ["7", "+", "+2x", "+h", "25:00", "+0s", "tomorrow", "+400d"] {
            assert!(Deadline::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_wall_time_is_the_first_at_or_after_the_slot_in_the_zone() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let seven = Deadline::parse("07:00").unwrap();
        // a 01:00 Shanghai slot (17:00 UTC the day before) is due at 07:00 the same local day
        assert_eq!(
            seven.due_at(utc("2026-12-01T17:00:00Z"), tz),
            utc("2026-12-01T23:00:00Z")
        );
        // a 08:00 local slot is due at 07:00 the next local day
        assert_eq!(
            seven.due_at(utc("2026-12-02T00:00:00Z"), tz),
            utc("2026-12-02T23:00:00Z")
        );
        // exactly at the wall time: due at once
        assert_eq!(
            seven.due_at(utc("2026-12-01T23:00:00Z"), tz),
            utc("2026-12-01T23:00:00Z")
        );
        assert_eq!(
            Deadline::parse("+2h")
                .unwrap()
                .due_at(utc("2026-12-01T17:00:00Z"), tz),
            utc("2026-12-01T19:00:00Z")
        );
    }

    #[test]
    fn a_wall_time_in_a_dst_gap_moves_an_hour_later() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-03-29 02:30 does not exist in Berlin: due at 03:30 CEST = 01:30 UTC
        let d = Deadline::parse("02:30").unwrap();
        assert_eq!(
            d.due_at(utc("2026-03-28T23:00:00Z"), tz),
            utc("2026-03-29T01:30:00Z")
        );
    }
}
