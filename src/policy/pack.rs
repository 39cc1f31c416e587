//! Policy packs: TOML files under `config/policies/`, one per jurisdiction,
//! parsed and compiled once at load into rules and one keyword automaton.
//!
//! ```toml
//! [pack]
//! name = "cn"
//! prefixes = ["+86"]          # recipient country codes this pack serves
//!
//! [lending]
//! terms = ["贷", "借款", …]    # what makes a body lending content (Chinese as words)
//! bills = ["账单", "应还", …]  # the bill of an existing loan: no offer by itself
//! offers = ["申请", "可借", …] # what makes a body with a bill term an offer again
//!
//! [[rule]]
//! id = "cn.quiet_hours"
//! kind = "quiet_hours"
//! code = "quiet_hours"        # `codes = [...]` for kinds emitting several
//! citation = "…"
//! enabled = true              # default true
//! categories = ["marketing"]  # default: every category
//! allowed = "08:00-21:00"     # kind parameters follow
//! ```
//!
//! Every load error names the file, the rule and the problem.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::contract::decision::ReasonCode;
use crate::contract::event::Category;
use crate::policy::PolicyError;
use crate::policy::lexicon::{Lexicon, LexiconBuilder, ListId};
use crate::policy::rules::{self, Kind};

/// The packs built into the binary.
pub const SHIPPED: &[(&str, &str)] = &[
    ("cn.toml", include_str!("../../config/policies/cn.toml")),
    (
        "default.toml",
        include_str!("../../config/policies/default.toml"),
    ),
    ("us.toml", include_str!("../../config/policies/us.toml")),
];

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Arc<str>,
    pub citation: Arc<str>,
    /// The kind as written (`quiet_hours`, …).
    pub kind_name: &'static str,
    pub kind: Kind,
    /// Bit set of categories the rule applies to (see `rules::category_bit`).
    pub categories: u8,
    /// A switched-off rule is kept for `policy lint` but never evaluated.
    pub enabled: bool,
    pub description: String,
}

impl Rule {
    pub fn applies_to(&self, c: Category) -> bool {
        self.enabled && self.categories & rules::category_bit(c) != 0
    }

    pub fn codes(&self) -> &'static [ReasonCode] {
        rules::codes_of(self.kind_name)
    }
}

/// One compiled pack.
#[derive(Debug, Clone)]
pub struct Pack {
    pub name: String,
    /// The file it came from, for messages.
    pub file: String,
    /// `+86`, `+1`, …: recipients whose number starts with one of these.
    pub prefixes: Vec<String>,
    pub description: String,
    pub rules: Vec<Rule>,
    pub lexicon: Lexicon,
    /// `[lending]`, when the pack has lending rules.
    pub lending: Option<Lending>,
}

/// A pack's `[lending]` lists.
#[derive(Debug, Clone, Copy)]
pub struct Lending {
    pub terms: ListId,
    pub bills: ListId,
    pub offers: ListId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LendingSection {
    terms: Vec<String>,
    #[serde(default)]
    bills: Vec<String>,
    #[serde(default)]
    offers: Vec<String>,
}

fn invalid(file: &str, rule: Option<&str>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        path: file.to_string(),
        rule: rule.map(str::to_string),
        problem: problem.into(),
    }
}

fn take_str(t: &mut toml::Table, key: &str) -> Result<Option<String>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn take_strs(t: &mut toml::Table, key: &str) -> Result<Option<Vec<String>>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                _ => Err(format!("{key} must be a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{key} must be a list of strings")),
    }
}

