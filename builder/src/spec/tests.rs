use super::locate::*;
use super::*;

/// The complete example: five platforms by alias, a zig cross-compile step, a LoongArch
/// override adding `-mcpu={zig_cpu}`, an SW64 override replacing the step and the layer.
const EXAMPLE: &str = r#"# pier.yaml: hello, for the whole fleet
image: 127.0.0.1:5000/team/hello
tags: [latest, "1.0"]
platforms:
  - x86_64
  - aarch64
  - loongarch64
  - sw_64
  - mips64el
base: scratch
steps:
  - run: python3 -m ziglang cc -target {zig_target} -mcpu=baseline -static -O2 -o out/{uname}/hello hello.c
    env:
      ZIG_GLOBAL_CACHE_DIR: .zig-cache/{family}
layers:
  - name: hello
    files:
      - src: out/{uname}/hello
        dest: /usr/local/bin/hello
        mode: "0755"
env:
  GREETING: hello from {uname}
entrypoint: [/usr/local/bin/hello]
exposed_ports: ["8080", 53/udp]
labels:
  org.opencontainers.image.title: hello
  io.pier.platform: "{platform}"
annotations:
  org.opencontainers.image.source: https://example.invalid/hello
overrides:
  loongarch64:
    steps:
      - run: python3 -m ziglang cc -target {zig_target} -mcpu={zig_cpu} -static -O2 -o out/{uname}/hello hello.c
  sw_64:
    steps:
      - run: ./tools/sw64-payload out/{uname}/hello
        workdir: .
    layers:
      - name: hello (script payload)
        files:
          - src: out/{uname}/hello
            dest: /usr/local/bin/hello
            mode: 0755
            allow_elf_mismatch: true
    labels:
      io.pier.note: built, never run
    annotations:
      io.pier.sw64: payload
"#;

fn plans(text: &str) -> Vec<Plan> {
    Spec::parse(text, "pier.yaml")
        .unwrap()
        .plan(Profiles::builtin())
        .unwrap()
}

