//! Phone numbers in a body: runs of 7–15 digits, separators allowed, that
//! are not dates, amounts of money, parts of links or PII already flagged,
//! nor references introduced as such (订单号, 运单号, 尾号, order #, tracking,
//! ref: the pack's `references`).
//! A sender's own number matches with or without the country prefix.

use crate::policy::lexicon::Span;

/// One number found: where it is and its digits (up to 15).
#[derive(Debug, Clone, Copy)]
pub struct PhoneNumber {
    pub span: Span,
    digits: [u8; 15],
    len: usize,
}

impl PhoneNumber {
    pub fn digits(&self) -> &str {
        // Only ASCII digits are stored.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or_default()
    }
}

/// Money markers that make a digit run an amount.
#[derive(Debug, Clone, Default)]
pub struct MoneyMarkers {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

fn separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// `2026-11-28`, `2026/11/28`, `28.11.2026`, or `20261128`.
fn is_date(groups: &[(usize, u8)], digits: &[u8]) -> bool {
    let g = |k: usize| groups.get(k).map(|x| x.0);
    let sep = |k: usize| groups.get(k).map(|x| x.1);
    let date_sep = |s: Option<u8>| matches!(s, Some(b'-' | b'/' | b'.'));
    let short = |n: Option<usize>| matches!(n, Some(1 | 2));
    if groups.len() >= 3 && date_sep(sep(1)) && sep(1) == sep(2) {
        if g(0) == Some(4) && short(g(1)) && short(g(2)) {
            return true;
        }
        if short(g(0)) && short(g(1)) && g(2) == Some(4) {
            return true;
        }
    }
    if groups.len() == 1
        && digits.len() == 8
        && (digits.starts_with(b"19") || digits.starts_with(b"20"))
    {
        let month = (digits[4] - b'0') * 10 + (digits[5] - b'0');
        let day = (digits[6] - b'0') * 10 + (digits[7] - b'0');
        return (1..=12).contains(&month) && (1..=31).contains(&day);
    }
    false
}

fn money_around(text: &str, start: usize, end: usize, m: &MoneyMarkers) -> bool {
    let before = text[..start].trim_end_matches(' ');
    let after = text[end..].trim_start_matches(' ');
    m.before.iter().any(|s| {
        before.len() >= s.len()
            && before.as_bytes()[before.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
    }) || m.after.iter().any(|s| {
        after.len() >= s.len() && after.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
    })
}

/// Is the digit run at `start` introduced by a reference word (`订单号：`,
/// `order #`, `Tracking No.`)? `refs` are lowercase.
fn reference_before(text: &str, start: usize, refs: &[String]) -> bool {
    if refs.is_empty() {
        return false;
    }
    let before = text[..start].trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ':' | '：' | '#' | '=' | '(' | '（' | '为' | '是')
    });
    // A carrier's letter prefix (运单号SF1402…, tracking RM1234…).
    let letters = before
        .bytes()
        .rev()
        .take_while(u8::is_ascii_uppercase)
        .count();
    let before = if (1..=3).contains(&letters) {
        before[..before.len() - letters].trim_end()
    } else {
        before
    };
    let before = before
        .strip_suffix("No.")
        .or_else(|| before.strip_suffix("no."))
        .or_else(|| before.strip_suffix("NO."))
        .map_or(before, |b| b.trim_end());
    // Compare the tail only (bodies are short; references shorter).
    let tail_start = before.char_indices().rev().nth(23).map_or(0, |(i, _)| i);
    let tail = before[tail_start..].to_lowercase();
    refs.iter().any(|r| {
        tail.ends_with(r.as_str())
            && !tail[..tail.len() - r.len()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() && r.is_ascii())
    })
}

