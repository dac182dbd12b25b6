//! ZDM's API versions as the vendor released them (0.2.0 .. 2.0.1, the changelogs of
//! `ZConverter/zconverter.github.io`): what each one decides (the path prefix, the login
//! path, the status vocabulary), and the documented paths `api_version: auto` asks, newest
//! first, to settle which one a server speaks.

use std::fmt;

/// One profile of the ZDM API. Releases that changed nothing the exporter reads share
/// one (1.3.0 and 1.3.1 are `1.3`, 2.0.0 and 2.0.1 are `2.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// 0.2.0: under `/api/v1`, login at `/api/v1/auth/issue`, the 0.2 status words.
    V0_2,
    /// 1.0.3: under `/api`, login at `/api/auth/issue`, the `job-status` words of today.
    V1_0,
    /// 1.1.0: adds replication (changelog 1.1.0).
    V1_1,
    /// 1.2.0: adds the backup and recovery histories (changelog 1.2.0).
    V1_2,
    /// 1.3.0, 1.3.1: add OS replication (changelog 1.3.0).
    V1_3,
    /// 2.0.0, 2.0.1: login moves to `/api/token/issue` (`/api/auth/issue` is gone).
    V2_0,
}

impl ApiVersion {
    /// Every profile, oldest first.
    pub const ALL: [ApiVersion; 6] = [
        ApiVersion::V0_2,
        ApiVersion::V1_0,
        ApiVersion::V1_1,
        ApiVersion::V1_2,
        ApiVersion::V1_3,
        ApiVersion::V2_0,
    ];

    /// Each vendor release and the profile it speaks.
    const RELEASES: [(&'static str, ApiVersion); 8] = [
        ("0.2.0", ApiVersion::V0_2),
        ("1.0.3", ApiVersion::V1_0),
        ("1.1.0", ApiVersion::V1_1),
        ("1.2.0", ApiVersion::V1_2),
        ("1.3.0", ApiVersion::V1_3),
        ("1.3.1", ApiVersion::V1_3),
        ("2.0.0", ApiVersion::V2_0),
        ("2.0.1", ApiVersion::V2_0),
    ];

    /// The `api_version` value and the `api_version` label: `"1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V0_2 => "0.2",
            ApiVersion::V1_0 => "1.0",
            ApiVersion::V1_1 => "1.1",
            ApiVersion::V1_2 => "1.2",
            ApiVersion::V1_3 => "1.3",
            ApiVersion::V2_0 => "2.0",
        }
    }

    /// `"1.3"`, or a release as the vendor numbers it (`"1.3.1"`); `None` for anything
    /// else.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let text = text.trim();
        ApiVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .or_else(|| {
                ApiVersion::RELEASES
                    .into_iter()
                    .find(|(release, _)| *release == text)
                    .map(|(_, v)| v)
            })
    }

    /// The path prefix of its API: `/api/v1` for 0.2, `/api` from 1.0.3 on.
    pub fn api_prefix(self) -> &'static str {
        match self {
            ApiVersion::V0_2 => "/api/v1",
            _ => "/api",
        }
    }

    /// Its token issuing path.
    pub fn login_path(self) -> &'static str {
        match self {
            ApiVersion::V0_2 => "/api/v1/auth/issue",
            ApiVersion::V2_0 => "/api/token/issue",
            _ => "/api/auth/issue",
        }
    }

    /// Whether it has replication monitoring (`/replications/monitoring/job/:identifier`):
    /// from 1.1.0 on, as its changelog says (the 1.1.0 pages lack it; 1.2.0 has them).
    pub fn has_replication(self) -> bool {
        self >= ApiVersion::V1_1
    }

    /// Whether it has the run histories (`/backups/histories`, `/recoveries/histories`):
    /// from 1.2.0 on, as its changelog says (the 1.1.0 pages already show them; the
    /// changelog and section 6.1 win).
    pub fn has_histories(self) -> bool {
        self >= ApiVersion::V1_2
    }

    /// Whether `Scheduled` is a word of its `job-status` list (1.0.3 on: a run that
    /// finished and waits for its next schedule). 0.2's list has `schedule` instead (never
    /// run yet, pending in the shared table).
    pub fn scheduled_is_a_finished_run(self) -> bool {
        self != ApiVersion::V0_2
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `api_version` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionChoice {
    /// Settled from what the server answers ([`PROBES`]).
    #[default]
    Auto,
    /// This one, never asked.
    Fixed(ApiVersion),
}

/// How one probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// `POST` of a login body: with login, the configured email and password; with a
    /// token, `{}` (the route answers 400/422 when it exists, 404 when it does not).
    Login,
    /// `GET` of a list with `page=1&limit=1`: 200 when it exists, 404 when it does not (no
    /// list page documents a 404).
    List,
}

