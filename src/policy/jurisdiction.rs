//! Where a recipient is: which pack applies (by the number's country code),
//! and for `+1` numbers the area code's time zones and state or province.
//!
//! The NANP table ships in `config/nanp-area-codes.tsv`, derived from Google
//! libphonenumber (Apache-2.0); it is built into the binary and parsed once.

use std::sync::OnceLock;

use chrono_tz::Tz;

/// Which country's rules a number falls under, by its country code: the
/// opt-out keyword lists follow it (the packs choose by their own prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jurisdiction {
    Cn,
    Us,
    /// Any other country: both lists.
    Other,
}

impl Jurisdiction {
    pub fn of(number: &str) -> Jurisdiction {
        if number.starts_with("+86") {
            Jurisdiction::Cn
        } else if number.starts_with("+1") {
            Jurisdiction::Us
        } else {
            Jurisdiction::Other
        }
    }
}

/// The shipped NANP table (area code, region, ISO region, zones).
pub const NANP_TSV: &str = include_str!("../../config/nanp-area-codes.tsv");

/// What the table says about one area code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaCode {
    /// Every zone the area code spans; more than one means strictest wins.
    pub zones: Vec<Tz>,
    /// ISO 3166-2 code (`US-FL`) or a territory's ISO 3166-1 code (`PR`);
    /// for combined regions the first one.
    pub region: String,
}

/// Area codes 000–999; `None` where the table has no row.
pub struct NanpTable {
    codes: Vec<Option<AreaCode>>,
}

impl NanpTable {
    /// Parses the TSV; rows that do not parse (or name a zone chrono-tz does
    /// not know) are left out rather than guessed.
    pub fn parse(text: &str) -> NanpTable {
        let mut codes: Vec<Option<AreaCode>> = vec![None; 1000];
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with("area_code") || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 4 {
                continue;
            }
            let Ok(code) = cols[0].parse::<usize>() else {
                continue;
            };
            let zones: Result<Vec<Tz>, _> = cols[3].split('&').map(str::parse::<Tz>).collect();
            let (Ok(zones), true) = (zones, code < 1000) else {
                continue;
            };
            let region = cols[2].split('&').next().unwrap_or_default().to_string();
            codes[code] = Some(AreaCode { zones, region });
        }
        NanpTable { codes }
    }

    /// The built-in table.
    pub fn shipped() -> &'static NanpTable {
        static TABLE: OnceLock<NanpTable> = OnceLock::new();
        TABLE.get_or_init(|| NanpTable::parse(NANP_TSV))
    }

    /// Area code of a `+1` E.164 number.
    pub fn lookup(&self, e164: &str) -> Option<&AreaCode> {
        let digits = e164.strip_prefix("+1")?.as_bytes();
        if digits.len() < 3 || !digits[..3].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = (digits[0] - b'0') as usize * 100
            + (digits[1] - b'0') as usize * 10
            + (digits[2] - b'0') as usize;
        self.codes[code].as_ref()
    }

    pub fn len(&self) -> usize {
        self.codes.iter().filter(|c| c.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The region of a recipient: `recipient.region` when given, else what a
/// `+1` number's area code implies.
pub fn region<'a>(explicit: Option<&'a str>, to: &str) -> Option<&'a str> {
    explicit.or_else(|| NanpTable::shipped().lookup(to).map(|a| a.region.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdiction_follows_the_country_code() {
        assert_eq!(Jurisdiction::of("+8613812345678"), Jurisdiction::Cn);
        assert_eq!(Jurisdiction::of("+12125551234"), Jurisdiction::Us);
        assert_eq!(Jurisdiction::of("+85291234567"), Jurisdiction::Other);
    }

    #[test]
    fn shipped_table_is_complete_and_known_to_chrono_tz() {
        let t = NanpTable::shipped();
        assert_eq!(t.len(), 441, "every row of the table parses");
        let ny = t.lookup("+12125551234").unwrap();
        assert_eq!(ny.zones, vec![chrono_tz::America::New_York]);
        assert_eq!(ny.region, "US-NY");
        assert_eq!(t.lookup("+12085551234").unwrap().zones.len(), 3);
        assert!(t.lookup("+15555551234").is_none());
        assert!(t.lookup("+8613812345678").is_none());
    }
}
