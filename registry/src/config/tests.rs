use std::net::IpAddr;

use super::*;

/// Load with `file` as the config file's text and `env` as the environment.
fn load_with(file: Option<&str>, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pier.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    RegistryConfig::load(&Sources {
        file: file.map(|_| path),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        flags: Vec::new(),
    })
}

fn file(text: &str) -> RegistryConfig {
    load_with(Some(text), &[]).unwrap().config
}

fn file_error(text: &str) -> String {
    let e = load_with(Some(text), &[]).unwrap_err().to_string();
    assert!(e.starts_with("config file ") && e.contains("pier.toml: "), "{e}");
    e
}

/// Every leaf of `tree` as a dotted path.
fn leaves(tree: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in tree {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(t) => leaves(t, &path, out),
            _ => out.push(path),
        }
    }
}

/// A leaf's value as an environment variable or flag would give it.
fn as_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[test]
fn defaults_round_trip_through_the_file() {
    let text = toml::to_string(&RegistryConfig::default()).unwrap();
    assert!(text.contains("[auth]") && text.contains("[connections]"), "{text}");
    assert_eq!(file(&text), RegistryConfig::default());
    assert_eq!(file(""), RegistryConfig::default());
}

#[test]
fn every_default_is_a_key_and_round_trips_through_its_variable() {
    let defaults = toml::Table::try_from(RegistryConfig::default()).unwrap();
    let mut paths = Vec::new();
    leaves(&defaults, "", &mut paths);
    for path in &paths {
        let key = KEYS.iter().find(|k| k.path == path);
        let key = key.unwrap_or_else(|| panic!("{path} has no row in KEYS"));
        let text = as_text(lookup(&defaults, path).unwrap());
        let loaded = load_with(None, &[(key.env, &text)]).unwrap().config;
        assert_eq!(loaded, RegistryConfig::default(), "{} = {text:?}", key.env);
    }
    // Keys without a default value (unset options) still land in a field.
    for key in KEYS.iter().filter(|k| !paths.iter().any(|p| p == k.path)) {
        let loaded = load_with(None, &[(key.env, "https://sample.example")]).unwrap().config;
        assert_ne!(loaded, RegistryConfig::default(), "{}", key.path);
    }
}

#[test]
fn keys_are_declared_once() {
    for (i, a) in KEYS.iter().enumerate() {
        for b in &KEYS[i + 1..] {
            assert_ne!(a.path, b.path);
            assert_ne!(a.env, b.env);
            assert!(a.flag.is_none() || a.flag != b.flag, "{}", a.path);
        }
        assert!(a.env.starts_with("PIER_") && a.env != CONFIG_ENV, "{}", a.env);
        assert_ne!(a.flag, Some(CONFIG_FLAG));
    }
}

#[test]
fn every_section_parses() {
    let c = file(
        r#"
listen = "0.0.0.0:5001"
data_dir = "/srv/pier"
public_url = "https://registry.example.com"
log = "debug"

[auth]
token_ttl_secs = 60
audit_retention_days = 7
audit_max_mb = 16
trusted_proxies = ["10.0.0.5", "fd00::/8"]
admin_password = "first-Secret-1"

[uploads]
upload_ttl_secs = 600

[connections]
header_read_timeout_secs = 2
idle_timeout_secs = 3
body_idle_timeout_secs = 4
max_connections = 5

[storage]
backend = "fs"

[metadata]
backend = "sled"

[metrics]
enabled = false
token = "scrape-token"
"#,
    );
    assert_eq!(c.listen, "0.0.0.0:5001".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/srv/pier"));
    assert_eq!(c.public_url.as_deref(), Some("https://registry.example.com"));
    assert_eq!(c.log, "debug");
    assert_eq!(c.auth.token_ttl, Duration::from_secs(60));
    assert_eq!(c.auth.audit_retention_days, 7);
    assert_eq!(c.auth.audit_max_bytes, 16 * MIB);
    assert!(c.auth.trusted_proxies[0].contains(&"10.0.0.5".parse::<IpAddr>().unwrap()));
    assert!(c.auth.trusted_proxies[1].contains(&"fd00::1".parse::<IpAddr>().unwrap()));
    assert_eq!(c.auth.admin_password.as_deref(), Some("first-Secret-1"));
    assert_eq!(c.uploads.ttl, Duration::from_secs(600));
    assert_eq!(
        c.connections,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            body_idle_timeout: Duration::from_secs(4),
            max_connections: 5,
        }
    );
    assert_eq!(c.storage, StorageConfig::Fs {});
    assert_eq!(c.metadata, MetadataConfig::Sled {});
    assert!(!c.metrics.enabled);
    assert_eq!(c.metrics.token.as_deref(), Some("scrape-token"));
    assert!(
        !toml::to_string(&c).unwrap().contains("scrape-token"),
        "the token is never written out"
    );
    let from_env = load_with(None, &[("PIER_METRICS_TOKEN", "env-token")]).unwrap().config;
    assert_eq!(from_env.metrics.token.as_deref(), Some("env-token"));
    assert!(from_env.metrics.enabled);
    // Dotted keys are the same keys.
    assert_eq!(
        file("auth.token_ttl_secs = 60\n").auth.token_ttl,
        Duration::from_secs(60)
    );
}

