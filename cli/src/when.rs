//! Points in time as people type them on the command line, and as the server wants them
//! (RFC 3339, UTC, seconds precision).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

/// `t` as the management API spells times: `2026-11-23T10:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    pier_oci::time::rfc3339(pier_oci::time::unix_secs(t))
}

/// A moment in the past for audit filters: RFC 3339 (`2026-11-23T10:00:00Z`, with an
/// offset such as `+08:00`, or a bare date meaning its midnight UTC), Unix seconds, or a
/// duration such as `1h`, `7d`, `1h30m` meaning that long before `now`.
pub fn parse_past(s: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let s = s.trim();
    if let Some(t) = absolute(s)? {
        return Ok(t);
    }
    let ago = duration(s)?;
    now.checked_sub(ago).ok_or_else(|| anyhow!("{s:?} ago is before 1970"))
}

/// When a robot expires: `never`, RFC 3339 / Unix seconds as in [`parse_past`], or a
/// duration such as `30d` or `12h` from `now`. An instant that has already passed is
/// refused: a robot born expired is always a typo.
pub fn parse_expiry(s: &str, now: SystemTime) -> anyhow::Result<Option<SystemTime>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let t = match absolute(s)? {
        Some(t) => t,
        None => now
            .checked_add(duration(s)?)
            .ok_or_else(|| anyhow!("expiry {s:?} is too far away"))?,
    };
    if t <= now {
        bail!("expiry {} is in the past", rfc3339(t));
    }
    Ok(Some(t))
}

/// An absolute time, `None` when `s` is not shaped like one (so it may be a duration), or
/// an error when it is shaped like one but wrong (e.g. month 13).
fn absolute(s: &str) -> anyhow::Result<Option<SystemTime>> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .with_context(|| format!("{s:?} is too large for Unix seconds"))?;
        return Ok(Some(UNIX_EPOCH + Duration::from_secs(secs)));
    }
    let looks_like_date = s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    if !looks_like_date {
        return Ok(None);
    }
    // A bare date is its midnight UTC.
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let secs = pier_oci::time::parse_rfc3339(&full).map_err(|e| anyhow!("{s:?} is not an RFC 3339 time: {}", e.why))?;
    Ok(Some(UNIX_EPOCH + Duration::from_secs(secs)))
}

fn duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s)
        .map_err(|e| anyhow!("{s:?} is neither a time (RFC 3339, Unix seconds) nor a duration (30m, 12h, 7d): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn past_times() {
        let now = at("2026-11-23T10:00:00Z");
        let cases = [
            ("2026-11-20T08:30:00Z", "2026-11-20T08:30:00Z"),
            ("2026-11-20T08:30:00.75Z", "2026-11-20T08:30:00Z"),
            ("2026-11-20T16:30:00+08:00", "2026-11-20T08:30:00Z"),
            ("2026-11-20T03:00:00-05:30", "2026-11-20T08:30:00Z"),
            ("2026-11-20", "2026-11-20T00:00:00Z"),
            ("1795500000", "2026-11-24T06:00:00Z"),
            ("1h", "2026-11-23T09:00:00Z"),
            ("7d", "2026-11-16T10:00:00Z"),
            ("1h30m", "2026-11-23T08:30:00Z"),
            (" 15min ", "2026-11-23T09:45:00Z"),
            ("1.5h", "2026-11-23T08:30:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(rfc3339(parse_past(input, now).unwrap()), want, "{input}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-20T08:30:00+25:00",
            "-1h",
        ] {
            assert!(parse_past(bad, now).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn expiries() {
        let now = at("2026-11-23T10:00:00Z");
        let exp = |s| parse_expiry(s, now).map(|t| t.map(rfc3339));
        assert_eq!(exp("30d").unwrap().as_deref(), Some("2026-12-23T10:00:00Z"));
        assert_eq!(exp("12h").unwrap().as_deref(), Some("2026-11-23T22:00:00Z"));
        assert_eq!(
            exp("2027-01-01T00:00:00Z").unwrap().as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(exp("never").unwrap(), None);
        assert!(exp("2026-01-01T00:00:00Z").is_err(), "past expiry accepted");
        assert!(exp("0s").is_err(), "expiry at now accepted");
        assert!(exp("soon").is_err());
    }
}