/// Calls `f` for every phone number in normalized `text` that does not
/// overlap a `skip` span and is not introduced by one of `refs`.
pub fn find(
    text: &str,
    min: usize,
    max: usize,
    money: &MoneyMarkers,
    refs: &[String],
    skip: &[Span],
    mut f: impl FnMut(&PhoneNumber),
) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = if i > 0 && b[i - 1] == b'+' { i - 1 } else { i };
        let mut digits = [0u8; 15];
        let mut n = 0usize;
        // (group length, separator before the group)
        let mut groups = [(0usize, 0u8); 8];
        let mut ng = 0;
        let mut j = i;
        let mut sep_before = 0u8;
        loop {
            let group_start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                if n < 15 {
                    digits[n] = b[j];
                }
                n += 1;
                j += 1;
            }
            if ng < groups.len() {
                groups[ng] = (j - group_start, sep_before);
                ng += 1;
            }
            // Up to two separators, then more digits, continue the run.
            let mut k = j;
            while k < b.len() && k - j < 2 && (separator(b[k]) || b[k] == b'/') {
                k += 1;
            }
            if k > j && k < b.len() && b[k].is_ascii_digit() {
                sep_before = b[j];
                j = k;
                continue;
            }
            break;
        }
        let end = j;
        i = end;
        if n < min || n > max || n > 15 {
            continue;
        }
        if is_date(&groups[..ng], &digits[..n])
            || money_around(text, start, end, money)
            || reference_before(text, start, refs)
            || skip.iter().any(|&(s, e)| start < e && s < end)
        {
            continue;
        }
        f(&PhoneNumber {
            span: (start, end),
            digits,
            len: n,
        });
    }
}

/// Does a number found in the body equal one of the sender's numbers, with
/// or without a country prefix (`+1…`, `86…`, `0086…`) on either side?
pub fn is_sender_number(found: &str, numbers: &[String]) -> bool {
    /// Digits only, without an international `00` prefix, on the stack.
    fn digits(s: &str, buf: &mut [u8; 24]) -> usize {
        let mut n = 0;
        for d in s.bytes().filter(u8::is_ascii_digit) {
            if n < buf.len() {
                buf[n] = d;
                n += 1;
            }
        }
        if n >= 2 && buf[0] == b'0' && buf[1] == b'0' {
            buf.copy_within(2..n, 0);
            n -= 2;
        }
        n
    }
    let mut a = [0u8; 24];
    let len = digits(found, &mut a);
    let found = &a[..len];
    numbers.iter().any(|number| {
        let mut b = [0u8; 24];
        let len = digits(number, &mut b);
        let n = &b[..len];
        let (long, short) = if n.len() >= found.len() {
            (n, found)
        } else {
            (found, n)
        };
        !short.is_empty() && long.ends_with(short) && long.len() - short.len() <= 3
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let money = MoneyMarkers {
            before: vec!["¥".into(), "$".into()],
            after: vec!["元".into(), "%".into(), "万".into()],
        };
        let refs: Vec<String> = [
            "订单号",
            "运单号",
            "尾号",
            "order #",
            "order",
            "tracking",
            "ref",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut out = Vec::new();
        find(text, 7, 15, &money, &refs, &[], |p| {
            out.push(p.digits().to_string())
        });
        out
    }

    #[test]
    fn references_are_not_numbers() {
        assert_eq!(found("订单号：202612051234 已发货"), Vec::<String>::new());
        assert_eq!(found("运单号 SF 75012345678"), Vec::<String>::new());
        assert_eq!(found("运单号75012345678"), Vec::<String>::new());
        assert_eq!(found("Order #88812345 shipped"), Vec::<String>::new());
        assert_eq!(
            found("Tracking No. 940011189922 on its way"),
            Vec::<String>::new()
        );
        assert_eq!(found("reorder 5551234567"), vec!["5551234567"]);
        assert_eq!(found("运单号SF1402837465900"), Vec::<String>::new());
        assert_eq!(found("call 555-123-4567"), vec!["5551234567"]);
    }

    #[test]
    fn numbers_but_not_dates_times_money_or_otps() {
        assert_eq!(found("致电 138-1234-5678 咨询"), vec!["13812345678"]);
        assert_eq!(found("call (800) 555-0100 now"), vec!["8005550100"]);
        assert_eq!(found("验证码 123456，5分钟有效"), Vec::<String>::new());
        assert_eq!(found("2026-11-28 09:30 到期"), Vec::<String>::new());
        assert_eq!(found("on 20261128 only"), Vec::<String>::new());
        assert_eq!(found("额度 50000000元"), Vec::<String>::new());
        assert_eq!(found("only $1 000 000.00"), Vec::<String>::new());
    }

    #[test]
    fn sender_numbers_with_or_without_country_prefix() {
        let nums = vec!["+18005550100".to_string(), "106900001234".to_string()];
        assert!(is_sender_number("8005550100", &nums));
        assert!(is_sender_number("18005550100", &nums));
        assert!(is_sender_number("86106900001234", &nums));
        assert!(!is_sender_number("8005550101", &nums));
    }
}
