//! Image configs: the runtime part of the spec and the layers, as oci-spec's
//! [`ImageConfiguration`]. The layout they are written into, and the canonical JSON form,
//! are [`pier_oci::layout`]'s (re-exported here).

use std::collections::BTreeMap;

use oci_spec::image::{
    Arch, Config, ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder,
};
use pier_oci::Platform;
use pier_oci::layout::spec_err;
pub use pier_oci::layout::{ImageError, LAYOUT_VERSION, OciLayout, canonical_json, oci_platform};
use pier_oci::time::rfc3339;

use crate::layer::Layer;

/// The runtime part of an image config, as the pipeline spec gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOptions {
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    /// The entrypoint, if any.
    pub entrypoint: Option<Vec<String>>,
    /// The command (the entrypoint's arguments, or the program when there is no entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    /// `8080/tcp`, `53/udp`; a bare port means tcp.
    pub exposed_ports: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
}

/// The image config of one platform's image: canonical architecture/os/variant, the layers'
/// diff_ids, one history entry per layer, and `created` (of the image and of each history
/// entry) from `created` (`SOURCE_DATE_EPOCH`).
pub fn image_config(
    platform: &Platform,
    layers: &[Layer],
    cfg: &ConfigOptions,
    created: u64,
) -> Result<ImageConfiguration, ImageError> {
    let when = rfc3339(created);
    let mut c = ConfigBuilder::default();
    if !cfg.env.is_empty() {
        c = c.env(cfg.env.clone());
    }
    if let Some(e) = &cfg.entrypoint {
        c = c.entrypoint(e.clone());
    }
    if let Some(cmd) = &cfg.cmd {
        c = c.cmd(cmd.clone());
    }
    if let Some(w) = &cfg.workdir {
        c = c.working_dir(w.clone());
    }
    if let Some(u) = &cfg.user {
        c = c.user(u.clone());
    }
    if !cfg.exposed_ports.is_empty() {
        let mut ports: Vec<String> = cfg
            .exposed_ports
            .iter()
            .map(|p| if p.contains('/') { p.clone() } else { format!("{p}/tcp") })
            .collect();
        ports.sort();
        ports.dedup();
        c = c.exposed_ports(ports);
    }
    if !cfg.labels.is_empty() {
        c = c.labels(
            cfg.labels
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let config: Config = c.build().map_err(spec_err("image config"))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err("image config rootfs"))?;
    let history = layers
        .iter()
        .map(|l| {
            let by = if l.created_by.is_empty() {
                format!("pier: layer {}", l.diff_id)
            } else {
                l.created_by.clone()
            };
            HistoryBuilder::default()
                .created(when.clone())
                .created_by(by)
                .build()
                .map_err(spec_err("image config history"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = ImageConfigurationBuilder::default()
        .created(when)
        .architecture(Arch::from(platform.architecture.as_str()))
        .os(Os::from(platform.os.as_str()))
        .config(config)
        .rootfs(rootfs)
        .history(history);
    if let Some(v) = &platform.variant {
        b = b.variant(v.clone());
    }
    b.build().map_err(spec_err("image config"))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn canonical_platforms() {
        let cases = [
            ("x86_64", "amd64", None),
            ("aarch64", "arm64", Some("v8")),
            ("loongarch64", "loong64", None),
            ("sw_64", "sw64", None),
            ("mips64el", "mips64le", None),
        ];
        for (alias, arch, variant) in cases {
            let p: Platform = alias.parse().unwrap();
            let o = oci_platform(&p);
            let json: Value = serde_json::from_slice(&canonical_json(&o).unwrap()).unwrap();
            assert_eq!(json["architecture"], arch, "{alias}");
            assert_eq!(json["os"], "linux");
            assert_eq!(json["variant"].as_str(), variant, "{alias}");
            let cfg = image_config(&p, &[], &ConfigOptions::default(), 0).unwrap();
            let json: Value = serde_json::from_slice(&canonical_json(&cfg).unwrap()).unwrap();
            assert_eq!(json["architecture"], arch, "{alias}");
            assert_eq!(json["variant"].as_str(), variant, "{alias}");
            assert_eq!(json["created"], "1970-01-01T00:00:00Z");
        }
    }

    #[test]
    fn config_json_is_sorted_and_stable() {
        let p: Platform = "linux/amd64".parse().unwrap();
        let labels: BTreeMap<String, String> = (0..40).map(|i| (format!("label.{i:02}"), i.to_string())).collect();
        let cfg = ConfigOptions {
            env: vec!["B=1".into(), "A=2".into()],
            exposed_ports: vec!["9000".into(), "53/udp".into(), "8080/tcp".into()],
            labels,
            ..ConfigOptions::default()
        };
        let first = canonical_json(&image_config(&p, &[], &cfg, 5).unwrap()).unwrap();
        for _ in 0..5 {
            // A fresh HashMap each time: a different iteration order, the same bytes.
            assert_eq!(canonical_json(&image_config(&p, &[], &cfg, 5).unwrap()).unwrap(), first);
        }
        let text = String::from_utf8(first).unwrap();
        let at = |s: &str| text.find(s).unwrap();
        assert!(
            at("label.00") < at("label.01") && at("label.01") < at("label.39"),
            "{text}"
        );
        assert!(
            at("53/udp") < at("8080/tcp") && at("8080/tcp") < at("9000/tcp"),
            "{text}"
        );
        // Env keeps its order.
        assert!(at("B=1") < at("A=2"));
    }
}
