//! The public spec API, `aelimg::spec::parse` and `aelimg::spec::load`, on
//! YAML text: every field as written, the defaults, each custom scalar
//! (ports, durations, sizes, modes, owners) good and bad, and errors that name
//! file:line:col. Values are read through the parsed fields, never by naming
//! the scalar types, so these tests do not care which module defines them.

use std::path::Path;

use aelimg::spec::{self, SpecFile};

const FILE: &str = "dir/images.yaml";

fn parse(text: &str) -> Result<SpecFile, String> {
    spec::parse(Path::new(FILE), text).map_err(|e| e.to_string())
}

fn parse_ok(text: &str) -> SpecFile {
    parse(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"))
}

/// One image with `extra` (lines indented 4) added to its mapping; the extra
/// lines start on line 5.
fn doc(extra: &str) -> String {
    format!("version: 1\nimages:\n  - name: app\n    user: {{name: app, uid: 1000}}\n{extra}")
}

/// `doc` with one layer holding one file entry that has `field` too.
fn content(field: &str) -> String {
    doc(&format!(
        "    layers:\n      - name: l\n        contents:\n          - path: f\n            dest: /f\n            {field}\n"
    ))
}

/// The `line:col` (1-based) where `needle` occurs in `text`, exactly once; a
/// `|` in `needle` marks the place within it (`"ports: [|0]"` is the `0`).
fn loc(text: &str, needle: &str) -> String {
    let (before, after) = needle.split_once('|').unwrap_or(("", needle));
    let whole = format!("{before}{after}");
    assert_eq!(
        text.matches(&whole).count(),
        1,
        "`{whole}` once in:\n{text}"
    );
    let at = text.find(&whole).unwrap() + before.len();
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{col}")
}

/// Parsing `text` fails at the place `needle` marks (see [`loc`]) with a message containing
/// `message`, shown as `file:line:col: message`.
fn fails_at(text: &str, needle: &str, message: &str) {
    let err = match parse(text) {
        Ok(_) => panic!("expected an error `{message}` in:\n{text}"),
        Err(e) => e,
    };
    let want = format!("{FILE}:{}: ", loc(text, needle));
    assert!(
        err.starts_with(&want),
        "expected `{want}` at the start of: {err}"
    );
    assert!(err.contains(message), "expected `{message}` in: {err}");
}

#[test]
fn a_complete_document_comes_out_as_written() {
    let text = r#"version: 1
images:
  - name: full
    tag: "2.1"
    base: registry.example/base/img:1.0
    platforms: [linux/amd64, linux/arm64]
    user: {name: svc, uid: 2000, gid: 3000, group: staff, home: /var/svc, allow_root: false}
    workdir: /srv
    env: {B: "2", A: one}
    ports: [8080, "53/udp"]
    volumes: [/data, /cache]
    entrypoint: [/bin/svc, --flag]
    cmd: [serve]
    labels: {org.example.l: lv}
    annotations: {org.example.a: av}
    stop_signal: SIGINT
    healthcheck:
      test: [svc, health]
      interval: 30s
      timeout: 1m30s
      retries: 4
      start_period: 500ms
    size_limit: 25MiB
    ca_certificates: true
    layers:
      - name: bin
        contents:
          - cargo: svc
            dest: /usr/bin/svc
          - cargo: {package: tools, bin: t}
            dest: /usr/bin/t
            mode: "0750"
            owner: user
      - name: data
        contents:
          - path: files
            dest: /srv/files
            owner: "1000:1001"
"#;
    let f = parse_ok(text);
    assert_eq!(f.version.value, 1);
    assert_eq!(f.images.len(), 1);
    let i = &f.images[0];
    assert_eq!(i.name.value, "full");
    assert_eq!(
        (i.name.referenced.line(), i.name.referenced.column()),
        (3, 11)
    );
    assert_eq!(i.tag.as_ref().unwrap().value, "2.1");
    assert_eq!(
        i.base.as_ref().unwrap().value,
        "registry.example/base/img:1.0"
    );
    let platforms: Vec<&str> = i.platforms.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let u = &i.user.value;
    assert_eq!(
        (u.name.as_str(), u.uid, u.gid, u.group.as_deref()),
        ("svc", 2000, Some(3000), Some("staff"))
    );
    assert_eq!((u.home.as_deref(), u.allow_root), (Some("/var/svc"), false));
    assert_eq!(i.workdir.as_ref().unwrap().value, "/srv");
    let env: Vec<(&str, &str)> = i
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(env, [("A", "one"), ("B", "2")]);
    let ports: Vec<String> = i.ports.iter().map(|p| p.value.to_string()).collect();
    assert_eq!(ports, ["8080/tcp", "53/udp"]);
    let volumes: Vec<&str> = i.volumes.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(volumes, ["/data", "/cache"]);
    assert_eq!(i.entrypoint, ["/bin/svc", "--flag"]);
    assert_eq!(i.cmd, ["serve"]);
    assert_eq!(i.labels["org.example.l"], "lv");
    assert_eq!(i.annotations["org.example.a"], "av");
    assert_eq!(i.stop_signal.as_deref(), Some("SIGINT"));
    let h = i.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["svc", "health"]);
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    assert_eq!(secs(h.interval.map(|d| d.0)), Some(30.0));
    assert_eq!(secs(h.timeout.map(|d| d.0)), Some(90.0));
    assert_eq!(secs(h.start_period.map(|d| d.0)), Some(0.5));
    assert_eq!(h.retries, Some(4));
    assert_eq!(i.size_limit.as_ref().unwrap().value.0, 25 << 20);
    assert!(i.ca_certificates);
    assert_eq!(i.layers.len(), 2);
    let (bin, data) = (&i.layers[0], &i.layers[1]);
    assert_eq!(
        (bin.name.value.as_str(), data.name.value.as_str()),
        ("bin", "data")
    );
    let c0 = &bin.contents[0];
    let cargo0 = &c0.cargo.as_ref().unwrap().value;
    assert_eq!(
        (cargo0.package.as_str(), cargo0.bin.as_str()),
        ("svc", "svc")
    );
    assert_eq!(c0.dest.value, "/usr/bin/svc");
    assert!(c0.path.is_none() && c0.mode.is_none() && c0.owner.is_none());
    let c1 = &bin.contents[1];
    let cargo1 = &c1.cargo.as_ref().unwrap().value;
    assert_eq!(
        (cargo1.package.as_str(), cargo1.bin.as_str()),
        ("tools", "t")
    );
    assert_eq!(c1.mode.as_ref().unwrap().value.0, 0o750);
    assert_eq!(format!("{:?}", c1.owner.as_ref().unwrap().value), "User");
    let c2 = &data.contents[0];
    assert!(c2.cargo.is_none());
    assert_eq!(c2.path.as_ref().unwrap().value, "files");
    assert_eq!(c2.dest.value, "/srv/files");
    assert_eq!(
        format!("{:?}", c2.owner.as_ref().unwrap().value),
        "Ids(1000, 1001)"
    );
}

