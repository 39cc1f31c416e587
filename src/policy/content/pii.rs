//! Personal data in a body: 18-character PRC resident ID numbers with a
//! valid checksum, and 13–19 digit payment card numbers (issuer digit 2–6)
//! that pass the Luhn check, written plain or in groups split by spaces or
//! dashes.

use crate::policy::lexicon::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    PrcId,
    Card,
}

/// One finding; only its kind and length go into reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pii {
    pub kind: PiiKind,
    pub span: Span,
    pub digits: usize,
}

/// ISO 7064 MOD 11-2 check of a PRC resident ID (17 digits + check char).
pub fn prc_id_valid(id: &[u8]) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    if id.len() != 18 || !id[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = id[..17]
        .iter()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == id[17].to_ascii_uppercase()
}

pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn alnum(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

/// Finds PII in normalized `text`.
pub fn find(text: &str, prc_id: bool, cards: bool, out: &mut Vec<Pii>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && alnum(b, i - 1)) {
            i += 1;
            continue;
        }
        // Plain run of digits (an ID may end in X).
        let mut end = i;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let plain_end = if end - i == 17 && matches!(b.get(end), Some(b'X' | b'x')) {
            end + 1
        } else {
            end
        };
        if prc_id && plain_end - i == 18 && !alnum(b, plain_end) && prc_id_valid(&b[i..plain_end]) {
            out.push(Pii {
                kind: PiiKind::PrcId,
                span: (i, plain_end),
                digits: 18,
            });
            i = plain_end;
            continue;
        }
        if cards && let Some((span_end, digits)) = card_at(b, i) {
            out.push(Pii {
                kind: PiiKind::Card,
                span: (i, span_end),
                digits,
            });
            i = span_end;
            continue;
        }
        i = end;
    }
}

/// A card number starting at `i`: digit groups joined by single spaces or
/// dashes, 13–19 digits in all, Luhn-valid, not glued to other letters.
fn card_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if !(b'2'..=b'6').contains(&b[i]) {
        return None;
    }
    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut j = i;
    loop {
        while j < b.len() && b[j].is_ascii_digit() {
            if n == 19 {
                return None;
            }
            digits[n] = b[j];
            n += 1;
            j += 1;
        }
        if j + 1 < b.len() && matches!(b[j], b' ' | b'-') && b[j + 1].is_ascii_digit() {
            j += 1;
            continue;
        }
        break;
    }
    if (13..=19).contains(&n) && !alnum(b, j) && luhn_valid(&digits[..n]) {
        Some((j, n))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        let mut out = Vec::new();
        find(text, true, true, &mut out);
        out.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn checksums_decide() {
        assert_eq!(
            kinds("身份证11010519491231002X已登记"),
            vec![PiiKind::PrcId]
        );
        assert_eq!(kinds("身份证110105194912310021已登记"), vec![]);
        assert_eq!(kinds("card 4111 1111 1111 1111 ok"), vec![PiiKind::Card]);
        assert_eq!(kinds("card 4111-1111-1111-1112 ok"), vec![]);
        assert_eq!(kinds("order 8613812345678"), vec![]);
    }
}
