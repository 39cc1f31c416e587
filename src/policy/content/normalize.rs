//! Text normalization before any keyword is matched, so that spacing,
//! zero-width and full-width evasions ("秒 批", "秒\u{200b}批", "ｇｕａｒａｎｔｅｅｄ")
//! read like the plain word.
//!
//! Steps: zero-width and joiner characters are dropped, the text is put in
//! Unicode NFKC (which also maps full-width ASCII to half-width), whitespace
//! runs become one space, whitespace between CJK characters is removed, runs
//! of four or more single letters separated by spaces ("g u a r a n t e e d")
//! are joined, and the ends are trimmed. The result is idempotent.
//!
//! Most traffic is ASCII, CJK ideographs and full-width punctuation, whose
//! NFKC forms are known; that text skips the general NFKC pass.

use unicode_normalization::UnicodeNormalization;

/// Characters removed before anything else: zero-width spaces and joiners,
/// invisible operators, the soft hyphen, direction marks, variation selectors.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// CJK characters between which whitespace is removed: ideographs, kana
/// (without the combining sound marks) and CJK punctuation. Hangul is left
/// out: removing a space between jamo could compose a new syllable.
pub fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{3001}'..='\u{303F}'
            | '\u{3041}'..='\u{3096}'
            | '\u{30A1}'..='\u{30FA}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{2FFFF}'
    )
}

/// The NFKC form of characters common in SMS whose mapping is a single known
/// character, or `None` when the general NFKC pass is needed.
fn fast_nfkc(c: char) -> Option<char> {
    match c {
        '\u{4E00}'..='\u{9FFF}' => Some(c),
        // Full-width ASCII maps to ASCII.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        '\u{3001}'..='\u{3011}' | '\u{3014}'..='\u{301F}' => Some(c),
        '\u{2013}' | '\u{2014}' | '\u{2018}' | '\u{2019}' | '\u{201C}' | '\u{201D}' => Some(c),
        '\u{00B7}' | '\u{00D7}' => Some(c),
        _ => None,
    }
}

/// Is `x` printable ASCII other than space?
fn printable(x: u8) -> bool {
    x > b' ' && x < 0x7F
}

/// Length of the leading run of `b` that normalization copies unchanged:
/// printable ASCII, single spaces between printable ASCII, and CJK
/// ideographs U+4E00–U+9FFF. Also counts the spaces in it that are followed
/// by a letter (possible single-letter tokens).
fn passthrough_len(b: &[u8]) -> (usize, usize) {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    let mut letters_after_space = 0;
    loop {
        // Eight printable ASCII bytes at a time: no high bit, none <= space,
        // none equal to DEL.
        while i + 8 <= b.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[i..i + 8]);
            let w = u64::from_le_bytes(word);
            let del = w ^ (0x7F * LOW);
            let bad = (w & HIGH)
                | (w.wrapping_sub(0x21 * LOW) & !w & HIGH)
                | (del.wrapping_sub(LOW) & !del & HIGH);
            if bad != 0 {
                break;
            }
            i += 8;
        }
        let Some(&x) = b.get(i) else {
            break;
        };
        if x < 0x80 {
            if printable(x) {
                i += 1;
            } else if x == b' '
                && i > 0
                && printable(b[i - 1])
                && b.get(i + 1).is_some_and(|n| printable(*n))
            {
                // A letter not followed by another printable byte may be a
                // single-letter token.
                letters_after_space += usize::from(
                    b[i + 1].is_ascii_alphabetic() && !b.get(i + 2).is_some_and(|n| printable(*n)),
                );
                i += 1;
            } else {
                break;
            }
        } else if (0xE4..=0xE9).contains(&x) && i + 3 <= b.len() && (x != 0xE4 || b[i + 1] >= 0xB8)
        {
            // A three-byte sequence in U+4E00..=U+9FFF.
            i += 3;
        } else {
            break;
        }
    }
    (i, letters_after_space)
}

/// Normalizes `input` into `out` (cleared first).
pub fn normalize_into(input: &str, out: &mut String) {
    out.clear();
    out.reserve(input.len());
    let mut ws = Whitespace::default();
    let mut i = 0;
    while i < input.len() {
        let (run, letters) = passthrough_len(&input.as_bytes()[i..]);
        if run > 0 {
            ws.singles += letters;
            ws.push_run(out, &input[i..i + run]);
            i += run;
            continue;
        }
        let Some(c) = input[i..].chars().next() else {
            break;
        };
        i += c.len_utf8();
        if c.is_ascii() {
            ws.push(out, c);
        } else if let Some(m) = fast_nfkc(c) {
            ws.push(out, m);
        } else if !is_invisible(c) {
            // Something the fast table does not know: run the general pass
            // over the whole input (composition may involve earlier text).
            out.clear();
            ws = Whitespace::default();
            for c in input.chars().filter(|c| !is_invisible(*c)).nfkc() {
                if !is_invisible(c) {
                    ws.push(out, c);
                }
            }
            break;
        }
    }
    // Only text with at least four single-letter tokens can hold a run of
    // four of them.
    if ws.singles >= 4 {
        join_spaced_letters(out);
    }
}