#[test]
fn omitted_fields_take_their_defaults() {
    let f = parse_ok("images:\n  - name: app\n    user: {name: app, uid: 1000}\n");
    assert_eq!(f.version.value, 1, "version defaults to 1");
    let i = &f.images[0];
    assert!(
        i.tag.is_none(),
        "tag: none in the spec (the plan says latest)"
    );
    assert!(i.base.is_none() && i.workdir.is_none() && i.stop_signal.is_none());
    assert!(i.platforms.is_empty() && i.ports.is_empty() && i.volumes.is_empty());
    assert!(i.env.is_empty() && i.labels.is_empty() && i.annotations.is_empty());
    assert!(i.entrypoint.is_empty() && i.cmd.is_empty() && i.layers.is_empty());
    assert!(i.healthcheck.is_none() && i.size_limit.is_none());
    assert!(!i.ca_certificates);
    let u = &i.user.value;
    assert!(u.gid.is_none() && u.group.is_none() && u.home.is_none() && !u.allow_root);
    let h = parse_ok(&doc("    healthcheck: {test: [x]}\n"));
    let h = h.images[0].healthcheck.as_ref().unwrap();
    assert!(h.interval.is_none() && h.timeout.is_none() && h.start_period.is_none());
    assert!(h.retries.is_none());
}

#[test]
fn an_empty_image_list_is_an_error() {
    fails_at(
        "version: 1\nimages: []\n",
        "images: |[]",
        "`images` is empty: expected at least one image",
    );
}

#[test]
fn only_version_1_exists() {
    let text = "version: 2\nimages: []\n";
    fails_at(text, "version: |2", "unsupported version 2: expected 1");
}

