//! Property tests (issue 11, item 8): the parsers of what people write never
//! panic, their errors always carry a location when they come from
//! images.yaml, and what they accept comes back the same when printed.
//!
//! The cases are bounded so the whole file runs in a few seconds in a debug
//! build; proptest keeps any failure it finds in `proptest-regressions/`
//! (commit that file: the case is then run first, every time).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use aelimg::error::Error;
use aelimg::plan::{self, EntryKind, PlanOptions, Workspace};
use aelimg::platform::Platform;
use aelimg::reference::Reference;
use aelimg::spec::{self, LoadedSpec, Port};
use aelimg::units::{ByteSize, Duration};
use aelimg::values;

const FILE: &str = "fuzz/images.yaml";

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// A parse error comes from the file: it is a located spec error naming it.
fn located(e: &Error) -> Result<(), TestCaseError> {
    match e {
        Error::Spec(l) => {
            prop_assert_eq!(l.file.as_path(), Path::new(FILE));
            prop_assert!(
                l.line > 0 && l.column > 0,
                "no location in `{}`",
                e.to_string()
            );
            let shown = e.to_string();
            prop_assert!(!shown.contains('\n'), "a message is one line: {:?}", shown);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!("not a spec error: {other:?}"))),
    }
}

// ---------------------------------------------------------------------------
// YAML-ish text: the schema's keys, near misses and hostile scalars.

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "version",
            "images",
            "name",
            "tag",
            "base",
            "platforms",
            "user",
            "uid",
            "gid",
            "group",
            "home",
            "allow_root",
            "workdir",
            "env",
            "ports",
            "volumes",
            "entrypoint",
            "cmd",
            "labels",
            "annotations",
            "stop_signal",
            "healthcheck",
            "test",
            "interval",
            "size_limit",
            "ca_certificates",
            "layers",
            "contents",
            "path",
            "dest",
            "mode",
            "owner",
            "cargo",
            "volumse",
            "<<",
        ])
        .prop_map(str::to_string),
        "[A-Za-z_][A-Za-z0-9_]{0,6}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1",
            "0",
            "-1",
            "65536",
            "8082",
            "\"53/udp\"",
            "\"+755\"",
            "0755",
            "true",
            "\"yes please\"",
            "null",
            "~",
            "SIGTERM",
            "SIGFOO",
            "30s",
            "10us",
            "500MB",
            "/etc/passwd",
            "/app/..",
            "relative",
            "\"a\\nb\"",
            "\"a\\0b\"",
            "\"a:b\"",
            "linux/amd64",
            "linux/mips",
            "\"../x\"",
            "&a x",
            "*a",
            "[]",
            "{}",
            "[x, y]",
            "{name: app, uid: 1000}",
            "\"",
            "'",
            "|",
            ">-",
            "- x",
            "? x",
            "!!binary aGk=",
            "!tag x",
            "%YAML 1.2",
            "---",
            "...",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ]
}

/// Lines of `key: value`, `- item` and nesting, in random order and indentation.
fn yamlish() -> impl Strategy<Value = String> {
    let line = (0usize..6, prop::bool::ANY, key(), scalar()).prop_map(|(indent, item, k, v)| {
        let pad = "  ".repeat(indent);
        let dash = if item { "- " } else { "" };
        if v.is_empty() {
            format!("{pad}{dash}{k}:\n")
        } else {
            format!("{pad}{dash}{k}: {v}\n")
        }
    });
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.concat())
}

proptest! {
    #![proptest_config(config(300))]

    /// Any bytes: no panic; an error is located in the file.
    #[test]
    fn spec_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = spec::parse(Path::new(FILE), &text) {
            located(&e)?;
        }
    }

    /// YAML-ish text made of the schema's own words: no panic; an error is
    /// located in the file.
    #[test]
    fn spec_parse_never_panics_on_yamlish(text in yamlish()) {
        if let Err(e) = spec::parse(Path::new(FILE), &text) {
            located(&e)?;
        }
    }
}

// ---------------------------------------------------------------------------
// A whole image with hostile values where people write strings: whatever the
// values, parsing and planning never panic, errors are located, and an
// accepted plan writes one line per account into /etc/passwd, one uid 0.

/// A workspace with one binary, `app`.
struct OneBinary;

impl Workspace for OneBinary {
    fn binaries(&self, package: &str) -> Option<Vec<String>> {
        (package == "app").then(|| vec!["app".to_string()])
    }
    fn members(&self) -> Vec<String> {
        vec!["app".to_string()]
    }
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_-]{0,8}",
        "/[a-z/.]{0,12}",
        prop::sample::select(vec![
            "root",
            "nobody",
            "nogroup",
            "app",
            "a:b",
            "a\nb",
            "a\0b",
            "/app/..",
            "/",
            "//x//",
            "",
            " ",
            "-x",
            "1000",
            "/etc/passwd",
            "/etc/group/x",
            "x=y",
            "SIGTERM",
            "15",
            "TERM",
        ])
        .prop_map(str::to_string),
        "[ -~\\n\\t\\x00]{0,10}",
    ]
}

