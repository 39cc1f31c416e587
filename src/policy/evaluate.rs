//! Runs one pack's rules over one event and collects every failing rule.
//!
//! Consent is evaluated once and shared by the consent and personalization
//! rules; the body is normalized and scanned once ([`Facts`]); quiet-hour
//! rules are gathered so the release time satisfies all of them at once.

use std::cell::RefCell;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::contract::decision::{Reason, ReasonCode};
use crate::contract::event::OutboundSms;
use crate::policy::consent::{self, ConsentVerdict};
use crate::policy::content::fold::fold_into;
use crate::policy::content::hosts;
use crate::policy::content::lending::{self, NamedCost};
use crate::policy::content::links::{self, HostKind, Link};
use crate::policy::content::normalize::normalize_into;
use crate::policy::content::phones::{self, is_sender_number};
use crate::policy::content::pii::{self, Pii, PiiKind};
use crate::policy::content::signature::{self, Signature};
use crate::policy::content::{Facts, segments};
use crate::policy::jurisdiction::{self, NanpTable};
use crate::policy::lexicon::{Hits, Span};
use crate::policy::pack::{Lending, Pack, Rule};
use crate::policy::quiet_hours::{self, Hhmm, Week};
use crate::policy::rules::{Kind, QuietRule};
use crate::policy::sender::SenderProfile;
use crate::policy::view::StateView;

/// Scheme-less links are also looked for (to keep their digits out of the
/// phone rule) when a pack has no links rule.
const FALLBACK_TLDS: &[&str] = &[
    "com", "cn", "net", "org", "io", "co", "me", "ly", "gl", "gd", "cc", "top", "xyz",
];

/// Buffers reused across decisions on one thread, so a decision does not
/// allocate per rule.
#[derive(Default)]
struct Scratch {
    text: String,
    folded: String,
    own: Vec<Span>,
    links: Vec<Link>,
    pii: Vec<Pii>,
    skip: Vec<Span>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

pub fn reason(rule: &Rule, code: ReasonCode, detail: String) -> Reason {
    Reason {
        code,
        rule: rule.id.clone(),
        citation: rule.citation.clone(),
        detail,
    }
}

/// Which zones a quiet-hour rule looks at for this event, and the extra
/// window for an unknown area code; `None` when the rule does not apply.
fn quiet_scope<'a>(rule: &'a QuietRule, event: &'a OutboundSms) -> Option<(&'a [Tz], Week)> {
    if !rule.regions.is_empty() {
        let region = jurisdiction::region(event.recipient.region.as_deref(), &event.to)?;
        if !rule.regions.iter().any(|r| r == region) {
            return None;
        }
    }
    if let Some(tz) = event.recipient.timezone.as_ref() {
        return Some((std::slice::from_ref(tz), rule.week));
    }
    if rule.nanp && event.to.starts_with("+1") {
        if let Some(area) = NanpTable::shipped().lookup(&event.to) {
            return Some((&area.zones, rule.week));
        }
        let week = rule.unknown.map_or(rule.week, |u| rule.week.intersect(&u));
        return (!rule.zones.is_empty()).then_some((&rule.zones[..], week));
    }
    (!rule.zones.is_empty()).then_some((&rule.zones[..], rule.week))
}

/// Whether a rule of this kind reads the body (all but the recipient,
/// state and clock rules).
fn reads_body(kind: &Kind) -> bool {
    !matches!(
        kind,
        Kind::Consent
            | Kind::Personalization
            | Kind::Duplicate { .. }
            | Kind::QuietHours(_)
            | Kind::FrequencyCap { .. }
    )
}

/// The reason's detail for the first zone in which `now` is outside the
/// window; `None` when every zone allows it.
fn quiet_detail(zones: &[Tz], week: &Week, now: DateTime<Utc>) -> Option<String> {
    let (local, w) = zones.iter().find_map(|z| week.outside(*z, now))?;
    Some(format!(
        "local time {:02}:{:02} in {} is outside the allowed {}–{}",
        local.hour(),
        local.minute(),
        local.timezone().name(),
        Hhmm(w.start),
        Hhmm(w.end)
    ))
}