fn err(text: &str) -> String {
    match Spec::parse(text, "pier.yaml") {
        Ok(spec) => spec.plan(Profiles::builtin()).map(|_| ()).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

/// The error names the file, the line and the field, and says what `what` says.
#[track_caller]
fn assert_err(text: &str, line: usize, field: &str, what: &str) {
    let e = err(text);
    assert!(e.starts_with("pier.yaml: "), "{e}");
    assert!(
        e.contains(&format!("line {line}:")) || e.contains(&format!("line {line},")),
        "want line {line}: {e}"
    );
    assert!(e.contains(&format!("`{field}`")), "want field `{field}`: {e}");
    assert!(e.contains(what), "want {what:?}: {e}");
}

#[test]
fn spec_example_plans_every_platform_in_order() {
    let spec = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
    assert_eq!(spec.image, "127.0.0.1:5000/team/hello");
    assert_eq!(spec.tags, ["latest", "1.0"]);
    let canonical: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
    assert_eq!(
        canonical,
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/loong64",
            "linux/sw64",
            "linux/mips64le"
        ]
    );
    assert_eq!(spec.exposed_ports, ["8080/tcp", "53/udp"]);
    assert_eq!(spec.layers[0].files[0].mode, Some(0o755));

    let plans = spec.plan(Profiles::builtin()).unwrap();
    assert_eq!(plans.len(), 5);
    let families: Vec<&str> = plans.iter().map(|p| p.family.as_str()).collect();
    assert_eq!(families, ["x86", "arm", "loongarch", "sw64", "mips"]);
    for (plan, platform) in plans.iter().zip(&spec.platforms) {
        assert_eq!(&plan.platform, platform);
        assert_eq!(plan.base, "scratch");
        assert_eq!(
            plan.entrypoint.as_deref(),
            Some(&["/usr/local/bin/hello".to_owned()][..])
        );
        assert_eq!(plan.cmd, None);
        assert_eq!(plan.exposed_ports, ["8080/tcp", "53/udp"]);
        assert_eq!(plan.labels["io.pier.platform"], platform.to_string());
        assert_eq!(plan.labels["org.opencontainers.image.title"], "hello");
        assert_eq!(
            plan.annotations["org.opencontainers.image.source"],
            "https://example.invalid/hello"
        );
        assert_eq!(plan.layers.len(), 1);
        assert_eq!(plan.layers[0].files[0].dest, "/usr/local/bin/hello");
        assert_eq!(plan.layers[0].files[0].mode, Some(0o755));
        assert_eq!(plan.vars["PIER_PLATFORM"], platform.to_string());
        assert_eq!(plan.vars["PIER_FAMILY"], plan.family);
    }

    let cc = |target: &str, cpu: &str, uname: &str| {
        format!("python3 -m ziglang cc -target {target} -mcpu={cpu} -static -O2 -o out/{uname}/hello hello.c")
    };
    let [x86, arm, la, sw, mips] = &plans[..] else {
        unreachable!()
    };
    assert_eq!(x86.steps[0].run, cc("x86_64-linux-musl", "baseline", "x86_64"));
    assert_eq!(arm.steps[0].run, cc("aarch64-linux-musl", "baseline", "aarch64"));
    assert_eq!(
        la.steps[0].run,
        cc("loongarch64-linux-musl", "generic_la64+d", "loongarch64")
    );
    assert_eq!(mips.steps[0].run, cc("mips64el-linux-muslabi64", "baseline", "mips64"));
    assert_eq!(sw.steps[0].run, "./tools/sw64-payload out/sw_64/hello");
    assert_eq!(sw.steps[0].workdir.as_deref(), Some("."));
    assert_eq!(x86.steps[0].env["ZIG_GLOBAL_CACHE_DIR"], ".zig-cache/x86");
    assert_eq!(
        la.steps[0].env,
        BTreeMap::new(),
        "an overridden step list replaces the steps"
    );

    assert_eq!(x86.layers[0].files[0].src, "out/x86_64/hello");
    assert_eq!(mips.layers[0].files[0].src, "out/mips64/hello");
    assert_eq!(sw.layers[0].name.as_deref(), Some("hello (script payload)"));
    assert_eq!(sw.layers[0].files[0].src, "out/sw_64/hello");
    assert!(sw.layers[0].files[0].allow_elf_mismatch);
    assert!(!x86.layers[0].files[0].allow_elf_mismatch);

    assert_eq!(arm.env["GREETING"], "hello from aarch64");
    assert_eq!(sw.env["GREETING"], "hello from sw_64");
    // Maps merge: the spec's labels and annotations stay, the override's are added.
    assert_eq!(sw.labels["io.pier.note"], "built, never run");
    assert_eq!(sw.labels["org.opencontainers.image.title"], "hello");
    assert_eq!(sw.annotations["io.pier.sw64"], "payload");
    assert_eq!(sw.annotations.len(), 2);
    assert!(!x86.labels.contains_key("io.pier.note"));

    assert_eq!(arm.vars["PIER_ARCH"], "arm64");
    assert_eq!(arm.vars["PIER_VARIANT"], "v8");
    assert_eq!(arm.vars["PIER_UNAME"], "aarch64");
    assert_eq!(arm.vars["PIER_GOARCH"], "arm64");
    assert_eq!(arm.vars["PIER_RUST_TARGET"], "aarch64-unknown-linux-musl");
    assert_eq!(arm.vars["PIER_ZIG_TARGET"], "aarch64-linux-musl");
    assert_eq!(arm.vars["PIER_ZIG_CPU"], "");
    assert_eq!(arm.vars["PIER_QEMU"], "qemu-aarch64");
    assert_eq!(la.vars["PIER_ZIG_CPU"], "generic_la64+d");
    assert_eq!(mips.vars["PIER_RUST_TARGET"], "mips64el-unknown-linux-muslabi64");
    assert_eq!(sw.vars["PIER_GOARCH"], "");
    assert_eq!(sw.vars["PIER_ZIG_TARGET"], "");
    assert_eq!(sw.vars["PIER_UNAME"], "sw_64");
    assert_eq!(x86.vars["PIER_VARIANT"], "");
    assert_eq!(x86.vars.len(), 11);
}

#[test]
fn spec_is_deterministic() {
    let a = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
    let b = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.plan(Profiles::builtin()).unwrap(),
        b.plan(Profiles::builtin()).unwrap()
    );
    assert_eq!(plans(EXAMPLE), plans(EXAMPLE));
    assert_eq!(
        serde_json::to_string(&plans(EXAMPLE)).unwrap(),
        serde_json::to_string(&plans(EXAMPLE)).unwrap()
    );
}

