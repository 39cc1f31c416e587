//! Quiet hours: local-time windows in which marketing may be sent, per
//! weekday, and the exact next allowed instant when it may not.
//!
//! A window is start-inclusive, end-exclusive (`08:00-21:00` allows 08:00 up
//! to 20:59:59). When the recipient could be in several zones, a time is
//! allowed only if it is allowed in every zone (strictest wins). Release
//! times are found by jumping to window starts and iterating to a fixed
//! point over every applicable (zone, window) constraint, which handles DST
//! gaps (a start that does not exist moves to the first instant after the
//! gap) and repeats (the earlier instant is used).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Allowed local minutes of one day, `[start, end)` in minutes after
/// midnight; `start >= end` means nothing is allowed that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u16,
    pub end: u16,
}

impl Window {
    /// Parses `HH:MM-HH:MM` (end may be `24:00`); start must be before end.
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad =
            || format!("invalid time window {s:?}: expected HH:MM-HH:MM with start before end");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a.trim()).ok_or_else(bad)?;
        let end = parse_hhmm(b.trim()).ok_or_else(bad)?;
        if start >= end {
            return Err(bad());
        }
        Ok(Window { start, end })
    }

    fn contains(self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }

    fn intersect(self, other: Window) -> Window {
        Window {
            start: self.start.max(other.start),
            end: self.end.min(other.end),
        }
    }

    fn is_empty(self) -> bool {
        self.start >= self.end
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// A minute of the day shown as `HH:MM`, written straight into the reason
/// detail without a `String` of its own. The digits are written by hand:
/// `write!` with `{:02}` padding cost 1.2 % more of the decide step's
/// instructions (`scripts/bench-instructions`: 38,615 → 39,062 per event).
#[derive(Debug, Clone, Copy)]
pub struct Hhmm(pub u16);

impl std::fmt::Display for Hhmm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (h, m) = ((self.0 / 60).min(99) as u8, (self.0 % 60) as u8);
        let text = [
            b'0' + h / 10,
            b'0' + h % 10,
            b':',
            b'0' + m / 10,
            b'0' + m % 10,
        ];
        // ASCII digits and a colon.
        f.write_str(std::str::from_utf8(&text).unwrap_or("??:??"))
    }
}

/// One allowed window per weekday (Monday first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Week(pub [Window; 7]);

pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Week {
    pub fn every_day(w: Window) -> Week {
        Week([w; 7])
    }

    pub fn intersect(&self, other: &Week) -> Week {
        let mut out = self.0;
        for (o, w) in out.iter_mut().zip(other.0) {
            *o = o.intersect(w);
        }
        Week(out)
    }

    fn day(&self, weekday: chrono::Weekday) -> Window {
        self.0[weekday.num_days_from_monday() as usize]
    }

    /// Is the instant allowed in `zone`?
    pub fn allows(&self, zone: Tz, t: DateTime<Utc>) -> bool {
        self.outside(zone, t).is_none()
    }

    /// `None` when the instant is allowed in `zone`; else its local time and
    /// that day's window, so callers convert the instant to local time once
    /// (each conversion is a search of the zone's transitions).
    pub fn outside(&self, zone: Tz, t: DateTime<Utc>) -> Option<(DateTime<Tz>, Window)> {
        let local = t.with_timezone(&zone);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let window = self.day(local.weekday());
        (!window.contains(minute)).then_some((local, window))
    }

    /// The earliest instant at or after `t` allowed in `zone`, looking up to
    /// eight days ahead.
    pub fn next_allowed(&self, zone: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some((local, _)) = self.outside(zone, t) else {
            return Some(t);
        };
        let today = local.date_naive();
        for offset in 0..=8 {
            let date = today + Duration::days(offset);
            let w = self.day(date.weekday());
            if w.is_empty() {
                continue;
            }
            let start =
                NaiveTime::from_hms_opt(u32::from(w.start / 60), u32::from(w.start % 60), 0)?;
            let Some(at) = first_instant_at_or_after(zone, date.and_time(start)) else {
                continue;
            };
            if at >= t && self.allows(zone, at) {
                return Some(at);
            }
        }
        None
    }
}

