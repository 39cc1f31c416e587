//! The sender registry (CONTRACT §5): who may send, under which brand,
//! with which link domains and numbers, and whether it may offer loans.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::policy::PolicyError;

/// One registered sender account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// The signature: CN marketing carries 【brand】.
    pub brand: String,
    /// Other names the sender may use in the body (not a signature).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Link hosts allowed, subdomains included.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Its sending numbers; these may appear in the body.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Licensed to send lending offers.
    #[serde(default)]
    pub lender: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    senders: HashMap<String, Sender>,
}

/// All registered senders by account id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    senders: HashMap<String, Sender>,
}

impl Registry {
    /// Reads a registry file; the error names the file and the problem.
    pub fn load(path: &Path) -> Result<Registry, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Registry::parse(&text).map_err(|problem| PolicyError::Invalid {
            path: path.display().to_string(),
            rule: None,
            problem,
        })
    }

    pub fn parse(text: &str) -> Result<Registry, String> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for (id, s) in &file.senders {
            if s.brand.trim().is_empty() {
                return Err(format!("sender {id}: brand is empty"));
            }
        }
        Ok(Registry {
            senders: file.senders,
        })
    }

    /// Adds or replaces entries (`check --senders`).
    pub fn merge(&mut self, other: Registry) {
        self.senders.extend(other.senders);
    }

    pub fn get(&self, id: &str) -> Option<&Sender> {
        self.senders.get(id)
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Entries in id order (stable for hashing and listing).
    pub fn iter_sorted(&self) -> Vec<(&String, &Sender)> {
        let mut v: Vec<_> = self.senders.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The sender owning a sending number (inbound replies name only it).
    pub fn by_number(&self, number: &str) -> Option<&str> {
        self.senders
            .iter()
            .find(|(_, s)| s.numbers.iter().any(|n| n == number))
            .map(|(id, _)| id.as_str())
    }
}
