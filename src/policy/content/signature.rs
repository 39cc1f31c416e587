//! The CN 【brand】 signature: at the very start of the body, or at the very
//! end ignoring trailing whitespace and punctuation. An alias is not a
//! signature.

/// What the body carries as a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature<'a> {
    /// A signature equal to the brand.
    Brand,
    /// No 【…】 at the start or the end.
    Missing,
    /// A 【…】 at the start or end, none of which is the brand (first one).
    Other(&'a str),
}

fn trailing_noise(c: char) -> bool {
    c != '】' && (c.is_whitespace() || c.is_ascii_punctuation() || is_cjk_punctuation(c))
}

fn is_cjk_punctuation(c: char) -> bool {
    matches!(c, '\u{3001}'..='\u{3003}' | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '…' | '—' | '～')
}

/// Checks a normalized body against a normalized brand.
pub fn check<'a>(text: &'a str, brand: &str) -> Signature<'a> {
    let mut found: Option<&'a str> = None;
    if let Some(rest) = text.strip_prefix('【')
        && let Some(end) = rest.find('】')
    {
        let sig = rest[..end].trim();
        if sig == brand {
            return Signature::Brand;
        }
        found = Some(sig);
    }
    let tail = text.trim_end_matches(trailing_noise);
    if let Some(rest) = tail.strip_suffix('】')
        && let Some(start) = rest.rfind('【')
    {
        let sig = rest[start + '【'.len_utf8()..].trim();
        if sig == brand {
            return Signature::Brand;
        }
        found = found.or(Some(sig));
    }
    match found {
        Some(sig) => Signature::Other(sig),
        None => Signature::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_or_end_only() {
        assert_eq!(check("【惠农信贷】您好", "惠农信贷"), Signature::Brand);
        assert_eq!(check("您好【惠农信贷】。 ", "惠农信贷"), Signature::Brand);
        assert_eq!(check("您好【惠农】", "惠农信贷"), Signature::Other("惠农"));
        assert_eq!(check("您好,惠农信贷", "惠农信贷"), Signature::Missing);
        assert_eq!(
            check("您好【惠农信贷】还有", "惠农信贷"),
            Signature::Missing
        );
    }
}