#[test]
fn ports() {
    for (written, want) in [
        ("8080", "8080/tcp"),
        ("1", "1/tcp"),
        ("65535", "65535/tcp"),
        ("\"53/udp\"", "53/udp"),
        ("\"8082/tcp\"", "8082/tcp"),
    ] {
        let f = parse_ok(&doc(&format!("    ports: [{written}]\n")));
        assert_eq!(f.images[0].ports[0].value.to_string(), want, "{written}");
    }
    for (written, message) in [
        ("70000", "expected a port number 1-65535, found 70000"),
        ("0", "expected a port number 1-65535, found 0"),
        ("-1", "expected a port number 1-65535"),
        ("\"http\"", "expected a port number 1-65535, found `http`"),
        ("\"80/sctp\"", "expected protocol tcp or udp, found `sctp`"),
        ("{p: 1}", "expected a port: a number 1-65535 or a string"),
    ] {
        let needle = format!("[|{written}]");
        fails_at(&doc(&format!("    ports: [{written}]\n")), &needle, message);
    }
}

#[test]
fn durations() {
    let ms = |text: &str| {
        let f = parse_ok(&doc(&format!(
            "    healthcheck:\n      test: [x]\n      interval: {text}\n"
        )));
        f.images[0]
            .healthcheck
            .as_ref()
            .unwrap()
            .interval
            .unwrap()
            .0
    };
    use std::time::Duration as D;
    for (written, want) in [
        ("30s", D::from_secs(30)),
        ("1m30s", D::from_secs(90)),
        ("500ms", D::from_millis(500)),
        ("1h", D::from_secs(3600)),
        ("\"10s\"", D::from_secs(10)),
        ("1ms", D::from_millis(1)),
        ("0s", D::ZERO),
        ("1h2m3s4ms5us6ns", D::new(3723, 4_005_006)),
    ] {
        assert_eq!(ms(written), want, "{written}");
    }
    for written in ["30 seconds", "\"30\"", "s", "\"\"", "1x", "1.5s", "-1s"] {
        let text = doc(&format!(
            "    healthcheck:\n      test: [x]\n      interval: {written}\n"
        ));
        fails_at(
            &text,
            &format!("interval: |{written}"),
            "expected a duration",
        );
    }
    // Docker refuses health check durations between 0 and 1ms.
    for written in ["2us", "999999ns"] {
        let text = doc(&format!(
            "    healthcheck:\n      test: [x]\n      interval: {written}\n"
        ));
        fails_at(
            &text,
            &format!("interval: |{written}"),
            "is under 1ms: expected 0 (the engine's default) or at least 1ms",
        );
    }
}

#[test]
fn byte_sizes() {
    for (written, want) in [
        ("500MB", 500_000_000),
        ("1MiB", 1 << 20),
        ("25MiB", 25 << 20),
        ("2kB", 2_000),
        ("2KB", 2_000),
        ("3KiB", 3 << 10),
        ("1GB", 1_000_000_000),
        ("1GiB", 1 << 30),
        ("10B", 10),
        ("\"1 MB\"", 1_000_000),
        ("4096", 4096),
        ("\"4096\"", 4096),
    ] {
        let f = parse_ok(&doc(&format!("    size_limit: {written}\n")));
        let got = f.images[0].size_limit.as_ref().unwrap().value.0;
        assert_eq!(got, want, "{written}");
    }
    for (written, message) in [
        ("500mb", "expected a size like \"500MB\""),
        ("MB", "expected a size like \"500MB\""),
        ("1.5GB", "expected a size like \"500MB\""),
        ("\"-1\"", "expected a size like \"500MB\""),
        ("99999999999GB", "expected a size like \"500MB\""),
        ("[1]", "expected a size like \"500MB\""),
    ] {
        let text = doc(&format!("    size_limit: {written}\n"));
        fails_at(&text, &format!("size_limit: |{written}"), message);
    }
}

#[test]
fn modes() {
    for (written, want) in [
        ("\"0755\"", 0o755),
        ("0644", 0o644),
        ("\"0o755\"", 0o755),
        ("\"4755\"", 0o4755),
        ("\"7777\"", 0o7777),
        ("\"0\"", 0),
    ] {
        let f = parse_ok(&content(&format!("mode: {written}")));
        let mode = f.images[0].layers[0].contents[0]
            .mode
            .as_ref()
            .unwrap()
            .value
            .0;
        assert_eq!(mode, want, "{written}");
    }
    for written in ["0999", "\"0o\"", "\"10000\"", "rwxr-xr-x", "\"\"", "[7]"] {
        fails_at(
            &content(&format!("mode: {written}")),
            &format!("mode: |{written}"),
            "expected an octal file mode such as 0755 or 0644",
        );
    }
}