#[test]
fn unknown_keys_are_named() {
    let e = file_error("listn = \"127.0.0.1:6000\"\n");
    assert!(e.contains("unknown field `listn`"), "{e}");
    let e = file_error("[auth]\ntoken_ttl = 60\n");
    assert!(e.ends_with("auth.token_ttl: unknown field `token_ttl`, expected one of `token_ttl_secs`, `audit_retention_days`, `audit_max_mb`, `trusted_proxies`, `admin_password`"), "{e}");
    let e = file_error("[storage]\nbackend = \"fs\"\nroot = \"/srv\"\n");
    assert!(e.contains("storage") && e.contains("root"), "{e}");
    let e = file_error("[storage]\nbackend = \"s3\"\n");
    assert!(e.contains("storage") && e.contains("unknown variant `s3`"), "{e}");
    let e = file_error("[webhooks]\nurl = \"http://x\"\n");
    assert!(e.contains("unknown field `webhooks`"), "{e}");
}

#[test]
fn wrong_types_and_values_are_named() {
    let e = file_error("[auth]\ntoken_ttl_secs = \"five\"\n");
    assert!(e.contains("auth.token_ttl_secs: invalid type: string \"five\""), "{e}");
    let e = file_error("[connections]\nmax_connections = 0\n");
    assert!(e.contains("connections.max_connections: must be at least 1"), "{e}");
    let e = file_error("auth = 5\n");
    assert!(e.contains("auth: invalid type: integer `5`"), "{e}");
    let e = file_error("listen = \n");
    assert!(e.contains("TOML parse error"), "{e}");
    let e = load_with(None, &[("PIER_UPLOAD_TTL", "1h")]).unwrap_err().to_string();
    assert_eq!(
        e,
        "environment variable PIER_UPLOAD_TTL: uploads.upload_ttl_secs: \"1h\" is not a whole number"
    );
}