/// A YAML double-quoted scalar holding exactly `s` (JSON's escapes are YAML's).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Mostly a value that is valid for its field, sometimes a hostile one.
fn field(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![9 => valid, 1 => hostile_string()].boxed()
}

fn image_doc() -> impl Strategy<Value = (String, Vec<String>)> {
    let name = || {
        prop_oneof![
            8 => "[a-z_][a-z0-9_]{0,6}",
            1 => Just("root".to_string()),
            1 => Just("nobody".to_string())
        ]
    };
    let dir = || "/[a-z]{1,5}(/[a-z.]{1,5}){0,2}/?";
    let fields = vec![
        field(name()),
        field(name()),
        field(dir()),
        field(dir()),
        field(dir()),
        field("[A-Z_][A-Z0-9_]{0,6}"),
        field("[ -~\\n]{0,10}"),
        field("[a-z.]{1,10}"),
        field("/[a-z]{1,8}"),
        field(
            prop::sample::select(vec!["SIGTERM", "TERM", "15", "sigint", "SIGRTMIN+2"])
                .prop_map(str::to_string),
        ),
    ];
    (
        fields,
        (
            prop_oneof![1 => Just(0u32), 1 => Just(65534), 2 => Just(10001), 6 => 1u32..70000],
            prop::option::weighted(0.3, prop_oneof![Just(0u32), Just(65534), 1u32..70000]),
        ),
        prop::bool::ANY,
    )
        .prop_map(|(s, (uid, gid), allow_root)| {
            let gid = gid.map(|g| format!(", gid: {g}")).unwrap_or_default();
            let text = format!(
                "version: 1\nimages:\n  - name: app\n    platforms: [linux/amd64]\n    \
                 user: {{name: {}, uid: {uid}{gid}, group: {}, home: {}, allow_root: {allow_root}}}\n    \
                 workdir: {}\n    volumes: [{}]\n    env: {{{}: {}}}\n    labels: {{{}: x}}\n    \
                 entrypoint: [{}]\n    stop_signal: {}\n    layers:\n      - name: l\n        contents:\n          \
                 - {{cargo: app, dest: /usr/local/bin/app}}\n",
                q(&s[0]),
                q(&s[1]),
                q(&s[2]),
                q(&s[3]),
                q(&s[4]),
                q(&s[5]),
                q(&s[6]),
                q(&s[7]),
                q(&s[8]),
                q(&s[9]),
            );
            (text, s)
        })
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn hostile_values_never_reach_passwd((text, _parts) in image_doc()) {
        let file = match spec::parse(Path::new(FILE), &text) {
            Ok(f) => f,
            Err(e) => return located(&e),
        };
        let loaded = LoadedSpec {
            path: PathBuf::from(FILE),
            dir: PathBuf::from("."),
            file,
        };
        let opts = PlanOptions {
            platforms: Some(vec![Platform::LinuxAmd64]),
            ..PlanOptions::default()
        };
        let plan = match plan::resolve(&loaded, &opts, &OneBinary) {
            Ok(p) => p,
            Err(e) => return located(&e),
        };
        let image = &plan.images[0];
        let passwd = image
            .layers
            .iter()
            .flat_map(|l| &l.entries)
            .find_map(|e| match &e.kind {
                EntryKind::Generated { what, bytes, .. } if what == "passwd" => Some(bytes.clone()),
                _ => None,
            })
            .expect("a passwd file");
        let passwd = String::from_utf8(passwd).unwrap();
        let lines: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).collect();
        prop_assert!(lines.iter().all(|l| l.len() == 7), "{}", passwd);
        prop_assert_eq!(lines.iter().filter(|l| l[2] == "0").count(), 1, "{}", passwd);
        let expected = if image.user.uid == 0 || image.user.uid == 65534 { 2 } else { 3 };
        prop_assert_eq!(lines.len(), expected, "{}", passwd);
        prop_assert!(passwd.ends_with('\n') && !passwd.contains('\0'));
        for e in &image.config.env {
            let (k, v) = e.split_once('=').unwrap();
            prop_assert!(values::env_name(k).is_ok() && !v.contains('\0'), "{:?}", e);
        }
        for a in image.config.entrypoint.iter().chain(&image.config.cmd) {
            prop_assert!(!a.contains('\0'));
        }
        for l in &image.layers {
            for e in &l.entries {
                prop_assert!(values::entry_path(&e.path).is_ok(), "{:?}", e.path);
            }
        }
    }
}