/// Evaluates every enabled rule of `pack` except duplicates (done by the
/// caller) and returns the release time when a quiet-hour rule fails.
pub fn run(
    pack: &Pack,
    event: &OutboundSms,
    sender: &SenderProfile,
    state: &dyn StateView,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
) -> Option<DateTime<Utc>> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => run_with(pack, event, sender, state, now, reasons, &mut scratch),
        Err(_) => run_with(
            pack,
            event,
            sender,
            state,
            now,
            reasons,
            &mut Scratch::default(),
        ),
    })
}

fn run_with(
    pack: &Pack,
    event: &OutboundSms,
    sender: &SenderProfile,
    state: &dyn StateView,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
    s: &mut Scratch,
) -> Option<DateTime<Utc>> {
    let active = || pack.rules.iter().filter(|r| r.applies_to(event.category));
    let wants = |f: fn(&Kind) -> bool| active().any(|r| f(&r.kind));

    // Facts about the body, computed once, and only when a rule reads it.
    s.text.clear();
    s.folded.clear();
    s.own.clear();
    let mut own_found = false;
    let hits = if wants(reads_body) {
        normalize_into(&event.body, &mut s.text);
        fold_into(&s.text, &mut s.folded);
        let (folded, own, found) = (&s.folded, &mut s.own, &mut own_found);
        pack.lexicon.scan(folded, move || {
            sender.own_names(folded, own);
            *found = true;
            own
        })
    } else {
        Hits::none()
    };
    // Lending patterns and the detailed name rules need the sender's own
    // names even when no keyword asked for them.
    let names_hit =
        active().any(|r| matches!(&r.kind, Kind::Impersonation { names, .. } if hits.has(*names)));
    if !own_found && !s.folded.is_empty() && (pack.lending.is_some() || names_hit) {
        sender.own_names(&s.folded, &mut s.own);
    }
    let text = s.text.as_str();
    let folded = s.folded.as_str();
    let own = s.own.as_slice();
    s.links.clear();
    s.pii.clear();
    if wants(|k| matches!(k, Kind::Links { .. } | Kind::Phones { .. })) {
        let tlds = active().find_map(|r| match &r.kind {
            Kind::Links { tlds, .. } => Some(tlds),
            _ => None,
        });
        match tlds {
            Some(tlds) => links::find(text, tlds, &mut s.links),
            None => links::find(text, FALLBACK_TLDS, &mut s.links),
        }
    }
    // Digits in the body: too few and no number or PII can be there.
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if digits >= 13 && wants(|k| matches!(k, Kind::Pii { .. } | Kind::Phones { .. })) {
        let (prc, cards) = active()
            .find_map(|r| match r.kind {
                Kind::Pii { prc_id, cards } => Some((prc_id, cards)),
                _ => None,
            })
            .unwrap_or((true, true));
        pii::find(text, prc, cards, &mut s.pii);
    }
    let claim = active().find_map(|r| match &r.kind {
        Kind::Claims { terms } => hits.get(*terms),
        _ => None,
    });
    let (lending, cost) = match pack.lending {
        Some(l) if !folded.is_empty() => credit_offer(&l, &hits, claim, sender.lender, folded, own),
        _ => (None, None),
    };
    let facts = Facts {
        text,
        folded,
        own,
        lending,
        hits,
        links: &s.links,
        pii: &s.pii,
    };

    let mut verdict: Option<ConsentVerdict> = None;
    let mut quiet_failed = false;
    for rule in active() {
        match &rule.kind {
            Kind::Duplicate { .. } => {}
            Kind::Consent => {
                let v = verdict.get_or_insert_with(|| consent::evaluate(event, state, now));
                if let Some((code, detail)) = &v.consent {
                    reasons.push(reason(rule, *code, detail.clone()));
                }
            }
            Kind::Personalization => {
                let v = verdict.get_or_insert_with(|| consent::evaluate(event, state, now));
                if v.personalization_refused {
                    reasons.push(reason(
                        rule,
                        ReasonCode::PersonalizationRefused,
                        "personalized targeting after a personalization opt-out".into(),
                    ));
                }
            }
            Kind::QuietHours(q) => {
                if let Some((zones, week)) = quiet_scope(q, event)
                    && let Some(detail) = quiet_detail(zones, &week, now)
                {
                    quiet_failed = true;
                    reasons.push(reason(rule, ReasonCode::QuietHours, detail));
                }
            }
            Kind::FrequencyCap { max, window } => {
                let count = state.approved_since(&event.to, event.subject_key(), now - *window);
                if count >= *max {
                    reasons.push(reason(
                        rule,
                        ReasonCode::FrequencyCap,
                        format!(
                            "{count} approved marketing messages on subject \"{}\" in the last {} h (cap {max})",
                            event.subject_key(),
                            window.num_hours()
                        ),
                    ));
                }
            }
            Kind::Signature => match signature::check(text, &sender.brand) {
                Signature::Brand => {}
                Signature::Missing => reasons.push(reason(
                    rule,
                    ReasonCode::SignatureMissing,
                    format!("no 【{}】 signature at the start or end", sender.brand),
                )),
                Signature::Other(sig) => reasons.push(reason(
                    rule,
                    ReasonCode::SignatureMismatch,
                    format!(
                        "signature 【{sig}】 is not the sender's brand 【{}】",
                        sender.brand
                    ),
                )),
            },
            Kind::OptOut { phrases, patterns } => {
                let found =
                    facts.hits.has(*phrases) || patterns.as_ref().is_some_and(|p| p.is_match(text));
                if !found {
                    reasons.push(reason(
                        rule,
                        ReasonCode::OptoutMissing,
                        format!("no opt-out instruction for pack {}", pack.name),
                    ));
                }
            }
            Kind::Links { shorteners, .. } => {
                link_reasons(rule, &facts, sender, shorteners, reasons)
            }
            Kind::Lookalike { brands } => {
                if let Some((host, real)) = facts.links.iter().find_map(|l| {
                    let raw = facts.raw(l.host);
                    let ascii = hosts::to_ascii(raw)?;
                    if links::classify(&ascii, &sender.domains, &[]) == HostKind::Sender {
                        return None;
                    }
                    let p = hosts::imitates(&ascii, &sender.protected)
                        .or_else(|| hosts::imitates(&ascii, brands))?;
                    Some((raw, p.domain.as_str()))
                }) {
                    reasons.push(reason(
                        rule,
                        ReasonCode::UrlLookalike,
                        format!("link host \"{host}\" imitates {real}"),
                    ));
                }
            }
            Kind::Phones {
                min,
                max,
                money,
                references,
            } => {
                if digits < *min {
                    continue;
                }
                s.skip.clear();
                s.skip.extend(facts.links.iter().map(|l| l.span));
                s.skip.extend(facts.pii.iter().map(|p| p.span));
                let mut bad: Option<(usize, String)> = None;
                let mut count = 0;
                phones::find(text, *min, *max, money, references, &s.skip, |n| {
                    if !is_sender_number(n.digits(), &sender.numbers) {
                        count += 1;
                        if bad.is_none() {
                            let d = n.digits();
                            bad = Some((d.len(), d[d.len().saturating_sub(4)..].to_string()));
                        }
                    }
                });
                if let Some((len, tail)) = bad {
                    reasons.push(reason(
                        rule,
                        ReasonCode::PhoneNotAllowed,
                        format!("{count} phone number(s) not the sender's, e.g. {len} digits ending {tail}"),
                    ));
                }
            }
            Kind::Pii { .. } => {
                if let Some(p) = facts.pii.first() {
                    let what = match p.kind {
                        PiiKind::PrcId => "a PRC resident ID number",
                        PiiKind::Card => "a Luhn-valid payment card number",
                    };
                    reasons.push(reason(
                        rule,
                        ReasonCode::Pii,
                        format!("{what} ({} digits)", p.digits),
                    ));
                }
            }
            Kind::LoanLicense => {
                if let Some(l) = facts.lending
                    && !sender.lender
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::LoanUnlicensed,
                        format!(
                            "lending content \"{}\" from a sender with lender = false",
                            facts.at(l)
                        ),
                    ));
                }
            }
            Kind::Apr { rates, annualized } => {
                let named = cost
                    .map(|c| (c.span, c.annual))
                    .or_else(|| facts.hits.get(*rates).map(|r| (r, None)));
                if facts.lending.is_some()
                    && let Some((span, annual)) = named
                    && !lending::has_annual_figure(folded, annualized)
                {
                    let implied = annual.map_or(String::new(), |a| {
                        format!(" (implied {} a year, simple)", lending::format_rate(a))
                    });
                    reasons.push(reason(
                        rule,
                        ReasonCode::AprMissing,
                        format!(
                            "states \"{}\" without an annualized rate{implied}",
                            facts.at(span)
                        ),
                    ));
                }
            }
            Kind::Claims { terms } => {
                if facts.lending.is_some()
                    && let Some(c) = facts.hits.get(*terms)
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::ProhibitedClaim,
                        format!("lending inducement \"{}\"", facts.at(c)),
                    ));
                }
            }
            Kind::AudienceMinor { min_age } => {
                if let (Some(l), Some(age)) = (facts.lending, event.recipient.age)
                    && age < *min_age
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::AudienceMinor,
                        format!(
                            "lending content \"{}\" to a recipient aged {age} (< {min_age})",
                            facts.at(l)
                        ),
                    ));
                }
            }
            Kind::AudienceStudent => {
                if let Some(l) = facts.lending
                    && event.recipient.student == Some(true)
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::AudienceStudent,
                        format!("lending content \"{}\" to a student", facts.at(l)),
                    ));
                }
            }
            Kind::Impersonation { names, matcher } => {
                if facts.hits.has(*names)
                    && let Some(n) = matcher.find(folded, own)
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::Impersonation,
                        format!(
                            "names \"{}\", which is not the sender's brand or alias",
                            facts.at(n)
                        ),
                    ));
                }
            }
            Kind::CategoryMismatch { terms, patterns } => {
                let found = facts.hits.get(*terms).map(|t| facts.at(t)).or_else(|| {
                    patterns
                        .iter()
                        .find_map(|p| p.find(folded))
                        .map(|m| m.as_str())
                });
                if let Some(t) = found {
                    reasons.push(reason(
                        rule,
                        ReasonCode::CategoryMismatch,
                        format!("{} body is promotional: \"{t}\"", event.category.as_str()),
                    ));
                }
            }
            Kind::Shaft { terms, words } => {
                let (found, harmless) = &**words;
                if facts.hits.has(*terms)
                    && let Some(t) = {
                        let ok = harmless.find(folded);
                        found
                            .find(folded)
                            .into_iter()
                            .map(|(_, span)| span)
                            .filter(|&(s, _)| !folded[..s].ends_with('/'))
                            .find(|&(s, e)| !ok.iter().any(|&(_, (a, b))| a <= s && e <= b))
                    }
                {
                    reasons.push(reason(
                        rule,
                        ReasonCode::Shaft,
                        format!("SHAFT content \"{}\"", facts.at(t)),
                    ));
                }
            }
            Kind::Segments { max } => {
                let seg = segments::count(&event.body);
                if seg.parts > *max {
                    reasons.push(reason(
                        rule,
                        ReasonCode::TooLong,
                        format!(
                            "{} segments ({} {} {}) > {max}",
                            seg.parts,
                            seg.units,
                            if seg.gsm7 { "GSM-7" } else { "UCS-2" },
                            if seg.gsm7 { "septets" } else { "UTF-16 units" }
                        ),
                    ));
                }
            }
        }
    }
    if !quiet_failed {
        return None;
    }
    // Release when every applicable quiet-hour rule allows, in every zone.
    let mut constraints = Vec::new();
    for rule in active() {
        if let Kind::QuietHours(q) = &rule.kind
            && let Some((zones, week)) = quiet_scope(q, event)
        {
            constraints.extend(zones.iter().map(|z| (*z, week)));
        }
    }
    Some(quiet_hours::release_at(&constraints, now).unwrap_or(now + chrono::Duration::hours(24)))
}

