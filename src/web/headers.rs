//! `http_server_config.headers`: the response headers a web config may add, checked as
//! exporter-toolkit checks them.

use std::collections::HashMap;

use hyper::header::{HeaderName, HeaderValue};

/// The response headers exporter-toolkit lets a web config set, and the values allowed where
/// they are an enumeration; any other header is refused, as there.
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The configured headers in name order, those with an empty value left out; the error names
/// the first header that is not allowed or not valid.
pub(super) fn extra_headers(
    configured: &HashMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut pairs: Vec<(&String, &String)> = configured.iter().collect();
    pairs.sort();
    let mut out = Vec::new();
    for (name, value) in pairs {
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name.as_str()) else {
            return Err(format!(
                "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
                EXTRA_HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config.headers.{name}: {value:?} is not one of {allowed:?}"
            ));
        }
        if value.is_empty() {
            continue;
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("http_server_config.headers.{name}: not a valid header value"))?;
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("http_server_config.headers: {name:?} is not a header name"))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        extra_headers(
            &pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn allowed_headers_come_out_in_name_order_without_empty_values() {
        let out = headers(&[
            ("X-Frame-Options", "deny"),
            ("Content-Security-Policy", "default-src 'self'"),
            ("Strict-Transport-Security", ""),
        ])
        .unwrap();
        let shown: Vec<(&str, &str)> = out
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                ("content-security-policy", "default-src 'self'"),
                ("x-frame-options", "deny")
            ]
        );
    }

    #[test]
    fn other_headers_values_and_bytes_are_refused() {
        let e = headers(&[("Server", "x")]).unwrap_err();
        assert!(e.contains("\"Server\" can not be configured"), "{e}");
        // Names are matched as exporter-toolkit writes them.
        assert!(headers(&[("x-frame-options", "deny")]).is_err());
        let e = headers(&[("X-Frame-Options", "allow")]).unwrap_err();
        assert!(
            e.contains("X-Frame-Options: \"allow\" is not one of"),
            "{e}"
        );
        let e = headers(&[("X-XSS-Protection", "1\nX: y")]).unwrap_err();
        assert!(e.contains("not a valid header value"), "{e}");
    }
}
