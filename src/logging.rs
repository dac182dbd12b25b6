//! Log lines the way Prometheus' own tools write them: logfmt
//! (`ts=2026-11-29T03:04:05.678Z level=info msg="..." key=value`) or one JSON object per line
//! with the keys `ts`, `level`, `msg`. No colour codes: a file or the journal gets plain text.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The two line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

/// A `tracing` event formatter for [`Format`].
#[derive(Debug, Clone, Copy)]
pub struct Lines(pub Format);

/// An event's fields in the order they were recorded, `message` first as `msg`.
#[derive(Default)]
struct Fields {
    msg: String,
    /// Numbers and booleans stay typed for JSON; everything else is text.
    pairs: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.msg = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.pairs.push((field.name(), value));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Lines
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
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ts = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let line = match self.0 {
            Format::Logfmt => logfmt_line(&ts, &level, &fields),
            Format::Json => json_line(&ts, &level, &fields),
        };
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

fn logfmt_line(ts: &str, level: &str, fields: &Fields) -> String {
    let mut out = format!("ts={ts} level={level} msg=");
    quoted(&mut out, &fields.msg);
    for (key, value) in &fields.pairs {
        out.push(' ');
        out.push_str(key);
        out.push('=');
        match value {
            serde_json::Value::String(text) => logfmt_value(&mut out, text),
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// A logfmt value: bare when it is a plain word, else quoted with `"` and `\` escaped and
/// control characters written as escapes (so a value can never end the line).
fn logfmt_value(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(value);
    } else {
        quoted(out, value);
    }
}

fn quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_line(ts: &str, level: &str, fields: &Fields) -> String {
    let mut map = serde_json::Map::new();
    map.insert("ts".into(), ts.into());
    map.insert("level".into(), level.into());
    map.insert("msg".into(), fields.msg.clone().into());
    for (key, value) in &fields.pairs {
        map.insert((*key).to_string(), value.clone());
    }
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(msg: &str, pairs: &[(&'static str, &str)]) -> Fields {
        Fields {
            msg: msg.to_string(),
            pairs: pairs.iter().map(|(k, v)| (*k, (*v).into())).collect(),
        }
    }

    #[test]
    fn logfmt_quotes_what_needs_quoting_and_escapes_line_breaks() {
        let f = fields(
            "target poll failing",
            &[
                ("upstream", "zdm-prod"),
                (
                    "reason",
                    "GET /x: HTTP 500: boom\nlevel=error msg=\"forged\"",
                ),
                ("empty", ""),
            ],
        );
        let line = logfmt_line("2026-11-29T03:04:05.678Z", "warn", &f);
        assert_eq!(
            line,
            "ts=2026-11-29T03:04:05.678Z level=warn msg=\"target poll failing\" upstream=zdm-prod reason=\"GET /x: HTTP 500: boom\\nlevel=error msg=\\\"forged\\\"\" empty=\"\""
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_has_ts_level_msg() {
        let f = fields("ready", &[("targets", "3")]);
        let v: serde_json::Value =
            serde_json::from_str(&json_line("2026-11-29T03:04:05.678Z", "info", &f)).unwrap();
        assert_eq!(v["ts"], "2026-11-29T03:04:05.678Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "ready");
        assert_eq!(v["targets"], "3");
    }
}
