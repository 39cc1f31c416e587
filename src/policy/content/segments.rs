//! SMS segment counting: GSM-7 when every character is in the GSM 03.38
//! alphabet (160 septets, 153 per part; extension characters cost 2),
//! otherwise UCS-2 (70 UTF-16 units, 67 per part).

/// Characters of the GSM 03.38 basic table.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the extension table (sent as escape + character).
const GSM_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// How a body is encoded and how many parts it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub gsm7: bool,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    pub parts: usize,
}

fn gsm_cost(c: char) -> Option<usize> {
    if c.is_ascii() {
        // Every printable ASCII character except these is in the basic table.
        return match c {
            '^' | '{' | '}' | '\\' | '[' | ']' | '~' | '|' | '\u{0C}' => Some(2),
            '`' => None,
            ' '..='~' | '\n' | '\r' => Some(1),
            _ => None,
        };
    }
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Septets of a body when it fits GSM-7, `None` when it needs UCS-2.
fn septets(body: &str) -> Option<usize> {
    if body.is_ascii() {
        // Cost per ASCII byte, 0 when not in the GSM alphabet.
        const COST: [u8; 128] = {
            let mut t = [0u8; 128];
            let mut b = 0;
            while b < 128 {
                t[b] = match b as u8 {
                    b'^' | b'{' | b'}' | b'\\' | b'[' | b']' | b'~' | b'|' | 0x0C => 2,
                    b'`' => 0,
                    b' '..=b'~' | b'\n' | b'\r' => 1,
                    _ => 0,
                };
                b += 1;
            }
            t
        };
        let mut n = 0usize;
        let mut invalid = false;
        for &b in body.as_bytes() {
            let c = COST[usize::from(b)];
            invalid |= c == 0;
            n += usize::from(c);
        }
        return (!invalid).then_some(n);
    }
    // Every non-ASCII GSM character is below U+0400 except the euro sign:
    // anything else (CJK, emoji) means UCS-2 without a table lookup.
    if body.chars().any(|c| c as u32 >= 0x400 && c != '€') {
        return None;
    }
    body.chars().map(gsm_cost).sum()
}

pub fn count(body: &str) -> Segments {
    let (gsm7, units, single, multi) = match septets(body) {
        Some(n) => (true, n, 160, 153),
        // UTF-16 units: one per character, two for those outside the BMP
        // (the ones encoded in four UTF-8 bytes).
        None => (
            false,
            body.chars().count() + body.bytes().filter(|b| *b >= 0xF0).count(),
            70,
            67,
        ),
    };
    let parts = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    Segments { gsm7, units, parts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_and_ucs2_limits() {
        assert_eq!(count(&"a".repeat(160)).parts, 1);
        assert_eq!(count(&"a".repeat(161)).parts, 2);
        assert_eq!(count(&"a".repeat(306)).parts, 2);
        assert_eq!(count(&"a".repeat(307)).parts, 3);
        assert_eq!(count(&"{".repeat(80)).units, 160);
        assert_eq!(count(&"汉".repeat(70)).parts, 1);
        assert_eq!(count(&"汉".repeat(71)).parts, 2);
        assert!(!count("`").gsm7);
        assert!(!count("a\tb").gsm7);
        assert!(count("a\r\nb").gsm7);
        // An emoji is two UTF-16 units.
        assert_eq!(count("😀").units, 2);
        assert!(count("€ @ £").gsm7);
    }
}
