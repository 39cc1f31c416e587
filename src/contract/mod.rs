//! The wire records of the contract (CONTRACT.md): the outbound event
//! ([`event`], §2), the consent event ([`consent`], §3), the inbound reply
//! ([`reply`], §4) and the decision ([`decision`], §6). Parsing and JSON
//! forms only; what they mean is [`crate::policy`]'s.

pub mod consent;
pub mod decision;
pub mod event;
pub mod reply;

/// A JSON parse error as it may be logged: the kind, the field when serde
/// names one, and the position — never the offending value, which may be a
/// phone number or a message body (serde's own text quotes it).
pub fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let what = match e.classify() {
        Category::Io => "unreadable input".to_string(),
        Category::Syntax => "not valid JSON".to_string(),
        Category::Eof => "unexpected end of input".to_string(),
        Category::Data
            if text.starts_with("missing field") || text.starts_with("duplicate field") =>
        {
            // "missing field `to`": a field name from the record type.
            text.split(" at line")
                .next()
                .unwrap_or("invalid data")
                .to_string()
        }
        Category::Data => "a field has the wrong type or value".to_string(),
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_errors_name_the_field_but_never_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct R {
            to: String,
        }
        for (input, want) in [
            (&br#"{"to": 8613800138000}"#[..], "wrong type or value"),
            (br#"{"to": "+8613800138000""#, "end of input"),
            (br#"{}"#, "missing field `to`"),
        ] {
            let e = serde_json::from_slice::<R>(input).unwrap_err();
            let said = super::json_error(&e);
            assert!(said.contains(want), "{said}");
            assert!(!said.contains("13800138000"), "{said}");
        }
    }
}