/// The first instant whose local time in `zone` reads `local` or later:
/// the earlier of two in a repeated hour, the end of the gap in a skipped one.
fn first_instant_at_or_after(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    for step in 0..=(26 * 60) {
        let probe = local + Duration::minutes(step);
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    None
}

/// The earliest instant at or after `now` allowed by every (zone, week)
/// constraint; `None` when no such instant is found within a week or so.
pub fn release_at(constraints: &[(Tz, Week)], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut t = now;
    for _ in 0..64 {
        let mut moved = false;
        for (zone, week) in constraints {
            let next = week.next_allowed(*zone, t)?;
            if next > t {
                t = next;
                moved = true;
            }
        }
        if !moved {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_parse_and_reject_nonsense() {
        assert_eq!(
            Window::parse("08:00-21:00").unwrap(),
            Window {
                start: 480,
                end: 1260
            }
        );
        assert_eq!(Window::parse("09:00-24:00").unwrap().end, 1440);
        let shown = [0, 9 * 60 + 5, 1440].map(|m| Hhmm(m).to_string());
        assert_eq!(shown, ["00:00", "09:05", "24:00"]);
        for bad in [
            "21:00-08:00",
            "8:00-21:00",
            "08:00-25:00",
            "08:60-09:00",
            "08:00",
            "x",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cn_edges_and_release() {
        let w = Week::every_day(Window::parse("08:00-21:00").unwrap());
        let sh = Asia::Shanghai;
        assert!(!w.allows(sh, utc("2026-11-28T07:59:00+08:00")));
        assert!(w.allows(sh, utc("2026-11-28T08:00:00+08:00")));
        assert!(w.allows(sh, utc("2026-11-28T20:59:59+08:00")));
        assert!(!w.allows(sh, utc("2026-11-28T21:00:00+08:00")));
        assert_eq!(
            release_at(&[(sh, w)], utc("2026-11-28T21:00:00+08:00")),
            Some(utc("2026-11-29T00:00:00Z"))
        );
    }

    #[test]
    fn outside_gives_the_local_time_and_that_days_window() {
        // Weekdays 08:00–21:00, Saturday 10:00–18:00, Sunday nothing.
        let weekday = Window::parse("08:00-21:00").unwrap();
        let saturday = Window::parse("10:00-18:00").unwrap();
        let mut days = [weekday; 7];
        days[5] = saturday;
        days[6] = Window { start: 0, end: 0 };
        let w = Week(days);
        let sh = Asia::Shanghai;
        // Saturday 2026-11-28 09:30 in Shanghai: before Saturday's window.
        let (local, window) = w.outside(sh, utc("2026-11-28T01:30:00Z")).unwrap();
        assert_eq!((local.hour(), local.minute()), (9, 30));
        assert_eq!(local.weekday(), chrono::Weekday::Sat);
        assert_eq!(window, saturday);
        // Inside it: allowed.
        assert!(w.outside(sh, utc("2026-11-28T02:00:00Z")).is_none());
        // Sunday: nothing is allowed, and the window says so.
        let (_, sunday) = w.outside(sh, utc("2026-11-29T04:00:00Z")).unwrap();
        assert!(sunday.is_empty());
    }

    #[test]
    fn dst_gap_moves_to_the_end_of_the_gap() {
        // 2027-03-14 02:00 does not exist in New York.
        let w = Week::every_day(Window::parse("02:30-05:00").unwrap());
        let at = release_at(&[(America::New_York, w)], utc("2027-03-14T01:00:00-05:00"));
        assert_eq!(at, Some(utc("2027-03-14T03:00:00-04:00")));
    }
}
