//! Each `tests/data/invalid-*.yaml` pins one config error: its first line is
//! `# expect: <text>`, and validating the file must report exactly one problem
//! containing that text (blackbox_exporter's `testdata/invalid-*.yml` habit).

use std::path::{Path, PathBuf};

use backup_exporter::config;
use backup_exporter::systems::azure::AzureConfig;
use backup_exporter::systems::scp::ScpConfig;
use backup_exporter::systems::zdm::{ZdmAuth, ZdmConfig};

const TOKEN: &str = "tok-integration-SECRET";
const EMAIL: &str = "ops@SECRET.example";
const PASSWORD: &str = "pw-integration-SECRET";
const SCP_SECRET: &str = "scp-integration-SECRET";
const AZURE_SECRET: &str = "azure-integration-SECRET";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every `invalid-*.yaml` of tests/data, sorted: one error kind per file, found by name
/// (a new file is tested without being listed anywhere).
fn invalid_files() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid-") && n.ends_with(".yaml"))
        .collect();
    found.sort();
    found
}

fn fake_env(name: &str) -> Option<String> {
    match name {
        "ZDM_TOKEN" => Some(format!("{TOKEN}\n")),
        "ZDM_EMAIL" => Some(EMAIL.to_owned()),
        "ZDM_PASSWORD" => Some(PASSWORD.to_owned()),
        "ZDM_EMPTY" => Some(String::new()),
        "SCP_ACCESS_KEY" => Some("scp-access".to_owned()),
        "SCP_SECRET_KEY" => Some(SCP_SECRET.to_owned()),
        "AZURE_CLIENT_SECRET" => Some(AZURE_SECRET.to_owned()),
        _ => None,
    }
}

