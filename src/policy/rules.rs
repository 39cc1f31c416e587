//! The rule kinds a pack may use, their parameters as written in TOML, and
//! their compiled forms.
//!
//! Each kind emits a fixed set of reason codes; a pack names them in `code`
//! (or `codes` for kinds that emit several) so the file reads like the
//! contract, and loading checks that they agree with the kind.

use std::collections::BTreeMap;

use chrono::Duration;
use chrono_tz::Tz;
use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::contract::decision::ReasonCode;
use crate::contract::event::Category;
use crate::policy::content::hosts::Protected;
use crate::policy::content::impersonation::Matcher;
use crate::policy::content::lending;
use crate::policy::content::phones::MoneyMarkers;
use crate::policy::content::phrases::Phrases;
use crate::policy::lexicon::{LexiconBuilder, ListId};
use crate::policy::quiet_hours::{DAY_NAMES, Week, Window};

/// Every rule kind a pack may name.
pub const KINDS: &[&str] = &[
    "consent",
    "personalization",
    "duplicate",
    "quiet_hours",
    "frequency_cap",
    "signature",
    "optout",
    "links",
    "url_lookalike",
    "phones",
    "pii",
    "loan_license",
    "apr_disclosure",
    "lending_claims",
    "audience_minor",
    "audience_student",
    "impersonation",
    "category_mismatch",
    "shaft",
    "segments",
];

/// The reason codes a kind emits.
pub fn codes_of(kind: &str) -> &'static [ReasonCode] {
    use ReasonCode::*;
    match kind {
        "consent" => &[ConsentMissing, ConsentRevoked, ConsentExpired],
        "personalization" => &[PersonalizationRefused],
        "duplicate" => &[Duplicate],
        "quiet_hours" => &[QuietHours],
        "frequency_cap" => &[FrequencyCap],
        "signature" => &[SignatureMissing, SignatureMismatch],
        "optout" => &[OptoutMissing],
        "links" => &[UrlNotAllowed, UrlShortener],
        "url_lookalike" => &[UrlLookalike],
        "phones" => &[PhoneNotAllowed],
        "pii" => &[Pii],
        "loan_license" => &[LoanUnlicensed],
        "apr_disclosure" => &[AprMissing],
        "lending_claims" => &[ProhibitedClaim],
        "audience_minor" => &[AudienceMinor],
        "audience_student" => &[AudienceStudent],
        "impersonation" => &[Impersonation],
        "category_mismatch" => &[CategoryMismatch],
        "shaft" => &[Shaft],
        "segments" => &[TooLong],
        _ => &[],
    }
}

/// Whether a kind needs the pack's `[lending] terms`.
pub fn needs_lending(kind: &str) -> bool {
    matches!(
        kind,
        "loan_license"
            | "apr_disclosure"
            | "lending_claims"
            | "audience_minor"
            | "audience_student"
    )
}

/// A quiet-hours rule compiled.
#[derive(Debug, Clone)]
pub struct QuietRule {
    /// Allowed local window per weekday.
    pub week: Week,
    /// Zones used when neither `recipient.timezone` nor the area code tells.
    pub zones: Vec<Tz>,
    /// Resolve `+1` numbers through the NANP area-code table.
    pub nanp: bool,
    /// Extra window applied when the area code is unknown.
    pub unknown: Option<Week>,
    /// Regions (ISO 3166-2) the rule is limited to; empty = everywhere.
    pub regions: Vec<String>,
}

