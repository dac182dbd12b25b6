//! The exporter configuration that monitors `--demo`'s targets, and how a system writes its
//! upstreams and their targets into it. A leaf: each system writes its own part
//! (`Setup::write_demo_config`), `demo.rs` puts them together.

use std::fmt::Write as _;

/// An exporter configuration for a demo simulator: the YAML text, and the environment
/// variables its `*_env` keys name (the secrets stay out of the text, as in a real one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The configuration file's text.
    pub yaml: String,
    /// `(variable, value)` for every `*_env` key of `yaml`.
    pub env: Vec<(String, String)>,
}

impl ExporterConfig {
    /// Appends `text` and a line break to the YAML (an upstream's keys, indented under
    /// `upstreams:`).
    pub(crate) fn line(&mut self, text: &str) {
        self.yaml.push_str(text);
        self.yaml.push('\n');
    }

    /// Appends the upstream key `key` listing `names`; nothing when there are none.
    pub(crate) fn list(&mut self, key: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let _ = writeln!(self.yaml, "    {key}:");
        for name in names {
            let _ = writeln!(self.yaml, "      - {}", quoted(name));
        }
    }

    /// Gives the variable `name` (named by an `*_env` key) the value `value`.
    pub(crate) fn env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_string(), value.to_string()));
    }
}

/// `name` as a YAML scalar: a JSON string is one, whatever the name holds.
pub(crate) fn quoted(name: &str) -> String {
    serde_json::Value::String(name.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_quote_every_name_and_are_left_out_when_empty() {
        let mut config = ExporterConfig {
            yaml: String::new(),
            env: Vec::new(),
        };
        config.list("servers", &[]);
        config.list("servers", &["web-01".to_string(), "a \"b\": c".to_string()]);
        assert_eq!(
            config.yaml,
            "    servers:\n      - \"web-01\"\n      - \"a \\\"b\\\": c\"\n"
        );
    }
}
