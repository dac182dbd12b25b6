//! The versions of Samsung's backup API the exporter speaks (`Scp-Api-Version: backup
//! <version>`), and the date until which Samsung guarantees each.
//!
//! Samsung's backup API reference (docs.e.samsungsdscloud.com, Storage > Backup, "Version"):
//! 1.2 CURRENT with no date; 1.1 SUPPORTED, "Not Before" 2026-05-31; 1.0 DEPRECATED,
//! 2026-03-31 ("Deprecated versions with Not Before dates that have arrived or expired are
//! no longer supported"). 1.0, past its date and deprecated, is refused.

use chrono::NaiveDate;

/// A version of the backup API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    /// `backup 1.1`: SUPPORTED, guaranteed until 2026-05-31.
    V1_1,
    /// `backup 1.2`: CURRENT, the default.
    #[default]
    V1_2,
}

impl ApiVersion {
    /// Every version, oldest first.
    pub const ALL: [ApiVersion; 2] = [ApiVersion::V1_1, ApiVersion::V1_2];

    /// The version as configured: `1.1`, `1.2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1_1 => "1.1",
            ApiVersion::V1_2 => "1.2",
        }
    }

    /// The configured text (`1.2`, or the header's own form `backup 1.2`) as a version.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let text = text.trim();
        let text = text.strip_prefix("backup ").unwrap_or(text).trim();
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// The `Scp-Api-Version` header value.
    pub fn header(self) -> &'static str {
        match self {
            ApiVersion::V1_1 => "backup 1.1",
            ApiVersion::V1_2 => "backup 1.2",
        }
    }

    /// The last day Samsung guarantees this version ("Not Before"), if it has one.
    pub fn guaranteed_until(self) -> Option<NaiveDate> {
        match self {
            ApiVersion::V1_1 => NaiveDate::from_ymd_opt(2026, 5, 31),
            ApiVersion::V1_2 => None,
        }
    }

    /// The warning to give on `today` when Samsung no longer guarantees this version.
    pub fn warning(self, today: NaiveDate) -> Option<String> {
        let until = self.guaranteed_until()?;
        (today > until).then(|| {
            format!(
                "api_version {} is past the date Samsung guaranteed it until ({until}); Samsung may stop answering it: set `api_version: \"{}\"` (CURRENT)",
                self.as_str(),
                ApiVersion::default().as_str(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn versions_parse_in_both_forms_and_send_their_header() {
        assert_eq!(ApiVersion::parse("1.1"), Some(ApiVersion::V1_1));
        assert_eq!(ApiVersion::parse(" backup 1.2 "), Some(ApiVersion::V1_2));
        for bad in ["1.0", "backup 1.0", "1.3", "", "backup"] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
        assert_eq!(ApiVersion::default().header(), "backup 1.2");
        assert_eq!(ApiVersion::V1_1.header(), "backup 1.1");
    }

    #[test]
    fn only_a_version_past_its_date_is_warned_about() {
        assert_eq!(ApiVersion::V1_1.warning(day(2026, 5, 31)), None);
        let warning = ApiVersion::V1_1.warning(day(2026, 6, 1)).unwrap();
        assert!(warning.contains("2026-05-31"), "{warning}");
        assert!(warning.contains("\"1.2\""), "{warning}");
        assert_eq!(ApiVersion::V1_2.warning(day(2099, 1, 1)), None);
    }
}