/// The generator is not vacuous: a fair share of its images get through
/// parsing and planning (so the passwd property above is exercised), and a
/// fair share are refused.
#[test]
fn hostile_images_are_both_accepted_and_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = image_doc();
    let opts = PlanOptions {
        platforms: Some(vec![Platform::LinuxAmd64]),
        ..PlanOptions::default()
    };
    let (mut planned, total) = (0, 300);
    for _ in 0..total {
        let (text, _) = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(file) = spec::parse(Path::new(FILE), &text) else {
            continue;
        };
        let loaded = LoadedSpec {
            path: PathBuf::from(FILE),
            dir: PathBuf::from("."),
            file,
        };
        if plan::resolve(&loaded, &opts, &OneBinary).is_ok() {
            planned += 1;
        }
    }
    assert!(
        planned >= total / 20 && planned <= total * 19 / 20,
        "{planned} of {total} generated images were planned"
    );
}

// ---------------------------------------------------------------------------
// The small parsers: never panic, and round-trip what they accept.

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn reference_round_trips(s in prop_oneof![
        "\\PC{0,40}",
        "([a-z0-9.-]{1,10}(:[0-9]{1,5})?/)?[a-z0-9._/-]{1,20}(:[A-Za-z0-9_.-]{1,10})?(@sha256:[0-9a-f]{64})?",
    ]) {
        if let Ok(r) = Reference::parse(&s) {
            let again = Reference::parse(&r.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&r), "{}", r);
        }
    }

    #[test]
    fn platform_round_trips(s in prop_oneof![
        "\\PC{0,20}",
        "(linux|windows|)(/(amd64|arm64|x86_64|aarch64|arm|))?(/v[0-9])?(,linux/(amd64|arm64))*",
    ]) {
        if let Ok(p) = Platform::parse(&s) {
            prop_assert_eq!(Platform::parse(&p.to_string()), Ok(p));
        }
        if let Ok(list) = Platform::parse_list(&s) {
            prop_assert!(!list.is_empty());
            let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
            prop_assert_eq!(Platform::parse_list(&shown.join(",")), Ok(list));
        }
    }

    #[test]
    fn sizes_parse_or_refuse(s in prop_oneof!["\\PC{0,16}", "[0-9]{0,22} ?(B|k|kB|KB|M|MB|G|GB|KiB|MiB|GiB|TB|)"]) {
        let _ = ByteSize::parse(&s);
    }

    #[test]
    fn sizes_round_trip(n in any::<u64>(), unit in prop::sample::select(vec![("", 1u64), ("kB", 1_000), ("MiB", 1 << 20), ("GB", 1_000_000_000)])) {
        let n = n >> 34;
        let parsed = ByteSize::parse(&format!("{n}{}", unit.0)).map(|b| b.0);
        prop_assert_eq!(parsed, Ok(n * unit.1));
    }

    #[test]
    fn durations_parse_or_refuse(s in prop_oneof!["\\PC{0,16}", "([0-9]{0,21}(ns|us|µs|ms|s|m|h|d|x|))*"]) {
        let _ = Duration::parse(&s);
    }

    #[test]
    fn durations_round_trip(h in 0u64..10_000, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
        let d = Duration::parse(&format!("{h}h{m}m{s}s{ms}ms")).unwrap().0;
        prop_assert_eq!(d.as_millis(), u128::from(((h * 60 + m) * 60 + s) * 1000 + ms));
    }

    #[test]
    fn ports_round_trip(s in prop_oneof!["\\PC{0,12}", "[+-]?[0-9]{0,6}(/(tcp|udp|sctp|TCP|))?"]) {
        if let Ok(p) = Port::parse(&s) {
            prop_assert!(p.number > 0);
            prop_assert_eq!(Port::parse(&p.to_string()), Ok(p));
        }
    }

    #[test]
    fn value_rules_never_panic(s in "\\PC{0,40}|[ -~\\n\\x00]{0,20}") {
        let _ = values::account_name("user", &s);
        let _ = values::env_name(&s);
        let _ = values::label_key(&s);
        let _ = values::stop_signal(&s);
        let _ = values::entry_path(&s);
        if let Ok(h) = values::home(&s) {
            prop_assert!(h.starts_with('/') && !h.contains(':') && !h.chars().any(char::is_control));
            prop_assert!(!h.split('/').any(|c| c == ".."));
        }
        let quoted = values::quoted(&s);
        prop_assert!(!quoted.contains('\n') && !quoted.contains('\0'));
    }
}
