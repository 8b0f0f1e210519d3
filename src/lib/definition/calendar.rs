//! Business calendars (`calendars.xml`): which dates are business days for a coordinator that names
//! one. A date is a business day when it is a makeup workday, or else when it is neither a holiday
//! nor a weekend day.

use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// One `<calendar>`, as validated: holiday ranges do not overlap and no date is both a holiday and a
/// makeup workday.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub name: String,
    /// Weekend days, ISO numbers (Monday 1 … Sunday 7), ascending.
    pub weekend: Vec<u32>,
    /// Holidays, each an inclusive range of dates (a single date is a range of one), ascending.
    pub holidays: Vec<(NaiveDate, NaiveDate)>,
    /// Makeup workdays: business days even on a weekend, ascending.
    pub workdays: Vec<NaiveDate>,
}

/// The weekday names `weekend` accepts, in ISO order.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How far a search for a business day goes before giving up (a calendar whose every day is a
/// holiday has none).
const MAX_SEARCH_DAYS: u64 = 3660;

impl Calendar {
    /// Whether `date` is a business day of this calendar.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        if self.workdays.binary_search(&date).is_ok() {
            return true;
        }
        if self
            .holidays
            .iter()
            .any(|(from, to)| *from <= date && date <= *to)
        {
            return false;
        }
        !self.weekend.contains(&date.weekday().number_from_monday())
    }

    /// The business day `n` business days after `date` (before it when `n` is negative); `date`
    /// itself when `n` is 0. `None` when none lies within ten years.
    pub fn add_business_days(&self, date: NaiveDate, n: i64) -> Option<NaiveDate> {
        let (mut left, mut day, mut steps) = (n.unsigned_abs(), date, 0u64);
        while left > 0 {
            day = if n > 0 {
                day.checked_add_days(Days::new(1))?
            } else {
                day.checked_sub_days(Days::new(1))?
            };
            steps += 1;
            if steps > MAX_SEARCH_DAYS + left.saturating_mul(7) {
                return None;
            }
            if self.is_business_day(day) {
                left -= 1;
            }
        }
        Some(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn cn() -> Calendar {
        Calendar {
            name: "cn".into(),
            weekend: vec![6, 7],
            holidays: vec![(d("2026-10-01"), d("2026-10-07"))],
            workdays: vec![d("2026-10-10")],
        }
    }

    #[test]
    fn weekends_holidays_and_makeup_workdays() {
        let c = cn();
        assert!(c.is_business_day(d("2026-09-30"))); // Wednesday
        assert!(!c.is_business_day(d("2026-10-01"))); // holiday
        assert!(!c.is_business_day(d("2026-10-07"))); // last day of the range
        assert!(c.is_business_day(d("2026-10-08"))); // Thursday
        assert!(c.is_business_day(d("2026-10-10"))); // makeup Saturday
        assert!(!c.is_business_day(d("2026-10-11"))); // Sunday
    }

    #[test]
    fn business_day_arithmetic_skips_what_is_not_one() {
        let c = cn();
        assert_eq!(
            c.add_business_days(d("2026-10-08"), -1),
            Some(d("2026-09-30"))
        );
        assert_eq!(
            c.add_business_days(d("2026-10-12"), -1),
            Some(d("2026-10-10"))
        );
        assert_eq!(
            c.add_business_days(d("2026-09-30"), 1),
            Some(d("2026-10-08"))
        );
        assert_eq!(
            c.add_business_days(d("2026-09-30"), 3),
            Some(d("2026-10-10"))
        );
        assert_eq!(
            c.add_business_days(d("2026-10-03"), 0),
            Some(d("2026-10-03"))
        );
        let never = Calendar {
            weekend: (1..=7).collect(),
            workdays: vec![],
            ..cn()
        };
        assert_eq!(never.add_business_days(d("2026-10-03"), 1), None);
    }
}