#[test]
fn old_flat_keys_still_work_and_say_where_they_moved() {
    let loaded = load_with(
        Some("token_ttl_secs = 60\nmax_connections = 9\nlisten = \"127.0.0.1:1\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(loaded.config.auth.token_ttl, Duration::from_secs(60));
    assert_eq!(loaded.config.connections.max_connections, 9);
    assert_eq!(loaded.notes.len(), 2, "{:?}", loaded.notes);
    assert!(
        loaded.notes[0].ends_with("token_ttl_secs moved to [auth] token_ttl_secs; the old place still works"),
        "{:?}",
        loaded.notes
    );
    // Moved values are checked like any other.
    let e = file_error("upload_ttl_secs = 0\n");
    assert!(e.contains("uploads.upload_ttl_secs: must be at least 1"), "{e}");
    let e = file_error("token_ttl_secs = 60\n[auth]\ntoken_ttl_secs = 30\n");
    assert!(
        e.contains("token_ttl_secs is set twice") && e.contains("keep [auth] token_ttl_secs"),
        "{e}"
    );
    // Keys that never were flat are not looked for at the top level.
    assert!(file_error("backend = \"fs\"\n").contains("unknown field `backend`"));
}

#[test]
fn env_overrides_file_and_names_the_file() {
    let loaded = load_with(
        Some("log = \"debug\"\n[auth]\naudit_retention_days = 3\n"),
        &[("PIER_LOG", "warn")],
    )
    .unwrap();
    assert_eq!(loaded.config.log, "warn");
    assert_eq!(loaded.config.auth.audit_retention_days, 3);
    let e = load_with(None, &[(CONFIG_ENV, "/nonexistent/pier.toml")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read config file /nonexistent/pier.toml: "), "{e}");
}

#[test]
fn text_becomes_values_by_kind() {
    assert_eq!(Kind::Bool.parse("true"), Ok(toml::Value::Boolean(true)));
    assert!(Kind::Bool.parse("yes").unwrap_err().contains("\"yes\""));
    assert_eq!(Kind::Number.parse(" 42 "), Ok(toml::Value::Integer(42)));
    assert_eq!(
        Kind::List.parse("a, ,b"),
        Ok(toml::Value::Array(vec!["a".into(), "b".into()]))
    );
    assert_eq!(Kind::List.parse(""), Ok(toml::Value::Array(Vec::new())));
}

const README_START: &str = "<!-- configuration table: generated from registry/src/config.rs -->\n";
const README_END: &str = "<!-- end of configuration table -->\n";

/// README's configuration table is [`markdown_table`]; `UPDATE_README=1` rewrites it.
#[test]
fn readme_table_matches_the_keys() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(README_START).expect("README has the start marker") + README_START.len();
    let end = start + readme[start..].find(README_END).expect("README has the end marker");
    let want = markdown_table();
    let have = &readme[start..end];
    if have == want {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    let missing: Vec<_> = want.lines().filter(|l| !have.lines().any(|h| h == *l)).collect();
    let extra: Vec<_> = have.lines().filter(|l| !want.lines().any(|w| w == *l)).collect();
    panic!(
        "README.md's configuration table is out of date.\n- in README only:\n{}\n+ from KEYS:\n{}\nRegenerate: UPDATE_README=1 cargo test -p pier-registry --lib config::tests::readme_table",
        extra.join("\n"),
        missing.join("\n")
    );
}

/// `Registry::open_config` opens under `data_dir` and hands the top-level `public_url` to
/// access control: challenges name it, whatever Host the request sends.
#[tokio::test]
async fn open_config_uses_data_dir_and_public_url() {
    use tower::ServiceExt as _;

    let dir = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        data_dir: dir.path().join("data"),
        public_url: Some("https://registry.example.com".into()),
        ..Default::default()
    };
    let registry = crate::Registry::open_config(&config).await.unwrap();
    assert!(dir.path().join("data/meta").is_dir());
    let request = axum::http::Request::get("/v2/")
        .header("host", "attacker.example")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = registry.router().oneshot(request).await.unwrap();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("realm=\"https://registry.example.com/service/token\""),
        "{challenge}"
    );
}

/// The memory backends leave nothing under the data directory but the token signing key.
#[tokio::test]
async fn memory_backends_keep_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_with(
        None,
        &[
            ("PIER_DATA_DIR", dir.path().to_str().unwrap()),
            ("PIER_STORAGE_BACKEND", "memory"),
            ("PIER_METADATA_BACKEND", "memory"),
            ("PIER_ADMIN_PASSWORD", "first-Secret-1"),
        ],
    )
    .unwrap()
    .config;
    assert_eq!(
        (&config.storage, &config.metadata),
        (&StorageConfig::Memory {}, &MetadataConfig::Memory {})
    );
    let registry = crate::Registry::open_config(&config).await.unwrap();
    registry.flush().await.unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [crate::auth::token::KEY_FILE]);
}
