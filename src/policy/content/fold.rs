//! Folding of the normalized body before keywords are matched, so that a
//! name written in Traditional characters (工商銀行), with separators between
//! its characters (工·商·银·行, 工-商-银-行) or with confusable letters from
//! another script (a Cyrillic а in "Chаse") reads like the plain name.
//!
//! Traditional characters are mapped one to one by `fast2s` (three UTF-8
//! bytes to three), confusable letters by the UTS-39 skeleton of
//! `unicode-security` where the skeleton is one ASCII letter. Plain ASCII
//! text is already folded and is copied as is.

use super::normalize::is_cjk;

/// Separators dropped between two CJK characters. Whitespace between CJK
/// characters is already gone after normalization.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '·' | '・'
            | '•'
            | '‧'
            | '∙'
            | '-'
            | '_'
            | '.'
            | '*'
            | '/'
            | '|'
            | '~'
            | '、'
            | '—'
            | '–'
            | '='
            | '+'
    ) || c == ' '
}

/// The ASCII letter a non-ASCII letter is confusable with (Cyrillic а → a,
/// Greek ο → o), if its UTS-39 skeleton is a single ASCII letter.
fn confusable_ascii(c: char) -> Option<char> {
    // Cheap tests first: most non-ASCII text is CJK.
    if c.is_ascii() || is_cjk(c) || !c.is_alphabetic() {
        return None;
    }
    let mut buf = [0; 4];
    let mut sk = unicode_security::skeleton(c.encode_utf8(&mut buf));
    match (sk.next(), sk.next()) {
        // The skeleton of a lowercase letter may be uppercase-looking
        // (Cyrillic і → i, but Cyrillic Ӏ → l): keep the case of the source.
        (Some(a), None) if a.is_ascii_alphabetic() => Some(if c.is_uppercase() {
            a.to_ascii_uppercase()
        } else {
            a
        }),
        _ => None,
    }
}

/// Folds normalized `text` into `out` (cleared first).
pub fn fold_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.push_str(text);
        return;
    }
    out.reserve(text.len());
    let mut last: Option<char> = None;
    for (i, c) in text.char_indices() {
        if is_separator(c) && last.is_some_and(is_cjk) && separated_cjk(&text[i..]) {
            continue;
        }
        let m = confusable_ascii(c).unwrap_or(c);
        out.push(m);
        last = Some(m);
    }
    // One to one, three bytes for three: spans stay valid.
    fast2s::replace(out);
}

/// Does `rest` (starting with a separator) continue with more separators
/// and then a CJK character?
fn separated_cjk(rest: &str) -> bool {
    rest.chars().find(|c| !is_separator(*c)).is_some_and(is_cjk)
}

/// Folds into a new string.
pub fn fold(text: &str) -> String {
    let mut out = String::new();
    fold_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn traditional_separators_and_confusables_are_folded() {
        assert_eq!(fold("工商銀行"), "工商银行");
        assert_eq!(fold("工·商·银·行"), "工商银行");
        assert_eq!(fold("工-商-银-行"), "工商银行");
        assert_eq!(fold("支*付*宝"), "支付宝");
        assert_eq!(fold("Ch\u{0430}se"), "Chase");
        assert_eq!(fold("\u{0421}hase"), "Chase");
        assert_eq!(fold("Hello, world"), "Hello, world");
        assert_eq!(fold("满100-20元"), "满100-20元");
        assert_eq!(fold("工 - 行"), "工行");
        assert_eq!(fold("A-B 工行"), "A-B 工行");
    }
}