/// Parses and compiles one pack file (`file` is the name used in errors).
pub fn compile(file: &str, text: &str) -> Result<Pack, PolicyError> {
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| invalid(file, None, e.message()))?;
    let header: Header = doc
        .remove("pack")
        .ok_or_else(|| invalid(file, None, "missing [pack] table"))?
        .try_into()
        .map_err(|e: toml::de::Error| invalid(file, None, format!("[pack]: {}", e.message())))?;
    for p in &header.prefixes {
        if !(p.starts_with('+') && p.len() > 1 && p[1..].bytes().all(|b| b.is_ascii_digit())) {
            return Err(invalid(
                file,
                None,
                format!("[pack] prefix {p:?} is not + and digits"),
            ));
        }
    }
    let lending_terms = doc
        .remove("lending")
        .map(|v| v.try_into::<LendingSection>())
        .transpose()
        .map_err(|e| invalid(file, None, format!("[lending]: {}", e.message())))?;
    let raw_rules = match doc.remove("rule") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                file,
                None,
                "rule must be an array of tables ([[rule]])",
            ));
        }
    };
    if let Some(key) = doc.keys().next() {
        return Err(invalid(
            file,
            None,
            format!("unknown top-level key {key:?}"),
        ));
    }

    let mut lex = LexiconBuilder::default();
    if lending_terms.is_some() {
        crate::policy::content::lending::warm();
    }
    let lending = lending_terms
        .map(|l| -> Result<Lending, String> {
            Ok(Lending {
                terms: lex.add_words(&l.terms)?,
                bills: lex.add(&l.bills)?,
                offers: lex.add(&l.offers)?,
            })
        })
        .transpose()
        .map_err(|e| invalid(file, None, format!("[lending]: {e}")))?;
    let mut seen = HashSet::new();
    let mut rules = Vec::new();
    for (n, raw) in raw_rules.into_iter().enumerate() {
        let toml::Value::Table(mut t) = raw else {
            return Err(invalid(
                file,
                None,
                format!("rule #{} is not a table", n + 1),
            ));
        };
        let id = take_str(&mut t, "id")
            .map_err(|e| invalid(file, None, format!("rule #{}: {e}", n + 1)))?
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| invalid(file, None, format!("rule #{} has no id", n + 1)))?;
        let rule = compile_rule(&id, t, &mut lex, lending.is_some())
            .map_err(|p| invalid(file, Some(&id), p))?;
        if !seen.insert(id.clone()) {
            return Err(invalid(file, Some(&id), "duplicate rule id"));
        }
        rules.push(rule);
    }
    let lexicon = lex.build().map_err(|e| invalid(file, None, e))?;
    Ok(Pack {
        name: header.name,
        file: file.to_string(),
        prefixes: header.prefixes,
        description: header.description,
        rules,
        lexicon,
        lending,
    })
}

fn compile_rule(
    id: &str,
    mut t: toml::Table,
    lex: &mut LexiconBuilder,
    has_lending: bool,
) -> Result<Rule, String> {
    let kind_name = take_str(&mut t, "kind")?.ok_or("missing kind")?;
    let kind_name: &'static str = rules::KINDS
        .iter()
        .find(|k| **k == kind_name)
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown rule kind {kind_name:?} (known: {})",
                rules::KINDS.join(", ")
            )
        })?;
    let citation = take_str(&mut t, "citation")?
        .filter(|c| !c.trim().is_empty())
        .ok_or("missing citation")?;
    let description = take_str(&mut t, "description")?.unwrap_or_default();
    let enabled = match t.remove("enabled") {
        None => true,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => return Err("enabled must be true or false".into()),
    };
    let categories = match take_strs(&mut t, "categories")? {
        None => 0b111,
        Some(list) => {
            let mut bits = 0;
            for c in &list {
                let cat = Category::parse(c).ok_or_else(|| format!("unknown category {c:?}"))?;
                bits |= rules::category_bit(cat);
            }
            bits
        }
    };
    let expected = rules::codes_of(kind_name);
    let mut written: Vec<String> = take_strs(&mut t, "codes")?.unwrap_or_default();
    if let Some(code) = take_str(&mut t, "code")? {
        written.push(code);
    }
    for code in &written {
        let parsed =
            ReasonCode::parse(code).ok_or_else(|| format!("unknown reason code {code:?}"))?;
        if !expected.contains(&parsed) {
            return Err(format!("kind {kind_name} does not emit {code}"));
        }
    }
    if written.len() != expected.len() {
        let names: Vec<&str> = expected.iter().map(|c| c.as_str()).collect();
        return Err(format!(
            "kind {kind_name} emits {}; write them as {}",
            names.join(", "),
            if names.len() == 1 {
                "code = \"…\""
            } else {
                "codes = [\"…\", …]"
            }
        ));
    }
    if rules::needs_lending(kind_name) && !has_lending {
        return Err(format!("kind {kind_name} needs the pack's [lending] terms"));
    }
    let kind = rules::compile(kind_name, t, lex)?;
    Ok(Rule {
        id: id.into(),
        citation: citation.into(),
        kind_name,
        kind,
        categories,
        enabled,
        description,
    })
}
