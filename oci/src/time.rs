//! Times as OCI documents and pier's APIs write them: Unix seconds, shown as RFC 3339 in
//! UTC with seconds precision (`2023-11-14T22:13:20Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds per day.
const DAY: u64 = 86_400;

/// Why a text is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not an RFC 3339 time: {why}")]
pub struct TimeError {
    /// The text as given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

/// Unix seconds of `t` (sub-second part dropped; times before 1970 are 0).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    unix_secs(SystemTime::now())
}

/// Unix seconds as RFC 3339 UTC (`0` → `1970-01-01T00:00:00Z`). Any `u64` formats (years
/// past 9999 get more digits), so a build's `SOURCE_DATE_EPOCH` never fails here.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / DAY;
    let secs = secs % DAY;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (unsigned: no dates before).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An RFC 3339 time as Unix seconds: `2026-11-20T08:30:00Z`, with a fraction (dropped), a
/// `±HH:MM` offset, or leniently a space for `T` and no zone (meaning UTC). Times before
/// 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Result<u64, TimeError> {
    let bad = |why: &str| TimeError {
        given: s.to_owned(),
        why: why.to_owned(),
    };
    let (local, offset) = split_offset(s).ok_or_else(|| bad("bad offset"))?;
    let t = humantime::parse_rfc3339_weak(local).map_err(|e| bad(&e.to_string()))?;
    let secs = i128::from(unix_secs(t)) - i128::from(offset);
    u64::try_from(secs).map_err(|_| bad("before 1970"))
}

/// The time without its zone, and the zone's offset east of UTC in seconds (`None`: an
/// offset out of range).
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(local) = s.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    let b = s.as_bytes();
    if b.len() >= 19 + 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (local, zone) = s.split_at(s.len() - 6);
        let hh: i64 = zone[1..3].parse().ok()?;
        let mm: i64 = zone[4..6].parse().ok()?;
        if hh > 23 || mm > 59 {
            return None;
        }
        let secs = hh * 3600 + mm * 60;
        return Some((local, if zone.starts_with('-') { -secs } else { secs }));
    }
    Some((s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_any_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800), "10000-01-01T00:00:00Z");
    }

    #[test]
    fn system_times() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_999);
        assert_eq!(unix_secs(t), 1_700_000_000);
        assert_eq!(unix_secs(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        assert!(now_secs() > 1_700_000_000);
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_107_542_399] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Ok(secs));
        }
        let at = 1_795_163_400; // 2026-11-20T08:30:00Z
        for ok in [
            "2026-11-20T08:30:00Z",
            "2026-11-20T08:30:00.75Z",
            "2026-11-20T08:30:00",
            "2026-11-20 08:30:00",
            "2026-11-20T08:30:00+00:00",
            "2026-11-20T16:30:00+08:00",
            "2026-11-20T03:00:00-05:30",
        ] {
            assert_eq!(parse_rfc3339(ok), Ok(at), "{ok}");
        }
    }

    #[test]
    fn bad_times_say_why() {
        for (bad, why) in [
            ("", "not an RFC 3339 time"),
            ("yesterday", "not an RFC 3339 time"),
            ("2026-13-01T00:00:00Z", "out of range"),
            ("2026-02-30T00:00:00Z", "out of range"),
            ("2026-11-20T08:30:00+25:00", "bad offset"),
            ("1970-01-01T00:30:00+01:00", "before 1970"),
            ("1969-12-31T23:00:00Z", "out of range"),
        ] {
            let e = parse_rfc3339(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }
}