fn expectation(text: &str, file: &str) -> String {
    text.lines()
        .next()
        .and_then(|line| line.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{file}: first line must be `# expect: <message>`"))
        .to_owned()
}

#[test]
fn every_invalid_file_reports_its_error() {
    let dir = data_dir();
    for file in &invalid_files() {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = expectation(&text, file);

        // With a known environment the file has exactly its one problem. The workload
        // identity token file is set except where the file is about it missing.
        let token_file = dir.join("valid-zdm.yaml").display().to_string();
        let env = |name: &str| match name {
            "AZURE_FEDERATED_TOKEN_FILE" if !file.contains("no-token-file") => {
                Some(token_file.clone())
            }
            _ => fake_env(name),
        };
        let errors = match config::parse(&text, &dir, &env) {
            Ok(c) => panic!("{file}: expected an error, got {c:?}"),
            Err(e) => e,
        };
        let shown = errors.to_string();
        assert_eq!(
            errors.0.len(),
            1,
            "{file}: expected one error, got:\n{shown}"
        );
        assert!(
            shown.contains(&want),
            "{file}: expected {want:?} in:\n{shown}"
        );
        for secret in [TOKEN, EMAIL, PASSWORD, SCP_SECRET, AZURE_SECRET] {
            assert!(!shown.contains(secret), "{file}: secret leaked:\n{shown}");
        }

        // Through the file loader with the real environment: env-based cases depend
        // on it, the others report their error whatever else the environment lacks.
        if !want.contains("environment variable") {
            let errors = config::load(&path).expect_err(file).to_string();
            assert!(
                errors.contains(&want),
                "{file}: expected {want:?} from load in:\n{errors}"
            );
        }
    }
}

/// The pattern finds every file meant for it: none named `invalid-*` with another
/// extension is skipped, and the files are there to find (at least as many as error kinds
/// were pinned when the list by hand was replaced by the pattern).
#[test]
fn every_invalid_file_is_found_by_its_pattern() {
    let named: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid-"))
        .collect();
    let found = invalid_files();
    assert_eq!(
        found.len(),
        named.len(),
        "files named invalid-* but not *.yaml are not tested: {named:?}"
    );
    assert!(
        found.len() >= 58,
        "only {} invalid-*.yaml files",
        found.len()
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let text = std::fs::read_to_string(data_dir().join("invalid-yaml-syntax.yaml")).unwrap();
    let errors = config::parse(&text, &data_dir(), &fake_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("line ") && errors.contains("column "),
        "{errors}"
    );
}

#[test]
fn valid_zdm_config_loads() {
    let text = std::fs::read_to_string(data_dir().join("valid-zdm.yaml")).unwrap();
    let config = config::parse(&text, &data_dir(), &fake_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, Some("0.0.0.0:10095".parse().unwrap()));
    let summaries: Vec<String> = config.upstreams.iter().map(|u| u.summary()).collect();
    assert_eq!(
        summaries,
        [
            "zdm-prod: zdm https://zdm.example.com/api/v1 (API auto), 2 servers, 2 backup jobs, 2 recovery jobs, every 30s, auth token",
            "zdm-legacy: zdm http://zdm-legacy.example.com:8080/api (API auto), 0 servers, 1 backup job, 0 recovery jobs, every 1m, auth login /api/auth/issue",
        ]
    );
    let prod = &config.upstreams[0];
    assert_eq!(prod.settings.timezone, chrono_tz::Asia::Seoul);
    assert_eq!(
        prod.settings.stale_after,
        std::time::Duration::from_secs(90)
    );
    let Some(zdm) = prod.kind.as_any().downcast_ref::<ZdmConfig>() else {
        panic!("zdm-prod is a zdm upstream");
    };
    assert!(matches!(&zdm.auth, ZdmAuth::Token(t) if t.expose() == TOKEN));
    let legacy = &config.upstreams[1];
    assert_eq!(
        legacy.settings.stale_after,
        std::time::Duration::from_secs(600)
    );
    assert_eq!(legacy.settings.max_body_bytes, 1_048_576);
    assert_eq!(legacy.settings.max_jobs_per_target, 5000);
    assert_eq!(prod.settings.max_jobs_per_target, 10_000);

    let debug = format!("{config:?}");
    for secret in [TOKEN, EMAIL, PASSWORD] {
        assert!(!debug.contains(secret), "secret leaked: {debug}");
    }
}

#[test]
fn missing_config_file_is_one_file_level_error() {
    let errors = config::load(&data_dir().join("no-such-config.yaml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].path, "");
    assert!(
        errors.to_string().starts_with("cannot read config file "),
        "{errors}"
    );
}

#[test]
fn valid_config_of_all_systems_loads() {
    let text = std::fs::read_to_string(data_dir().join("valid-all-systems.yaml")).unwrap();
    let config = config::parse(&text, &data_dir(), &fake_env).unwrap_or_else(|e| panic!("{e}"));
    let summaries: Vec<String> = config.upstreams.iter().map(|u| u.summary()).collect();
    assert_eq!(
        summaries,
        [
            "zdm-prod: zdm https://zdm.example.com (API auto), 1 server, 0 backup jobs, 0 recovery jobs, every 30s, auth token",
            "scp-kr: scp https://scp.example.com, backup 1.2, 2 backups for restores, 0 backups for backup runs, every 30s, auth signature v2 with account id",
            "azure-prod: azure https://management.azure.com subscription 11111111-2222-3333-4444-555555555555, 2 vaults, lookback 1day, every 30s, auth client secret",
            "azure-mi: azure https://management.azure.com subscription 11111111-2222-3333-4444-555555555555, 1 vault, lookback 9days, every 30s, auth managed identity",
        ]
    );
    let Some(scp) = config.upstreams[1]
        .kind
        .as_any()
        .downcast_ref::<ScpConfig>()
    else {
        panic!("scp-kr is an scp upstream");
    };
    assert_eq!(scp.backups[1].name.as_deref(), Some("erp-db"));
    assert_eq!(scp.account_id.as_deref(), Some("6b1c0f9e2d"));
    let Some(mi) = config.upstreams[3]
        .kind
        .as_any()
        .downcast_ref::<AzureConfig>()
    else {
        panic!("azure-mi is an azure upstream");
    };
    assert_eq!(
        mi.authority_url, "http://169.254.169.254",
        "IMDS is the default authority with a managed identity"
    );
    let debug = format!("{config:?}");
    for secret in [SCP_SECRET, AZURE_SECRET] {
        assert!(!debug.contains(secret), "secret leaked: {debug}");
    }
}