/// A documented path that first appeared in `version`: when the server answers it with
/// anything but 404, the server speaks `version` or a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub version: ApiVersion,
    pub method: ProbeMethod,
    /// The path after the prefix (`/api`, or the configured `api_prefix`).
    pub path: &'static str,
}

/// What `auto` asks, newest first; the first path that exists settles the version. Each
/// is the path its version's changelog introduces: `/token/issue` (2.0.0 moved login
/// there), `/os-replications` (1.3.0), `/backups/histories` (1.2.0), `/replications`
/// (1.1.0), then `/backups`, which every release has (0.2 under `/api/v1`).
pub const PROBES: [Probe; 5] = [
    Probe {
        version: ApiVersion::V2_0,
        method: ProbeMethod::Login,
        path: "/token/issue",
    },
    Probe {
        version: ApiVersion::V1_3,
        method: ProbeMethod::List,
        path: "/os-replications",
    },
    Probe {
        version: ApiVersion::V1_2,
        method: ProbeMethod::List,
        path: "/backups/histories",
    },
    Probe {
        version: ApiVersion::V1_1,
        method: ProbeMethod::List,
        path: "/replications",
    },
    Probe {
        version: ApiVersion::V1_0,
        method: ProbeMethod::List,
        path: "/backups",
    },
];

/// The prefixes `auto` tries when `api_prefix` is not configured, newest first: `/api`
/// (1.0.3 on, every probe), then `/api/v1` (0.2: only `/backups`, which settles 0.2).
pub const AUTO_PREFIXES: [&str; 2] = ["/api", "/api/v1"];

/// The version a server under `prefix` speaks when only the oldest probe (`/backups`)
/// answered: 0.2 under `/api/v1`, 1.0 under any other prefix.
pub fn oldest_under(prefix: &str) -> ApiVersion {
    if prefix.trim_end_matches('/') == ApiVersion::V0_2.api_prefix() {
        ApiVersion::V0_2
    } else {
        ApiVersion::V1_0
    }
}

/// The login paths `auto` tries with login and no `login.path`, newest first: 2.0's,
/// 1.x's, 0.2's. The first that issues a token settles the family it belongs to.
pub fn login_candidates() -> [(ApiVersion, &'static str); 3] {
    [
        (ApiVersion::V2_0, ApiVersion::V2_0.login_path()),
        (ApiVersion::V1_3, ApiVersion::V1_3.login_path()),
        (ApiVersion::V0_2, ApiVersion::V0_2.login_path()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_release_and_profile_parses() {
        for v in ApiVersion::ALL {
            assert_eq!(ApiVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ApiVersion::parse("2.0.1"), Some(ApiVersion::V2_0));
        assert_eq!(ApiVersion::parse("1.3.1"), Some(ApiVersion::V1_3));
        assert_eq!(ApiVersion::parse(" 1.0.3 "), Some(ApiVersion::V1_0));
        assert_eq!(ApiVersion::parse("0.2.0"), Some(ApiVersion::V0_2));
        for bad in ["", "1", "1.4", "2.1", "1.0.0", "v1.3", "auto", "1.3.2"] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
    }

    /// The defaults as section 6.1 and the vendor pages give them.
    #[test]
    fn each_version_decides_prefix_login_and_vocabulary() {
        let table: Vec<(&str, &str, &str, bool)> = ApiVersion::ALL
            .into_iter()
            .map(|v| {
                (
                    v.as_str(),
                    v.api_prefix(),
                    v.login_path(),
                    v.scheduled_is_a_finished_run(),
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("0.2", "/api/v1", "/api/v1/auth/issue", false),
                ("1.0", "/api", "/api/auth/issue", true),
                ("1.1", "/api", "/api/auth/issue", true),
                ("1.2", "/api", "/api/auth/issue", true),
                ("1.3", "/api", "/api/auth/issue", true),
                ("2.0", "/api", "/api/token/issue", true),
            ]
        );
    }

    #[test]
    fn probes_run_newest_first_and_end_with_the_path_every_release_has() {
        let versions: Vec<ApiVersion> = PROBES.iter().map(|p| p.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(versions, sorted);
        assert_eq!(PROBES.last().map(|p| p.path), Some("/backups"));
        assert_eq!(oldest_under("/api/v1/"), ApiVersion::V0_2);
        assert_eq!(oldest_under("/api"), ApiVersion::V1_0);
        assert_eq!(oldest_under("/zdm/api"), ApiVersion::V1_0);
    }

    proptest! {
        /// Any text parses to a profile whose name reads back, or to nothing; never a panic.
        #[test]
        fn parse_never_panics_and_round_trips(text in "\\PC{0,12}") {
            if let Some(v) = ApiVersion::parse(&text) {
                prop_assert_eq!(ApiVersion::parse(v.as_str()), Some(v));
            }
        }
    }
}
