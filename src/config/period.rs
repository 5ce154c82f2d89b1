//! A rotation period (`rotate_after: 90d` in `castsync.yaml`, `# rotate: 30d` in
//! `.env.example`): how long a value may stay unchanged before `audit` calls it overdue.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const DAY: u64 = 24 * 60 * 60;
/// The longest period accepted: a hundred years (a typo such as `900y` is refused).
const MAX_DAYS: u64 = 36_525;

/// At least a day, at most a hundred years, to the second (never zero, so an
/// `Option<Period>` is a plain 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    seconds: std::num::NonZeroU64,
}

impl Period {
    /// `90d`, `12w`, `6months`, `1y`, `36h`… (humantime's units; a month is 30.44 days, a
    /// year 365.25).
    pub fn parse(text: &str) -> Result<Period, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("{e} (use a period such as 30d, 12w or 6months)"))?;
        let seconds = d.as_secs();
        if seconds < DAY {
            return Err("too short: a rotation period is at least 1d".to_owned());
        }
        if seconds > MAX_DAYS * DAY {
            return Err("too long: a rotation period is at most 100 years".to_owned());
        }
        Ok(Period::from_secs(seconds))
    }

    fn from_secs(seconds: u64) -> Period {
        Period {
            seconds: std::num::NonZeroU64::new(seconds.max(1)).unwrap_or(std::num::NonZeroU64::MIN),
        }
    }

    /// A whole number of days.
    pub fn days(days: u64) -> Period {
        Period::from_secs(days.clamp(1, MAX_DAYS) * DAY)
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.seconds.get())
    }

    pub fn as_secs(self) -> u64 {
        self.seconds.get()
    }
}

impl fmt::Display for Period {
    /// `90d` for whole days, else humantime's form (`36h`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.as_secs().is_multiple_of(DAY) {
            write!(f, "{}d", self.as_secs() / DAY)
        } else {
            write!(f, "{}", humantime::format_duration(self.as_duration()))
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Period::parse(&text).map_err(|e| serde::de::Error::custom(format!("rotate_after: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_in_days_weeks_and_months_and_print_in_days() {
        assert_eq!(Period::parse("90d").unwrap().to_string(), "90d");
        assert_eq!(Period::parse("2w").unwrap().to_string(), "14d");
        assert_eq!(Period::parse(" 36h ").unwrap().to_string(), "1day 12h");
        assert_eq!(Period::parse("1y").unwrap().as_secs(), 31_557_600);
        assert!(Period::parse("6months").is_ok());
        assert!(Period::parse("12h").unwrap_err().contains("at least 1d"));
        assert!(Period::parse("soon").unwrap_err().contains("30d, 12w"));
        assert!(Period::parse("200y").unwrap_err().contains("at most"));
    }
}
