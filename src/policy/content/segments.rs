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

pub fn count(body: &str) -> Segments {
    let septets: Option<usize> = body.chars().map(gsm_cost).sum();
    let (gsm7, units, single, multi) = match septets {
        Some(n) => (true, n, 160, 153),
        None => (false, body.encode_utf16().count(), 70, 67),
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
        // An emoji is two UTF-16 units.
        assert_eq!(count("😀").units, 2);
        assert!(count("€ @ £").gsm7);
    }
}
