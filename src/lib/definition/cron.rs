//! Cron strings: parsing the forms the format allows, and DST-safe slot arithmetic.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed cron: normalised five-field text plus what is needed to compute slots.
#[derive(Clone, Debug)]
pub struct CronSpec {
    normalized: String,
}

/// The result of parsing a user's cron string.
#[derive(Clone, Debug)]
pub struct ParsedCron {
    pub spec: CronSpec,
    /// Set when the input was accepted with a caveat (six or more fields: only the first five used).
    pub warning: Option<String>,
}

impl CronSpec {
    /// Parses five-field crontab, six-or-more-field strings (first five used, with a warning), and the
    /// natural forms "every N minutes", "every N hours", "every day at HH:MM".
    pub fn parse(text: &str) -> Result<ParsedCron, String> {
        let _ = text;
        todo!("CronSpec::parse")
    }

    /// The normalised five-field string (what is stored in `coordinator.cron`).
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The first slot strictly after `after`, in zone `tz`. A local time skipped by a DST gap fires at
    /// the first valid instant after the gap; an ambiguous local time fires once (its earlier instant).
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = (tz, after);
        todo!("CronSpec::next_after")
    }
}
