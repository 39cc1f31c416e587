//! The `log.format = "json"` line: one JSON object per event, written
//! straight into the line buffer.
//!
//! The gate writes one `info` line per quarantined event, on the decide
//! thread, so the line's cost is paid per rejected record. tracing's own
//! JSON format goes through serde and a UTF-8 check per fragment; this one
//! writes the same keys (`timestamp`, `level`, `message`, the event's
//! fields, `target`) with a plain escaper. The gate opens no spans, so
//! there is no span context to print.

use std::fmt::{self, Write};

use chrono::{SecondsFormat, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one flat JSON object.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        write!(
            writer,
            "{{\"timestamp\":\"{now}\",\"level\":\"{}\"",
            meta.level()
        )?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_str_value(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Appends `,"name":value` for each field, keeping the first write error.
struct Fields<'a, W: Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: Write> Fields<'_, W> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_char(',')?;
        write_str_value(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.out));
        }
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| write_str_value(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put(field, |w| write!(w, "{value}"));
        } else {
            // JSON has no NaN or infinity: write them as strings.
            self.put(field, |w| write_str_value(w, &value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// Writes `s` as a JSON string, quotes included.
fn write_str_value(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// A writer that escapes what passes through it for a JSON string body.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            // Every byte matched above is ASCII, so `i` is a char boundary.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_keys_of_tracings_json_format() {
        let got = lines(|| {
            tracing::info!(
                message_id = "m-1",
                to = "+86138****5678",
                partition = 3,
                offset = 42_u64,
                ok = true,
                ratio = 0.5,
                "quarantined"
            )
        });
        assert_eq!(got.len(), 1);
        let l = &got[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "quarantined");
        assert_eq!(l["message_id"], "m-1");
        assert_eq!(l["to"], "+86138****5678");
        assert_eq!(l["partition"], 3);
        assert_eq!(l["offset"], 42);
        assert_eq!(l["ok"], true);
        assert_eq!(l["ratio"], 0.5);
        assert_eq!(l["target"], module_path!());
        let ts = l["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }

    #[test]
    fn quotes_controls_and_non_ascii_survive_the_round_trip() {
        let nasty = "say \"hi\"\\ \n\t\r \u{1} 退订 ✓";
        let got = lines(|| tracing::warn!(detail = nasty, error = %nasty, "x {}", nasty));
        let l = &got[0];
        assert_eq!(l["detail"], nasty);
        assert_eq!(l["error"], nasty);
        assert_eq!(l["message"], format!("x {nasty}"));
    }

    #[test]
    fn non_finite_numbers_are_strings() {
        let got = lines(|| tracing::info!(rate = f64::NAN, top = f64::INFINITY, "n"));
        assert_eq!(got[0]["rate"], "NaN");
        assert_eq!(got[0]["top"], "inf");
    }
}
