//! `smsgate policy lint`: load packs and the registry, print every error
//! or a summary of the rules per pack. `smsgate policy test DIR`: run a
//! directory of labelled cases through the policy ([`crate::casebook`]).

use std::process::ExitCode;

use super::{EXIT_CONFIG, PolicyCommand, fail};
use crate::config::Settings;
use crate::policy::Policy;

pub fn command(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Lint {
            config,
            senders,
            files,
        } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            match lint(&files, &settings.policy_source(&senders)) {
                Ok(summary) => {
                    print!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        PolicyCommand::Test { config, dir } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let (report, code) = crate::casebook::test_dir(&dir, &settings.policy_source(&[]));
            print!("{report}");
            ExitCode::from(code)
        }
    }
}

/// `smsgate policy lint`: compiles the given pack files (or, with none, the
/// configured policy) and returns a per-pack summary, or every error found.
pub fn lint(
    files: &[std::path::PathBuf],
    source: &crate::policy::PolicySource,
) -> Result<String, String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut packs = Vec::new();
    if files.is_empty() {
        match Policy::load(source) {
            Ok(p) => {
                let _ = writeln!(
                    out,
                    "policy {} ({} senders in the registry)",
                    p.version(),
                    p.registry().len()
                );
                packs.extend(p.packs().iter().cloned());
            }
            Err(e) => errors.push(e.to_string()),
        }
    } else {
        for path in source.senders.iter() {
            if let Err(e) = crate::policy::Registry::load(path) {
                errors.push(e.to_string());
            }
        }
        for path in files {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Err(e) => errors.push(format!("{name}: cannot read: {e}")),
                Ok(text) => match crate::policy::pack::compile(&name, &text) {
                    Ok(p) => packs.push(p),
                    Err(e) => errors.push(e.to_string()),
                },
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    for p in &packs {
        out.push_str(&summary(p));
    }
    Ok(out)
}

fn summary(p: &crate::policy::Pack) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let prefixes = if p.prefixes.is_empty() {
        "every other number".to_string()
    } else {
        p.prefixes.join(", ")
    };
    let enabled = p.rules.iter().filter(|r| r.enabled).count();
    let _ = writeln!(
        s,
        "\npack {} ({}) — {prefixes} — {enabled}/{} rules enabled",
        p.name,
        p.file,
        p.rules.len()
    );
    for r in &p.rules {
        let codes: Vec<&str> = r.codes().iter().map(|c| c.as_str()).collect();
        let cats: Vec<&str> = [
            crate::contract::event::Category::Marketing,
            crate::contract::event::Category::Notification,
            crate::contract::event::Category::Otp,
        ]
        .into_iter()
        .filter(|c| r.categories & crate::policy::rules::category_bit(*c) != 0)
        .map(|c| c.as_str())
        .collect();
        let _ = writeln!(
            s,
            "  {} {:28} {:18} {:45} [{}]",
            if r.enabled { "on " } else { "off" },
            r.id,
            r.kind_name,
            codes.join(", "),
            cats.join(",")
        );
    }
    s
}
