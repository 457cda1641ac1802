//! Figures and timestamps for people and from the API server.

/// Bytes for people: `512 B`, `3.2 KiB`, `16.0 MiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n:.0} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A duration for people: `340 ms`, `12.5 s`, `3h 20m`.
pub fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let minutes = (ms / 60_000.0) as u64;
        if minutes < 60 { format!("{minutes}m {}s", ((ms / 1000.0) as u64) % 60) } else { format!("{}h {}m", minutes / 60, minutes % 60) }
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp as the API
/// server writes them (`2026-11-21T20:06:40Z`, `...40.123456+01:00`).
pub fn parse_timestamp_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let num = |s: &str| -> Option<i64> { if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() { s.parse().ok() } else { None } };
    let date = text.get(..10)?;
    let (year, month, day) = (num(date.get(0..4)?)?, num(date.get(5..7)?)?, num(date.get(8..10)?)?);
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' || !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let time = text.get(11..)?;
    let (hour, minute, second) = (num(time.get(0..2)?)?, num(time.get(3..5)?)?, num(time.get(6..8)?)?);
    let mut rest = time.get(8..)?;
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = num(&padded)?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (num(rest.get(1..3)?)? * 60 + num(rest.get(4..6)?)?)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// An RFC 3339 UTC timestamp (`2026-11-21T20:06:40Z`) for ms since the epoch;
/// the inverse of [`parse_timestamp_ms`] to the second.
pub fn format_timestamp_ms(ms: u64) -> String {
    let seconds = (ms / 1000) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, (rest % 3600) / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_for_people() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(16.0 * 1024.0 * 1024.0), "16.0 MiB");
        assert_eq!(millis(340.0), "340 ms");
        assert_eq!(millis(12_500.0), "12.5 s");
        assert_eq!(millis(30.0 * 3_600_000.0 + 5.0 * 60_000.0), "30h 5m");
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp_ms("2026-11-21T20:06:40Z"), Some(1_795_291_600_000));
        assert_eq!(parse_timestamp_ms("2026-11-21T20:06:40.112Z"), Some(1_795_291_600_112));
        assert_eq!(parse_timestamp_ms("2026-11-21T21:06:40.1+01:00"), Some(1_795_291_600_100));
        assert_eq!(parse_timestamp_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        assert_eq!(parse_timestamp_ms("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp_ms("yesterday"), None);
        for stamp in ["1970-01-01T00:00:00Z", "2026-11-21T20:06:40Z", "2024-02-29T12:00:00Z", "2000-03-01T23:59:59Z"] {
            assert_eq!(format_timestamp_ms(parse_timestamp_ms(stamp).unwrap()), stamp);
        }
    }
}