#[test]
fn spec_defaults() {
    let spec = Spec::parse("image: team/hello\n", "pier.yaml").unwrap();
    assert_eq!(spec.tags, ["latest"]);
    let all: Vec<Platform> = Profiles::builtin().all().iter().map(|p| p.platform().clone()).collect();
    assert_eq!(spec.platforms, all);
    assert_eq!(spec.base, None);
    assert_eq!(spec.compression, Compression::Gzip);
    let plans = spec.plan(Profiles::builtin()).unwrap();
    assert_eq!(plans.len(), 5);
    assert!(
        plans
            .iter()
            .all(|p| p.base == "scratch" && p.steps.is_empty() && p.layers.is_empty())
    );
}

#[test]
fn spec_aliases_become_canonical() {
    let spec = Spec::parse(
            "image: a/b\nplatforms: [amd64, ARM64, la64, sunway, mips64le, ]\n\
             base:\n  aarch64: debian:12\n  linux/amd64: alpine:3\n  loong64: scratch\n  sw64: scratch\n  mips64el: scratch\n\
             overrides:\n  c86: { cmd: [x] }\n",
            "pier.yaml",
        )
        .unwrap();
    let p: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
    assert_eq!(
        p,
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/loong64",
            "linux/sw64",
            "linux/mips64le"
        ]
    );
    let plans = spec.plan(Profiles::builtin()).unwrap();
    assert_eq!(plans[0].base, "alpine:3");
    assert_eq!(plans[1].base, "debian:12");
    assert_eq!(plans[0].cmd, Some(vec!["x".to_owned()]));
    assert_eq!(plans[1].cmd, None);
    let amd64: Platform = "linux/amd64".parse().unwrap();
    assert!(spec.overrides.contains_key(&amd64));
}

#[test]
fn spec_overrides_replace_scalars_and_merge_maps() {
    let text = "image: a/b\nplatforms: [x86_64, aarch64]\nbase: debian:12\nworkdir: /app\nuser: app\n\
                    env: { A: '1', B: '2' }\ncmd: [run]\nexposed_ports: [80]\n\
                    overrides:\n  aarch64:\n    base: debian:12-slim\n    workdir: /srv\n    user: root\n    \
                    env: { B: three, C: '{goarch}' }\n    exposed_ports: []\n    entrypoint: [sh]\n";
    let plans = plans(text);
    assert_eq!(plans[0].base, "debian:12");
    assert_eq!(plans[1].base, "debian:12-slim");
    assert_eq!(plans[1].workdir.as_deref(), Some("/srv"));
    assert_eq!(plans[1].user.as_deref(), Some("root"));
    assert_eq!(plans[0].user.as_deref(), Some("app"));
    let env: Vec<(&str, &str)> = plans[1].env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("A", "1"), ("B", "three"), ("C", "arm64")]);
    assert_eq!(plans[0].exposed_ports, ["80/tcp"]);
    assert!(plans[1].exposed_ports.is_empty());
    assert_eq!(plans[1].cmd, Some(vec!["run".to_owned()]));
    assert_eq!(plans[1].entrypoint, Some(vec!["sh".to_owned()]));
}

#[test]
fn spec_placeholders_and_escapes() {
    let text = "image: a/b\nplatforms: [aarch64]\nsteps:\n  - run: echo ${{HOME}} {{x}} } {arch}/{variant} {debian} {qemu} {rust_target} {goarch}\n";
    assert_eq!(
        plans(text)[0].steps[0].run,
        "echo ${HOME} {x} } arm64/v8 arm64 qemu-aarch64 aarch64-unknown-linux-musl arm64"
    );
    let text = "image: a/b\nplatforms: [x86_64]\nsteps:\n  - run: '[{qemu}] [{zig_cpu}] [{variant}]'\n";
    assert_eq!(plans(text)[0].steps[0].run, "[] [] []");
    // Placeholders are not expanded outside the documented fields.
    let text = "image: a/b\nplatforms: [x86_64]\ncmd: ['{uname}']\n";
    assert_eq!(plans(text)[0].cmd, Some(vec!["{uname}".to_owned()]));
}

