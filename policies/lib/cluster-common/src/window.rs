//! Maintenance windows: when a pattern may start changing the cluster.
//!
//! The syntax, one or more windows separated by `;`:
//!
//! ```text
//! daily 02:00-04:00              every day from 02:00 to 04:00 UTC
//! Sat 22:00-06:00 UTC            Saturday 22:00 to Sunday 06:00 (an end at or
//!                                before the start is on the next day)
//! Mon-Fri 00:00-04:00 UTC+8      weekdays, in UTC+8 (also UTC-05:30)
//! Sat,Sun 00:00-24:00            all weekend
//! Mon-Wed,Fri 01:00-03:00; Sat 22:00-06:00
//! ```
//!
//! Days are `Mon` `Tue` `Wed` `Thu` `Fri` `Sat` `Sun` (any case, or spelled
//! out: `saturday`), lists with `,` and ranges with `-` (`Fri-Mon` wraps);
//! a day names when the window opens. Times are 24-hour `HH:MM`, the end may
//! be `24:00`; the zone is `UTC` (the default) or a fixed offset from it.

const DAY_MINUTES: i64 = 24 * 60;
const WEEK_MINUTES: i64 = 7 * DAY_MINUTES;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// One window: the week-minutes (Monday 00:00 = 0, in UTC) it opens at, and how long it lasts.
#[derive(Clone, Debug, PartialEq)]
struct Span {
    opens: Vec<i64>,
    minutes: i64,
    text: String,
}

/// A parsed maintenance window (one or more spans).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    spans: Vec<Span>,
}

fn day(text: &str) -> Result<i64, String> {
    let lower = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == lower)
        .or_else(|| FULL_DAYS.iter().position(|d| *d == lower))
        .map(|i| i as i64)
        .ok_or_else(|| format!("`{text}` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun, or daily)"))
}