/// Whether the body is a credit offer, and the first credit term or
/// pattern; with the cost it names. The bill of an existing loan (账单, 应还,
/// "payment due") is no offer unless something offers credit again (申请,
/// 可借, a prohibited claim). A lender whose own name is the only credit
/// word (【信易贷】) offers credit when it makes a lending claim.
fn credit_offer(
    l: &Lending,
    hits: &Hits,
    claim: Option<Span>,
    lender: bool,
    folded: &str,
    own: &[Span],
) -> (Option<Span>, Option<NamedCost>) {
    let claimed = claim.is_some();
    let term = hits
        .get(l.terms)
        .or_else(|| lending::amount_offer(folded, own));
    // The cost patterns only when a cost can be there: most bodies skip them.
    let may_cost = term.is_some()
        || folded.contains(['%', '$', '息', '厘'])
        || folded.contains("万分之")
        || folded.contains("每天");
    let cost = if may_cost {
        lending::named_cost(folded)
            .filter(|c| !own.iter().any(|&(a, b)| c.span.0 < b && a < c.span.1))
    } else {
        None
    };
    let term = term
        .or_else(|| cost.filter(|c| c.annual.is_some()).map(|c| c.span))
        .or(claim.filter(|_| lender));
    let Some(term) = term else {
        return (None, None);
    };
    if hits.has(l.bills) && !hits.has(l.offers) && !claimed {
        return (None, None);
    }
    (Some(term), cost)
}

