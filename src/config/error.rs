//! The problems a config file can have, each at its YAML path. A leaf: every other config
//! file reports through these types, and this one imports nothing of the crate.

/// One problem in the config file, at a YAML path (`""` for the whole file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", located(path, message))]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn located(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_problem_per_line_with_its_path() {
        let errors = ConfigErrors(vec![
            ConfigError {
                path: String::new(),
                message: "invalid YAML".into(),
            },
            ConfigError {
                path: "upstreams[0].url".into(),
                message: "invalid url".into(),
            },
        ]);
        assert_eq!(
            errors.to_string(),
            "invalid YAML\nupstreams[0].url: invalid url"
        );
    }
}