#[test]
fn spec_modes() {
    let mode = |m: &str| {
        let text = format!("image: a/b\nlayers:\n  - files:\n      - {{ src: a, dest: /a, mode: {m} }}\n");
        Spec::parse(&text, "pier.yaml").map(|s| s.layers[0].files[0].mode.unwrap())
    };
    assert_eq!(mode("\"0755\"").unwrap(), 0o755);
    assert_eq!(mode("0755").unwrap(), 0o755);
    assert_eq!(mode("755").unwrap(), 0o755);
    assert_eq!(mode("'0o644'").unwrap(), 0o644);
    assert_eq!(mode("4755").unwrap(), 0o4755);
    for bad in ["493", "'rwx'", "0o17777", "''", "-1"] {
        assert!(mode(bad).is_err(), "{bad}");
    }
}

#[test]
fn spec_error_unknown_key() {
    assert_err("image: a/b\nstep:\n  - run: x\n", 2, "step", "unknown field `step`");
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n        owner: 1\n",
        6,
        "layers[0].files[0].owner",
        "unknown field `owner`",
    );
    assert_err(
        "image: a/b\noverrides:\n  aarch64:\n    steps:\n      - run: a\n      - run: b\n        shell: bash\n",
        7,
        "overrides.aarch64.steps[1].shell",
        "unknown field `shell`",
    );
}

#[test]
fn spec_error_unknown_platform() {
    for (text, line, field) in [
        ("image: a/b\nplatforms:\n  - x86_64\n  - riscv64\n", 4, "platforms[1]"),
        ("image: a/b\nplatforms: [arm64, ppc64le]\n", 2, "platforms[1]"),
        (
            "image: a/b\noverrides:\n  aarch64: {}\n  armhf:\n    cmd: [x]\n",
            4,
            "overrides.armhf",
        ),
        (
            "image: a/b\nbase:\n  amd64: scratch\n  s390x: scratch\n",
            4,
            "base.s390x",
        ),
    ] {
        assert_err(text, line, field, "unknown platform");
        let e = err(text);
        for known in [
            "x86_64",
            "aarch64",
            "loongarch64",
            "sw_64",
            "mips64el",
            "linux/arm64/v8",
        ] {
            assert!(e.contains(known), "{e}");
        }
    }
    assert_err(
        "image: a/b\nplatforms: [arm64, x86_64, aarch64]\n",
        2,
        "platforms[2]",
        "already given",
    );
    assert_err(
        "image: a/b\noverrides:\n  arm64: {}\n  aarch64: {}\n",
        4,
        "overrides.aarch64",
        "linux/arm64/v8, already given",
    );
}

#[test]
fn spec_error_bad_mode() {
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n        mode: \"0999\"\n",
        6,
        "layers[0].files[0].mode",
        "bad mode \"0999\"",
    );
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n      - src: b\n        dest: /b\n        mode: 10000\n",
        8,
        "layers[0].files[1].mode",
        "bad mode",
    );
}

#[test]
fn spec_error_missing_field() {
    assert_err("# no image\ntags: [x]\n", 2, "image", "missing field `image`");
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: a\n",
        4,
        "layers[0].files[0].dest",
        "missing field `dest`",
    );
}

#[test]
fn spec_error_empty_layer() {
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - { src: a, dest: /a }\n  - name: empty\n    files: []\n",
        6,
        "layers[1].files",
        "at least one file",
    );
    assert_err(
        "image: a/b\noverrides:\n  sw64:\n    layers:\n      - files: []\n",
        5,
        "overrides.sw64.layers[0].files",
        "at least one file",
    );
}

#[test]
fn spec_error_unknown_placeholder() {
    assert_err(
        "image: a/b\nsteps:\n  - run: make\n  - run: echo {arch} {target}\n",
        4,
        "steps[1].run",
        "unknown placeholder {target}; known: {platform}, {arch}",
    );
    assert_err(
        "image: a/b\nsteps:\n  - run: echo ${HOME}\n",
        3,
        "steps[0].run",
        "unknown placeholder {HOME}",
    );
    assert_err(
        "image: a/b\nlabels:\n  a: x\n  b: '{uname'\n",
        4,
        "labels.b",
        "never closed",
    );
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: out/{os}/x\n        dest: /x\n",
        4,
        "layers[0].files[0].src",
        "unknown placeholder {os}",
    );
    // Checked in overrides too, even for a platform not built.
    assert_err(
        "image: a/b\nplatforms: [amd64]\noverrides:\n  sw64:\n    env:\n      X: '{sw}'\n",
        6,
        "overrides.sw64.env.X",
        "unknown placeholder {sw}",
    );
}

