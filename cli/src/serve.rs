//! `pier serve`: the registry's configuration (flags > environment > config file >
//! defaults), its flags built from the registry's table of keys.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use pier_registry::RegistryConfig;
use pier_registry::config::{self, CONFIG_ENV, CONFIG_FLAG, KEYS, Key, Kind, Loaded, Sources};

/// Flags of `pier serve`: one per key of [`KEYS`] that has a flag, and `--config`.
#[derive(Debug, Default)]
pub struct ServeArgs {
    config: Option<PathBuf>,
    flags: Vec<(&'static Key, String)>,
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ServeArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>(CONFIG_FLAG) {
            self.config = Some(path.clone());
        }
        for key in KEYS {
            let Some(values) = key.flag.and_then(|f| matches.get_many::<String>(f)) else {
                continue;
            };
            // A list flag may be repeated; its values join as the environment gives them.
            let value = values.map(String::as_str).collect::<Vec<_>>().join(",");
            self.flags.retain(|(k, _)| k.path != key.path);
            self.flags.push((key, value));
        }
        Ok(())
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let keys = KEYS.iter().filter_map(|k| k.flag.map(|flag| key_arg(flag, k)));
        cmd.args(keys).arg(
            Arg::new(CONFIG_FLAG)
                .long(CONFIG_FLAG)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "TOML file with any of the keys in README.md's configuration table [env: {CONFIG_ENV}]"
                )),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// The flag of `key`; values stay text, read by the registry's loader like the
/// environment's, so both fail with the same message.
fn key_arg(flag: &'static str, key: &Key) -> Arg {
    let help = format!(
        "{} [env: {}] [default: {}]",
        sentence(key.help),
        key.env,
        config::default_text(key)
    );
    let arg = Arg::new(flag)
        .long(flag)
        .value_name(key.kind.value_name())
        .help(help.replace('`', ""));
    match key.kind {
        Kind::List => arg.action(ArgAction::Append),
        _ => arg.action(ArgAction::Set),
    }
}

/// `address to listen on` as `Address to listen on`.
fn sentence(help: &str) -> String {
    let mut chars = help.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The configuration from `args` and the environment `env`.
fn load(args: ServeArgs, env: HashMap<String, String>) -> anyhow::Result<Loaded> {
    Ok(RegistryConfig::load(&Sources {
        file: args.config,
        env,
        flags: args.flags,
    })?)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let Loaded { config: s, notes } = load(args, Sources::process_env()?)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log)
        .with_context(|| format!("log: invalid log filter {:?}", s.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    for note in notes {
        tracing::warn!("{note}");
    }
    // Everything pier writes (metadata database, audit log, blobs) is for its own user
    // only, whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if !s.listen.ip().is_loopback() && s.public_url.is_none() {
        tracing::warn!(
            listen = %s.listen,
            "listening on a non-loopback address without --public-url: token challenges name the realm after each request's Host header, which a client chooses; set --public-url to the registry's external URL"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let registry = pier_registry::Registry::open_config(&s)
            .await
            .with_context(|| format!("cannot open the data dir {}", s.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(s.listen)
            .await
            .with_context(|| format!("cannot listen on {}", s.listen))?;
        tracing::info!(listen = %listener.local_addr()?, data_dir = %s.data_dir.display(), "pier registry serving");
        pier_registry::serve(listener, registry, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{Args as _, FromArgMatches as _};
    use pier_registry::limits;

    use super::*;

    const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
    const DEFAULT_DATA_DIR: &str = "./pier-data";
    const MIB: u64 = 1024 * 1024;

    /// `pier serve ARGS…` as clap parses it.
    fn parse(args: &[&str]) -> ServeArgs {
        let cmd = ServeArgs::augment_args(Command::new("serve"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap();
        ServeArgs::from_arg_matches(&matches).unwrap()
    }

    fn with_env(args: ServeArgs, env: &[(&str, &str)]) -> anyhow::Result<RegistryConfig> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(load(args, env)?.config)
    }

    fn settings(args: ServeArgs) -> anyhow::Result<RegistryConfig> {
        with_env(args, &[])
    }

    fn config_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        std::fs::write(&cfg, text).unwrap();
        let path = cfg.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn defaults() {
        let s = settings(ServeArgs::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let (_dir, cfg) = config_file("listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/pier\"\n");
        let s = settings(parse(&["--config", &cfg])).unwrap();
        assert_eq!(s.listen.port(), 6000);
        assert_eq!(s.data_dir, PathBuf::from("/srv/pier"));
        let s = settings(parse(&["--config", &cfg, "--listen", "127.0.0.1:7000"])).unwrap();
        assert_eq!(s.listen.port(), 7000);
        assert_eq!(s.data_dir, PathBuf::from("/srv/pier"));
    }

    #[test]
    fn flags_beat_env_beats_file_beats_defaults() {
        let (_dir, cfg) = config_file("listen = \"127.0.0.1:6000\"\ndata_dir = \"/file\"\nlog = \"debug\"\n");
        let env = [
            ("PIER_LISTEN", "127.0.0.1:6001"),
            ("PIER_DATA_DIR", "/env"),
            ("PIER_CONFIG", cfg.as_str()),
        ];
        let s = with_env(parse(&["--listen", "127.0.0.1:6002"]), &env).unwrap();
        assert_eq!(s.listen.port(), 6002, "flag over environment");
        assert_eq!(s.data_dir, PathBuf::from("/env"), "environment over file");
        assert_eq!(s.log, "debug", "file over default");
        assert_eq!(s.auth.token_ttl, limits::DEFAULT_TOKEN_TTL, "default");
        // --config wins over PIER_CONFIG, like every flag.
        let (_other, other) = config_file("log = \"warn\"\n");
        let s = with_env(parse(&["--config", &other]), &env).unwrap();
        assert_eq!(s.log, "warn");
        // An empty variable counts as unset.
        let s = with_env(ServeArgs::default(), &[("PIER_LISTEN", "")]).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn hardening_keys_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        let cfg_arg = cfg.to_str().unwrap();
        std::fs::write(
            &cfg,
            "trusted_proxies = [\"10.0.0.5\", \"192.168.0.0/24\"]\naudit_max_mb = 64\nupload_ttl_secs = 3600\nidle_timeout_secs = 5\nmax_connections = 100\n",
        )
        .unwrap();
        let s = settings(parse(&["--config", cfg_arg, "--max-connections", "200"])).unwrap();
        assert_eq!(s.auth.trusted_proxies.len(), 2);
        assert!(s.auth.trusted_proxies[0].contains(&"10.0.0.5".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(s.auth.audit_max_bytes, 64 * MIB);
        assert_eq!(s.uploads.ttl, Duration::from_secs(3600));
        assert_eq!(s.connections.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.connections.max_connections, 200);
        assert_eq!(s.connections.header_read_timeout, limits::HEADER_READ_TIMEOUT);
        std::fs::write(&cfg, "trusted_proxies = [\"10.0.0.0/33\"]\n").unwrap();
        let e = settings(parse(&["--config", cfg_arg])).unwrap_err().to_string();
        assert!(e.contains("trusted_proxies") && e.contains("10.0.0.0/33"), "{e}");
        std::fs::write(&cfg, "idle_timeout_secs = 0\n").unwrap();
        let e = settings(parse(&["--config", cfg_arg])).unwrap_err().to_string();
        assert!(e.contains("idle_timeout_secs"), "{e}");
    }

    #[test]
    fn bad_config_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        let cfg_arg = cfg.to_str().unwrap();
        std::fs::write(&cfg, "listn = \"127.0.0.1:6000\"\n").unwrap();
        let e = settings(parse(&["--config", cfg_arg])).unwrap_err().to_string();
        assert!(e.contains("pier.toml") && e.contains("listn"), "{e}");
        std::fs::write(&cfg, "listen = \"not an address\"\n").unwrap();
        let e = settings(parse(&["--config", cfg_arg])).unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn bad_flag_and_env_values_name_their_source_and_key() {
        let e = settings(parse(&["--token-ttl-secs", "0"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "flag --token-ttl-secs: auth.token_ttl_secs: must be at least 1 (seconds)"
        );
        let e = settings(parse(&["--max-connections", "many"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "flag --max-connections: connections.max_connections: \"many\" is not a whole number"
        );
        let e = with_env(ServeArgs::default(), &[("PIER_LISTEN", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("environment variable PIER_LISTEN: listen: "), "{e}");
        let e = with_env(ServeArgs::default(), &[("PIER_TRUSTED_PROXIES", "10.0.0.5,bogus")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable PIER_TRUSTED_PROXIES: auth.trusted_proxies") && e.contains("bogus"),
            "{e}"
        );
    }

    #[test]
    fn every_key_with_a_flag_is_a_flag_and_secrets_are_not() {
        let cmd = ServeArgs::augment_args(Command::new("serve"));
        let longs: Vec<_> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        for key in KEYS {
            assert_eq!(
                key.flag.is_some_and(|f| longs.contains(&f)),
                key.flag.is_some(),
                "{}",
                key.path
            );
        }
        assert!(longs.contains(&CONFIG_FLAG));
        let admin = KEYS.iter().find(|k| k.env == "PIER_ADMIN_PASSWORD").unwrap();
        assert_eq!(admin.flag, None);
        let err = ServeArgs::augment_args(Command::new("serve"))
            .try_get_matches_from(["serve", "--admin-password", "x"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let s = with_env(ServeArgs::default(), &[("PIER_ADMIN_PASSWORD", "first-Secret-1")]).unwrap();
        assert_eq!(s.auth.admin_password.as_deref(), Some("first-Secret-1"));
    }

    #[test]
    fn list_flags_repeat_or_take_commas() {
        let s = settings(parse(&[
            "--trusted-proxies",
            "10.0.0.5, 10.0.0.6",
            "--trusted-proxies",
            "10.1.0.0/16",
        ]))
        .unwrap();
        let nets: Vec<_> = s.auth.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.5/32", "10.0.0.6/32", "10.1.0.0/16"]);
    }
}
