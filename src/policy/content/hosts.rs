//! Link hosts read as a browser reads them, and imitations of known domains.
//!
//! A host is mapped with IDNA UTS-46 (`idna`: case folding, full-width
//! forms, ideographic full stops as dots, punycode for non-ASCII labels) and
//! judged in that ASCII form. Its registrable domain and whether a label is
//! a top-level domain come from the Public Suffix List embedded in `psl`
//! (no network). An imitation (`content.url_lookalike`) of a protected
//! domain (the sender's own, or a well-known brand's from the pack) is a
//! host whose registrable name has the same UTS-39 skeleton (`unicode-security`),
//! is one edit away, or carries the real name as a label or hyphen-separated
//! part somewhere else (`huinong.cn.贷款网.top`, `icbc-cn.top`).

use std::borrow::Cow;

use idna::AsciiDenyList;

/// The ASCII (punycode) form of a host as written, or `None` when IDNA
/// rejects it. Ideographic full stops are dots.
pub fn to_ascii(host: &str) -> Option<Cow<'_, str>> {
    if host.contains(['。', '｡', '．']) {
        let dotted = host.replace(['。', '｡', '．'], ".");
        return idna::domain_to_ascii_cow(dotted.as_bytes(), AsciiDenyList::URL)
            .ok()
            .map(|c| Cow::Owned(c.into_owned()));
    }
    idna::domain_to_ascii_cow(host.as_bytes(), AsciiDenyList::URL).ok()
}

/// Is `label` (one label, any case, ASCII or not) a top-level domain in the
/// Public Suffix List (every IANA TLD is there)?
pub fn is_tld(label: &str) -> bool {
    if label.is_empty() || label.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if label.is_ascii() {
        let lower = label.to_ascii_lowercase();
        return psl::suffix(lower.as_bytes()).is_some_and(|s| s.is_known());
    }
    to_ascii(label).is_some_and(|a| psl::suffix(a.as_bytes()).is_some_and(|s| s.is_known()))
}

/// The registrable domain of an ASCII host (`www.icbc.com.cn` →
/// `icbc.com.cn`), or the host itself when the list does not say.
pub fn registrable(ascii: &str) -> &str {
    psl::domain_str(ascii).unwrap_or(ascii)
}

/// A domain to protect, prepared once at load.
#[derive(Debug, Clone)]
pub struct Protected {
    /// Registrable domain, ASCII lowercase (`icbc.com.cn`).
    pub domain: String,
    /// Its name without the public suffix (`icbc`).
    label: String,
    /// UTS-39 skeleton of the label.
    skeleton: String,
}

impl Protected {
    pub fn new(domain: &str) -> Option<Protected> {
        let ascii = to_ascii(domain.trim())?.to_ascii_lowercase();
        let reg = registrable(&ascii).to_string();
        let label = name_part(&reg).to_string();
        if label.len() < 3 {
            return None;
        }
        Some(Protected {
            skeleton: skeleton(&label),
            domain: reg,
            label,
        })
    }
}

/// The registrable domain without its public suffix.
fn name_part(reg: &str) -> &str {
    let suffix = psl::suffix_str(reg).unwrap_or("");
    reg.strip_suffix(suffix)
        .map(|s| s.trim_end_matches('.'))
        .filter(|s| !s.is_empty())
        .unwrap_or(reg)
}

fn skeleton(s: &str) -> String {
    unicode_security::skeleton(&s.to_lowercase())
        .collect::<String>()
        .to_lowercase()
}

/// Levenshtein distance is exactly one (chars).
fn one_edit(a: &str, b: &str) -> bool {
    a != b && strsim::levenshtein(a, b) == 1
}

/// Which protected domain `ascii_host` imitates, if any. The host must not
/// be within the sender's own domains (the caller checks that first).
pub fn imitates<'p>(ascii_host: &str, protected: &'p [Protected]) -> Option<&'p Protected> {
    let host = ascii_host.to_ascii_lowercase();
    let reg = registrable(&host);
    // Compare names as people read them: the Unicode form of punycode labels.
    let (unicode, _) = idna::domain_to_unicode(&host);
    let ureg = idna::domain_to_unicode(reg).0;
    let name = name_part(&ureg).to_string();
    let name_skeleton = skeleton(&name);
    let parts: Vec<&str> = unicode
        .split(['.', '-'])
        .filter(|p| !p.is_empty())
        .collect();
    protected.iter().find(|p| {
        if reg == p.domain || host.ends_with(&format!(".{}", p.domain)) {
            return false;
        }
        name_skeleton == p.skeleton
            || (p.label.len() >= 4 && one_edit(&name, &p.label))
            || parts.iter().any(|part| {
                *part == p.label || (p.label.len() >= 6 && part.contains(p.label.as_str()))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protect(d: &[&str]) -> Vec<Protected> {
        d.iter().filter_map(|d| Protected::new(d)).collect()
    }

    #[test]
    fn hosts_are_read_with_idna_and_the_psl() {
        let puny = to_ascii("惠农.top").unwrap_or_default();
        assert!(puny.starts_with("xn--") && puny.ends_with(".top"), "{puny}");
        assert_eq!(to_ascii("HuiNong。cn").as_deref(), Some("huinong.cn"));
        assert_eq!(registrable("www.icbc.com.cn"), "icbc.com.cn");
        assert!(is_tld("top") && is_tld("cyou") && is_tld("COM") && is_tld("中国"));
        assert!(!is_tld("14") && !is_tld("qwertyz"));
    }

    #[test]
    fn imitations_of_protected_domains() {
        let p = protect(&["huinong.cn", "icbc.com.cn", "chase.com"]);
        let hit = |h: &str| {
            let a = to_ascii(h).unwrap().into_owned();
            imitates(&a, &p).map(|p| p.domain.clone())
        };
        assert_eq!(hit("huinong.cn.贷款网.top").as_deref(), Some("huinong.cn"));
        assert_eq!(hit("icbc-cn.top").as_deref(), Some("icbc.com.cn"));
        assert_eq!(hit("ch\u{0430}se.com").as_deref(), Some("chase.com"));
        assert_eq!(hit("huinomg.cn").as_deref(), Some("huinong.cn"));
        assert_eq!(hit("huinong.com").as_deref(), Some("huinong.cn"));
        assert_eq!(hit("www.chase.com"), None);
        assert_eq!(hit("purchase.com"), None);
        assert_eq!(hit("jinyun.com"), None);
    }
}