#[test]
fn spec_error_placeholder_without_value() {
    let text =
        "image: a/b\nplatforms: [amd64, sw_64]\nsteps:\n  - run: make\n  - run: zig cc -target {zig_target} x.c\n";
    assert_err(
        text,
        5,
        "steps[1].run",
        "placeholder {zig_target} has no value for linux/sw64 (family sw64)",
    );
    let text =
        "image: a/b\nplatforms: [sw64]\nlayers:\n  - files:\n      - src: target/{rust_target}/x\n        dest: /x\n";
    assert_err(
        text,
        5,
        "layers[0].files[0].src",
        "{rust_target} has no value for linux/sw64",
    );
    let text = "image: a/b\nplatforms: [sw64]\nenv:\n  GOARCH: '{goarch}'\n";
    assert_err(text, 4, "env.GOARCH", "{goarch} has no value for linux/sw64");
    let text = "image: a/b\nplatforms: [sw64]\noverrides:\n  sw_64:\n    steps:\n      - run: cc -o {zig_target}\n";
    assert_err(
        text,
        6,
        "overrides.sw_64.steps[0].run",
        "{zig_target} has no value for linux/sw64",
    );
    // Overridden for that platform: fine.
    let text = "image: a/b\nplatforms: [amd64, sw_64]\nsteps:\n  - run: zig cc -target {zig_target} x.c\n\
                    overrides:\n  sw64:\n    steps: []\n";
    let planned = plans(text);
    assert_eq!(planned[0].steps[0].run, "zig cc -target x86_64-linux-musl x.c");
    assert!(planned[1].steps.is_empty());
    // A label the override replaces is not expanded for that platform either.
    let text =
        "image: a/b\nplatforms: [sw_64]\nlabels:\n  go: '{goarch}'\noverrides:\n  sw64:\n    labels:\n      go: none\n";
    assert_eq!(plans(text)[0].labels["go"], "none");
}

#[test]
fn spec_error_other_values() {
    assert_err("image: a/b:1.0\n", 1, "image", "has a tag");
    assert_err("image: A/b\n", 1, "image", "lowercase");
    assert_err("image: a/b\ntags: [ok, 'no good']\n", 2, "tags[1]", "bad tag");
    assert_err("image: a/b\nplatforms: []\n", 2, "platforms", "no platforms");
    assert_err(
        "image: a/b\nexposed_ports: [80, http]\n",
        2,
        "exposed_ports[1]",
        "bad port",
    );
    assert_err(
        "image: a/b\nplatforms: [amd64, arm64]\nbase:\n  amd64: alpine:3\n",
        4,
        "base",
        "no base image for linux/arm64/v8",
    );
    assert_err("image: a/b\nimage: c/d\n", 2, "image", "duplicate");
    assert_err("image: a/b\ncompression: xz\n", 2, "compression", "xz");
    assert_err(
        "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: relative\n",
        5,
        "layers[0].files[0].dest",
        "absolute",
    );
    let e = Spec::load(Path::new("/nonexistent/pier.yaml")).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/pier.yaml: "), "{e}");
}

#[test]
fn spec_load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pier.yaml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let spec = Spec::load(&path).unwrap();
    assert_eq!(spec.file_name(), path.display().to_string());
    std::fs::write(&path, "image: a/b\nbogus: 1\n").unwrap();
    let e = Spec::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: line 2", path.display())), "{e}");
}

#[test]
fn spec_field_path_at() {
    let text =
        "a:\n  b:\n    - x: 1\n      y: 2\n    - x: 3\n      z:\n        - q\n        - r: 1\nlist:\n- k: 1\n- k: 2\n";
    let at = |l, c| format_path(&field_path_at(text, l, c));
    assert_eq!(at(1, 1), "a");
    assert_eq!(at(3, 9), "a.b[0].x");
    assert_eq!(at(4, 7), "a.b[0].y");
    assert_eq!(at(5, 7), "a.b[1].x");
    assert_eq!(at(6, 7), "a.b[1].z");
    assert_eq!(at(8, 11), "a.b[1].z[1].r");
    assert_eq!(at(11, 3), "list[1].k");
    assert_eq!(at(99, 1), "(document)");
}