fn days(text: &str) -> Result<Vec<i64>, String> {
    if text.eq_ignore_ascii_case("daily") {
        return Ok((0..7).collect());
    }
    let mut out = Vec::new();
    for item in text.split(',') {
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                let mut d = from;
                loop {
                    out.push(d);
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out.push(day(item)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn clock_time(text: &str, end: bool) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a time (HH:MM, 24-hour)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let num =
        |s: &str| -> Result<i64, String> { if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().map_err(|_| bad()) } else { Err(bad()) } };
    let (h, m) = (num(h)?, num(m)?);
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn zone(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a zone (UTC, or an offset such as UTC+8, UTC-05:30)");
    let upper = text.to_ascii_uppercase();
    let rest = upper.strip_prefix("UTC").ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(0);
    }
    let sign = match rest.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let (h, m) = rest[1..].split_once(':').unwrap_or((&rest[1..], "0"));
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

fn span(text: &str) -> Result<Span, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (day_text, times, zone_text) = match words.as_slice() {
        [d, t] => (*d, *t, "UTC"),
        [d, t, z] => (*d, *t, *z),
        _ => return Err(format!("`{text}`: expected DAYS HH:MM-HH:MM [UTC[+-H[:MM]]], e.g. `Sat 22:00-06:00 UTC` or `daily 02:00-04:00`")),
    };
    let (from, to) = times.split_once('-').ok_or_else(|| format!("`{times}` is not a time range (HH:MM-HH:MM)"))?;
    let (start, end) = (clock_time(from, false)?, clock_time(to, true)?);
    let minutes = if end > start { end - start } else { end + DAY_MINUTES - start };
    if start == end {
        return Err(format!("`{times}`: the window opens and closes at the same time; write 00:00-24:00 for a whole day"));
    }
    let offset = zone(zone_text)?;
    let opens = days(day_text)?.into_iter().map(|d| (d * DAY_MINUTES + start - offset).rem_euclid(WEEK_MINUTES)).collect();
    Ok(Span { opens, minutes, text: text.trim().to_string() })
}

/// Minutes since Monday 00:00 UTC of the week holding `now_ms` (1970-01-01 was a Thursday).
fn week_minute(now_ms: u64) -> i64 {
    let minutes = (now_ms / 60_000) as i64;
    (minutes + 3 * DAY_MINUTES).rem_euclid(WEEK_MINUTES)
}

impl Window {
    /// Parse the syntax of the module doc; the error quotes the part that is wrong.
    pub fn parse(text: &str) -> Result<Window, String> {
        let spans = text.split(';').filter(|s| !s.trim().is_empty()).map(span).collect::<Result<Vec<_>, _>>()?;
        if spans.is_empty() {
            return Err("the maintenance window is empty".into());
        }
        Ok(Window { spans })
    }

    /// Whether `now_ms` (ms since the epoch) is inside a window.
    pub fn contains(&self, now_ms: u64) -> bool {
        let now = week_minute(now_ms);
        self.spans.iter().any(|s| s.opens.iter().any(|open| (now - open).rem_euclid(WEEK_MINUTES) < s.minutes))
    }

    /// Minutes from `now_ms` until a window next opens.
    pub fn minutes_until_open(&self, now_ms: u64) -> i64 {
        let now = week_minute(now_ms);
        self.spans.iter().flat_map(|s| s.opens.iter()).map(|open| (open - now).rem_euclid(WEEK_MINUTES)).min().unwrap_or(0)
    }

    /// Minutes from `now_ms` until the window it is in closes (0 when outside every window).
    pub fn minutes_until_close(&self, now_ms: u64) -> i64 {
        let now = week_minute(now_ms);
        self.spans.iter().flat_map(|s| s.opens.iter().map(move |open| (s.minutes - (now - open).rem_euclid(WEEK_MINUTES)).max(0))).max().unwrap_or(0)
    }

    /// The windows as written, `; `-separated.
    pub fn describe(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// `3h 12m` for a count of minutes.
pub fn minutes_text(minutes: i64) -> String {
    let (d, h, m) = (minutes / DAY_MINUTES, (minutes % DAY_MINUTES) / 60, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05 is a Saturday.
    fn at(stamp: &str) -> u64 {
        kube_common::text::parse_timestamp_ms(stamp).unwrap()
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let w = Window::parse("Sat 22:00-06:00 UTC").unwrap();
        assert!(!w.contains(at("2026-12-05T21:59:00Z")));
        assert!(w.contains(at("2026-12-05T22:00:00Z")));
        assert!(w.contains(at("2026-12-06T05:59:59Z")), "Sunday morning is still Saturday's window");
        assert!(!w.contains(at("2026-12-06T06:00:00Z")));
        assert!(!w.contains(at("2026-12-06T22:30:00Z")), "not on Sunday evening");
        assert_eq!(w.minutes_until_open(at("2026-12-05T20:30:00Z")), 90);
        assert_eq!(w.minutes_until_close(at("2026-12-06T05:00:00Z")), 60);
        assert_eq!(w.minutes_until_close(at("2026-12-06T07:00:00Z")), 0);
    }

    #[test]
    fn daily_lists_ranges_and_zones() {
        let daily = Window::parse("daily 02:00-04:00").unwrap();
        assert!(daily.contains(at("2026-12-01T03:00:00Z")) && daily.contains(at("2026-12-06T02:00:00Z")));
        assert!(!daily.contains(at("2026-12-01T04:00:00Z")));
        let weekdays = Window::parse("Mon-Fri 00:00-04:00 UTC+8").unwrap();
        // Monday 01:00 in UTC+8 is Sunday 17:00 UTC.
        assert!(weekdays.contains(at("2026-12-06T17:00:00Z")));
        assert!(!weekdays.contains(at("2026-12-05T17:00:00Z")), "Sunday 01:00 in UTC+8 is outside");
        let wrap = Window::parse("fri-mon 10:00-11:00").unwrap();
        assert!(wrap.contains(at("2026-12-07T10:30:00Z")) && !wrap.contains(at("2026-12-08T10:30:00Z")));
        let weekend = Window::parse("Sat,Sun 00:00-24:00; Wed 01:00-02:00").unwrap();
        assert!(weekend.contains(at("2026-12-06T23:59:00Z")) && weekend.contains(at("2026-12-02T01:30:00Z")));
        assert!(!weekend.contains(at("2026-12-07T00:00:00Z")));
        assert_eq!(weekend.describe(), "Sat,Sun 00:00-24:00; Wed 01:00-02:00");
        assert_eq!(Window::parse("Tue 00:00-01:00 UTC-05:30").unwrap().minutes_until_open(at("2026-12-01T05:00:00Z")), 30);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("", "empty"),
            ("Sat", "expected DAYS"),
            ("Caturday 22:00-06:00", "`Caturday` is not a day"),
            ("Sat 22:00", "not a time range"),
            ("Sat 25:00-06:00", "`25:00` is not a time"),
            ("Sat 2:00-06:00", "`2:00` is not a time"),
            ("Sat 22:00-06:00 CET", "`CET` is not a zone"),
            ("Sat 06:00-06:00", "same time"),
        ] {
            let e = Window::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(minutes_text(192), "3h 12m");
        assert_eq!(minutes_text(59), "59m");
        assert_eq!(minutes_text(3 * 1440 + 61), "3d 1h 1m");
    }
}