/// The same normalization without the fast paths: every character goes
/// through NFKC and the whitespace handling one by one. Tests compare the
/// two.
pub fn normalize_general(input: &str) -> String {
    let mut out = String::new();
    let mut ws = Whitespace::default();
    for c in input.chars().filter(|c| !is_invisible(*c)).nfkc() {
        if !is_invisible(c) {
            ws.push(&mut out, c);
        }
    }
    join_spaced_letters(&mut out);
    out
}

/// Normalizes into a new string.
pub fn normalize(input: &str) -> String {
    let mut out = String::new();
    normalize_into(input, &mut out);
    out
}

/// Whitespace handling while characters stream in: a run becomes one space,
/// emitted only before the next non-space character, and dropped at the
/// ends and between two CJK characters.
#[derive(Default)]
struct Whitespace {
    pending: bool,
    last: Option<char>,
    /// An upper bound of the single-letter tokens seen, to skip the
    /// letter-joining pass cheaply.
    singles: usize,
}

impl Whitespace {
    fn push(&mut self, out: &mut String, c: char) {
        if c.is_whitespace() {
            self.pending = true;
            return;
        }
        if c.is_ascii_alphabetic() && (self.pending || self.last.is_none()) {
            self.singles += 1;
        }
        if self.pending {
            if let Some(last) = self.last
                && !(is_cjk(last) && is_cjk(c))
            {
                out.push(' ');
            }
            self.pending = false;
        }
        out.push(c);
        self.last = Some(c);
    }

    /// Pushes a run of non-space characters that need no mapping.
    fn push_run(&mut self, out: &mut String, run: &str) {
        let mut chars = run.chars();
        let (Some(first), last) = (chars.next(), chars.next_back()) else {
            return;
        };
        if first.is_ascii_alphabetic()
            && (self.pending || self.last.is_none())
            && !run.as_bytes().get(1).is_some_and(|n| printable(*n))
        {
            self.singles += 1;
        }
        if self.pending {
            if let Some(prev) = self.last
                && !(is_cjk(prev) && is_cjk(first))
            {
                out.push(' ');
            }
            self.pending = false;
        }
        out.push_str(run);
        self.last = Some(last.unwrap_or(first));
    }
}

/// Joins runs of at least four single ASCII letters separated by single
/// spaces: "g u a r a n t e e d" → "guaranteed".
fn join_spaced_letters(s: &mut String) {
    let b = s.as_bytes();
    let single = |i: usize| -> bool {
        b[i].is_ascii_alphabetic()
            && (i == 0 || b[i - 1] == b' ')
            && (i + 1 == b.len() || b[i + 1] == b' ')
    };
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if single(i) {
            let start = i;
            let mut end = i + 1;
            let mut count = 1;
            while end + 1 < b.len() && b[end] == b' ' && single(end + 1) {
                end += 2;
                count += 1;
            }
            if count >= 4 {
                runs.push((start, end));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return;
    }
    let mut joined = String::with_capacity(s.len());
    let mut at = 0;
    for (start, end) in runs {
        joined.push_str(&s[at..start]);
        joined.extend(s[start..end].chars().filter(|c| *c != ' '));
        at = end;
    }
    joined.push_str(&s[at..]);
    *s = joined;
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn evasions_read_as_the_plain_word() {
        assert_eq!(normalize("秒 批"), "秒批");
        assert_eq!(normalize("秒\u{200b}批"), "秒批");
        assert_eq!(normalize("ｇｕａｒａｎｔｅｅｄ"), "guaranteed");
        assert_eq!(
            normalize("g u a r a n t e e d approval"),
            "guaranteed approval"
        );
        assert_eq!(normalize("回Ｔ退订"), "回T退订");
        assert_eq!(normalize("  a\t\n b  "), "a b");
        assert_eq!(normalize("秒　批"), "秒批");
        assert_eq!(
            normalize("abcdefg\thijklmnop\u{7f}q  r"),
            "abcdefg hijklmnop\u{7f}q r"
        );
    }

    #[test]
    fn ordinary_text_keeps_its_words() {
        assert_eq!(
            normalize("Hello world, I am here"),
            "Hello world, I am here"
        );
        assert_eq!(normalize("a b c"), "a b c");
        assert_eq!(normalize("您好 Tom 先生"), "您好 Tom 先生");
        assert_eq!(normalize("e\u{0301}"), "\u{e9}");
    }
}