fn link_reasons(
    rule: &Rule,
    facts: &Facts<'_>,
    sender: &SenderProfile,
    shorteners: &[String],
    reasons: &mut Vec<Reason>,
) {
    let mut shortener: Option<&str> = None;
    let mut other: Option<&str> = None;
    for link in facts.links {
        let host = facts.raw(link.host);
        // Judged in the ASCII (punycode) form; bracketed IP literals as written.
        let kind = if host.starts_with('[') {
            HostKind::Shortener
        } else {
            match hosts::to_ascii(host) {
                Some(ascii) => links::classify(&ascii, &sender.domains, shorteners),
                None => HostKind::Other,
            }
        };
        match kind {
            HostKind::Sender => {}
            HostKind::Shortener => shortener = shortener.or(Some(host)),
            HostKind::Other => other = other.or(Some(host)),
        }
    }
    if let Some(host) = other {
        reasons.push(reason(
            rule,
            ReasonCode::UrlNotAllowed,
            format!("link host \"{host}\" is not one of the sender's domains"),
        ));
    }
    if let Some(host) = shortener {
        reasons.push(reason(
            rule,
            ReasonCode::UrlShortener,
            format!("link host \"{host}\" is a shortener, IP literal or punycode host"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Asia};

    use super::*;
    use crate::policy::quiet_hours::Window;

    #[test]
    fn the_quiet_detail_names_the_first_zone_outside_its_window() {
        let w = Week::every_day(Window::parse("08:00-21:00").unwrap());
        // 02:30 UTC: 10:30 in Shanghai (allowed), 21:30 in New York (not).
        let now = DateTime::parse_from_rfc3339("2026-11-25T02:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            quiet_detail(&[Asia::Shanghai, America::New_York], &w, now).as_deref(),
            Some("local time 21:30 in America/New_York is outside the allowed 08:00–21:00")
        );
        assert_eq!(quiet_detail(&[Asia::Shanghai], &w, now), None);
    }
}