#[test]
fn owners() {
    for (written, want) in [
        ("root", "Root"),
        ("user", "User"),
        ("\"1000:1000\"", "Ids(1000, 1000)"),
        ("\"0:5\"", "Ids(0, 5)"),
    ] {
        let f = parse_ok(&content(&format!("owner: {written}")));
        let owner = &f.images[0].layers[0].contents[0].owner.as_ref().unwrap();
        assert_eq!(format!("{:?}", owner.value), want, "{written}");
    }
    for written in ["admin", "\"1000\"", "\"a:b\"", "\"1000:\"", "\"-1:0\""] {
        fails_at(
            &content(&format!("owner: {written}")),
            &format!("owner: |{written}"),
            "expected `root`, `user` or `UID:GID` for owner",
        );
    }
}

#[test]
fn cargo_sources() {
    for (written, package, bin) in [
        ("ael", "ael", "ael"),
        ("{package: ael}", "ael", "ael"),
        ("{package: ael, bin: tool}", "ael", "tool"),
    ] {
        let text = doc(&format!(
            "    layers:\n      - name: l\n        contents:\n          - cargo: {written}\n            dest: /x\n"
        ));
        let f = parse_ok(&text);
        let c = &f.images[0].layers[0].contents[0]
            .cargo
            .as_ref()
            .unwrap()
            .value;
        assert_eq!(
            (c.package.as_str(), c.bin.as_str()),
            (package, bin),
            "{written}"
        );
    }
    let text = doc(
        "    layers:\n      - name: l\n        contents:\n          - cargo: {package: a, binary: b}\n            dest: /x\n",
    );
    fails_at(
        &text,
        "{package: a",
        "expected a package name or a map {package: NAME, bin: NAME} for `cargo`",
    );
}

#[test]
fn unknown_fields_are_rejected_where_they_are_written() {
    for (text, field) in [
        (doc("extra: 1\n"), "extra"),
        (doc("    layerz: []\n"), "layerz"),
        (
            "version: 1\nimages:\n  - name: app\n    user: {name: app, uid: 1000, shell: sh}\n"
                .to_string(),
            "shell",
        ),
        (
            doc("    healthcheck: {test: [x], intervall: 30s}\n"),
            "intervall",
        ),
        (content("chmod: \"0755\""), "chmod"),
        (
            doc("    layers:\n      - name: l\n        files: []\n        contents: []\n"),
            "files",
        ),
    ] {
        fails_at(&text, field, &format!("unknown field `{field}`, expected"));
    }
}

#[test]
fn type_and_syntax_errors_name_the_place() {
    for (text, needle, message) in [
        (
            doc("    healthcheck: {test: [x], retries: three}\n"),
            "three",
            "expected a non-negative integer",
        ),
        (
            doc("    ca_certificates: maybe\n"),
            "maybe",
            "expected true or false",
        ),
        (doc("    ports: 8080\n"), "8080", "expected a list here"),
        (
            "version: 1\nimages:\n  - name: app\n    user: {name: app, uid: 1000\n".to_string(),
            "{name",
            "",
        ),
    ] {
        let err = parse(&text).expect_err(needle);
        assert!(err.starts_with(&format!("{FILE}:")), "{err}");
        assert!(err.contains(message), "expected `{message}` in: {err}");
        if !message.is_empty() {
            fails_at(&text, needle, message);
        }
    }
    let err = parse("images:\n  - name: app\n").unwrap_err();
    assert!(err.contains("missing field `user`"), "{err}");
}

#[test]
fn load_reads_the_file_and_resolves_relative_paths_against_its_directory() {
    let s = spec::load(Path::new("images/images.yaml")).unwrap();
    assert_eq!(s.path, Path::new("images/images.yaml"));
    assert_eq!(s.dir, Path::new("images"));
    let names: Vec<&str> = s
        .file
        .images
        .iter()
        .map(|i| i.name.value.as_str())
        .collect();
    assert_eq!(names, ["ael", "native-tools"]);

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("images.yaml");
    std::fs::write(&bad, doc("    ports: [0]\n")).unwrap();
    let err = spec::load(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:5:13: ", bad.display())),
        "{err}"
    );
    let missing = tmp.path().join("nope.yaml");
    let err = spec::load(&missing).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