/// A compiled rule kind with its parameters.
#[derive(Debug, Clone)]
pub enum Kind {
    Consent,
    Personalization,
    Duplicate {
        window: Duration,
    },
    QuietHours(Box<QuietRule>),
    FrequencyCap {
        max: u32,
        window: Duration,
    },
    Signature,
    OptOut {
        phrases: ListId,
        patterns: Option<RegexSet>,
    },
    Links {
        shorteners: Vec<String>,
        /// Top-level domains besides the Public Suffix List's.
        tlds: Vec<String>,
    },
    /// Hosts imitating the sender's domains or these brands' domains.
    Lookalike {
        brands: Vec<Protected>,
    },
    Phones {
        min: usize,
        max: usize,
        money: MoneyMarkers,
        /// Words introducing a reference, not a number (订单号, tracking).
        references: Vec<String>,
    },
    Pii {
        prc_id: bool,
        cards: bool,
    },
    LoanLicense,
    Apr {
        rates: ListId,
        /// An annualized term next to a percentage figure.
        annualized: Vec<Regex>,
    },
    Claims {
        terms: ListId,
    },
    AudienceMinor {
        min_age: u32,
    },
    AudienceStudent,
    Impersonation {
        /// Every name, for the one-pass scan.
        names: ListId,
        /// Every occurrence in its context.
        matcher: Box<Matcher>,
    },
    CategoryMismatch {
        terms: ListId,
        /// Promotional patterns (N折).
        patterns: Vec<Regex>,
    },
    Shaft {
        terms: ListId,
        /// Terms as words, and the harmless compounds (glue gun, root beer).
        words: Box<(Phrases, Phrases)>,
    },
    Segments {
        max: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    window_hours: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietParams {
    allowed: String,
    #[serde(default)]
    days: BTreeMap<String, String>,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    nanp_area_codes: bool,
    unknown_area_code_allowed: Option<String>,
    #[serde(default)]
    regions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapParams {
    max: u32,
    window_hours: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutParams {
    #[serde(default)]
    phrases: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkParams {
    shorteners: Vec<String>,
    #[serde(default)]
    tlds: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookalikeParams {
    #[serde(default)]
    brand_domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneParams {
    min_digits: usize,
    max_digits: usize,
    #[serde(default)]
    money_before: Vec<String>,
    #[serde(default)]
    money_after: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PiiParams {
    prc_id: bool,
    cards: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AprParams {
    rate_terms: Vec<String>,
    annualized_terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermParams {
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    names: Vec<String>,
    #[serde(default)]
    common_names: Vec<String>,
    #[serde(default)]
    cues: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoParams {
    terms: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShaftParams {
    terms: Vec<String>,
    #[serde(default)]
    exceptions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MinorParams {
    min_age: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentParams {
    max_segments: usize,
}

fn params<T: for<'de> Deserialize<'de>>(table: toml::Table) -> Result<T, String> {
    table.try_into::<T>().map_err(|e| e.message().to_string())
}

fn hours(h: u32) -> Result<Duration, String> {
    if h == 0 || h > 24 * 366 {
        return Err(format!("window_hours must be 1..={}", 24 * 366));
    }
    Ok(Duration::hours(i64::from(h)))
}

fn lowercase(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

fn compile_quiet(p: QuietParams) -> Result<QuietRule, String> {
    let mut week = Week::every_day(Window::parse(&p.allowed)?);
    for (day, window) in &p.days {
        let Some(i) = DAY_NAMES.iter().position(|d| d == day) else {
            return Err(format!("days: unknown day {day:?} (use mon, tue, …, sun)"));
        };
        week.0[i] = Window::parse(window)?;
    }
    let zones = p
        .zones
        .iter()
        .map(|z| {
            z.parse::<Tz>()
                .map_err(|_| format!("zones: unknown time zone {z:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unknown = p
        .unknown_area_code_allowed
        .as_deref()
        .map(|w| Window::parse(w).map(Week::every_day))
        .transpose()?;
    if zones.is_empty() && !p.nanp_area_codes {
        return Err(
            "zones is empty and nanp_area_codes is false: the rule could never apply".into(),
        );
    }
    Ok(QuietRule {
        week,
        zones,
        nanp: p.nanp_area_codes,
        unknown,
        regions: p.regions,
    })
}

/// Compiles one rule's parameters; keyword lists go into the pack lexicon.
pub fn compile(kind: &str, table: toml::Table, lex: &mut LexiconBuilder) -> Result<Kind, String> {
    Ok(match kind {
        "consent" => params::<NoParams>(table).map(|_| Kind::Consent)?,
        "personalization" => params::<NoParams>(table).map(|_| Kind::Personalization)?,
        "duplicate" => Kind::Duplicate {
            window: hours(params::<WindowParams>(table)?.window_hours)?,
        },
        "quiet_hours" => Kind::QuietHours(Box::new(compile_quiet(params(table)?)?)),
        "frequency_cap" => {
            let p: CapParams = params(table)?;
            if p.max == 0 {
                return Err("max must be at least 1".into());
            }
            Kind::FrequencyCap {
                max: p.max,
                window: hours(p.window_hours)?,
            }
        }
        "signature" => params::<NoParams>(table).map(|_| Kind::Signature)?,
        "optout" => {
            let p: OptOutParams = params(table)?;
            if p.phrases.is_empty() && p.patterns.is_empty() {
                return Err("needs phrases or patterns".into());
            }
            let patterns = if p.patterns.is_empty() {
                None
            } else {
                Some(RegexSet::new(&p.patterns).map_err(|e| format!("bad regex: {e}"))?)
            };
            Kind::OptOut {
                phrases: lex.add(&p.phrases)?,
                patterns,
            }
        }
        "links" => {
            let p: LinkParams = params(table)?;
            Kind::Links {
                shorteners: lowercase(p.shorteners),
                tlds: lowercase(p.tlds),
            }
        }
        "url_lookalike" => {
            let p: LookalikeParams = params(table)?;
            let mut brands = Vec::new();
            for d in &p.brand_domains {
                brands.push(
                    Protected::new(d)
                        .ok_or_else(|| format!("brand_domains: {d:?} is not a usable domain"))?,
                );
            }
            Kind::Lookalike { brands }
        }
        "phones" => {
            let p: PhoneParams = params(table)?;
            if p.min_digits < 3 || p.min_digits > p.max_digits || p.max_digits > 15 {
                return Err("need 3 <= min_digits <= max_digits <= 15".into());
            }
            Kind::Phones {
                min: p.min_digits,
                max: p.max_digits,
                money: MoneyMarkers {
                    before: p.money_before,
                    after: p.money_after,
                },
                references: p
                    .references
                    .iter()
                    .map(|r| crate::policy::content::normalize::normalize(r).to_lowercase())
                    .collect(),
            }
        }
        "pii" => {
            let p: PiiParams = params(table)?;
            Kind::Pii {
                prc_id: p.prc_id,
                cards: p.cards,
            }
        }
        "loan_license" => params::<NoParams>(table).map(|_| Kind::LoanLicense)?,
        "apr_disclosure" => {
            let p: AprParams = params(table)?;
            Kind::Apr {
                rates: lex.add(&p.rate_terms)?,
                annualized: lending::annual_figure(&p.annualized_terms)?,
            }
        }
        "lending_claims" => Kind::Claims {
            terms: lex.add(&params::<TermParams>(table)?.terms)?,
        },
        "audience_minor" => Kind::AudienceMinor {
            min_age: params::<MinorParams>(table)?.min_age,
        },
        "audience_student" => params::<NoParams>(table).map(|_| Kind::AudienceStudent)?,
        "impersonation" => {
            let p: NameParams = params(table)?;
            let all: Vec<String> = p.names.iter().chain(&p.common_names).cloned().collect();
            Kind::Impersonation {
                names: lex.add(&all)?,
                matcher: Box::new(Matcher::new(
                    &p.names,
                    &p.common_names,
                    &p.cues,
                    &p.warnings,
                )?),
            }
        }
        "category_mismatch" => {
            let p: PromoParams = params(table)?;
            let patterns = p
                .patterns
                .iter()
                .map(|r| Regex::new(r).map_err(|e| format!("bad regex: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Kind::CategoryMismatch {
                terms: lex.add(&p.terms)?,
                patterns,
            }
        }
        "shaft" => {
            let p: ShaftParams = params(table)?;
            Kind::Shaft {
                terms: lex.add(&p.terms)?,
                words: Box::new((Phrases::new(&p.terms)?, Phrases::new(&p.exceptions)?)),
            }
        }
        "segments" => {
            let p: SegmentParams = params(table)?;
            if p.max_segments == 0 {
                return Err("max_segments must be at least 1".into());
            }
            Kind::Segments {
                max: p.max_segments,
            }
        }
        other => {
            return Err(format!(
                "unknown rule kind {other:?} (known: {})",
                KINDS.join(", ")
            ));
        }
    })
}

/// Category bit for rule filters.
pub fn category_bit(c: Category) -> u8 {
    match c {
        Category::Marketing => 1,
        Category::Notification => 2,
        Category::Otp => 4,
    }
}
