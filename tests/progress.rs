//! What a build shows as it goes, through the command line with the
//! prebuilt stand-in binaries (no cargo): with stderr not a terminal (a
//! pipe, as in CI), one plain line per step, each layer `built` on a cold
//! cache and `cached` on the next build; nothing at all on stderr with
//! `--quiet`; stdout (the size report, `--json`) the same in every mode;
//! under a terminal (a pseudo-terminal from `script`), bars drawn with the
//! same step lines above them; and, at the library level, a real cargo build
//! of a tiny workspace reporting its units against an exact estimate.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::{json, repo, run, scratch};

/// `aelimg build` of images/images.yaml (both images, both platforms) with
/// the stand-in binaries, into `dir/out`, with the layer cache `dir/cache`.
fn build_cmd(dir: &Path, extra: &[&str]) -> Command {
    let mut c = common::aelimg();
    c.arg("build")
        .arg("--prebuilt")
        .arg(repo().join("fixtures/prebuilt"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", dir.join("out").display()))
        .args(extra);
    c
}

fn build(dir: &Path, extra: &[&str]) -> Output {
    let o = run(&mut build_cmd(dir, extra));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `layer IMAGE PLATFORMS `NAME`: HOW … sha256:… …` line of stderr.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LayerLine {
    image: String,
    platforms: Vec<String>,
    layer: String,
    how: String,
    digest: String,
}

fn layer_lines(stderr: &str) -> Vec<LayerLine> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("layer "))
        .map(|l| {
            let (what, rest) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
            let mut words = what.splitn(3, ' ');
            let image = words.next().unwrap().to_string();
            let platforms = words.next().unwrap().split(',').map(String::from).collect();
            let layer = words.next().unwrap().trim_matches('`').to_string();
            let how = rest.split(' ').next().unwrap().to_string();
            let digest = rest
                .split(' ')
                .find(|w| w.starts_with("sha256:"))
                .unwrap_or_else(|| panic!("no digest in {l}"))
                .to_string();
            LayerLine {
                image,
                platforms,
                layer,
                how,
                digest,
            }
        })
        .collect()
}

/// (image, platform, layer name, short digest, origin) of every layer of a
/// `--json` size report.
fn report_layers(report: &serde_json::Value) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for p in report.as_array().unwrap() {
        let image = p["image"].as_str().unwrap();
        let image = image.split(':').next().unwrap().to_string();
        for l in p["layers"].as_array().unwrap() {
            out.push((
                image.clone(),
                p["platform"].as_str().unwrap().to_string(),
                l["name"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap()[..19].to_string(),
                l["origin"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The keys of every object of a size report, in order: what `--json`
/// promises, whatever else changes.
fn shape(report: &serde_json::Value) -> BTreeSet<Vec<String>> {
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect();
    let mut out = BTreeSet::new();
    for p in report.as_array().unwrap() {
        out.insert(keys(p));
        for l in p["layers"].as_array().unwrap() {
            out.insert(keys(l));
        }
    }
    out
}

/// Every layer of the report has exactly one line, naming its image, its
/// platform, its name and its digest, and saying `how`.
fn one_line_per_layer(stderr: &str, report: &serde_json::Value, how: &str) {
    let lines = layer_lines(stderr);
    let layers = report_layers(report);
    // Distinct layers: a layer with the same contents (in another image, or
    // with no per-platform file on another platform) is one blob, built
    // once, and one line, naming the first image that has it.
    let distinct: BTreeSet<&str> = layers.iter().map(|(_, _, _, d, _)| d.as_str()).collect();
    assert_eq!(lines.len(), distinct.len(), "{stderr}");
    for (image, platform, name, digest, origin) in &layers {
        assert_eq!(origin, how, "{image} {platform} {name}");
        let matching: Vec<&LayerLine> = lines.iter().filter(|l| &l.digest == digest).collect();
        assert_eq!(matching.len(), 1, "{image} {platform} {name}: {stderr}");
        assert_eq!(&matching[0].layer, name, "{stderr}");
        assert!(
            matching[0].platforms.contains(platform),
            "{platform} not in {:?}",
            matching[0].platforms
        );
        assert_eq!(matching[0].how, how, "{stderr}");
    }
}

#[test]
fn without_a_terminal_each_layer_is_one_plain_line_built_then_cached() {
    let dir = scratch("progress-plain");
    let first = build(&dir, &["--json"]);
    let (stderr, report) = (text(&first.stderr), json(&text(&first.stdout)));
    assert!(
        stderr
            .lines()
            .any(|l| l == "payload: 4 prebuilt binaries for linux/amd64, linux/arm64/v8"),
        "{stderr}"
    );
    one_line_per_layer(&stderr, &report, "built");
    for l in stderr.lines().filter(|l| l.starts_with("layer ")) {
        assert!(
            l.contains(" -> ") && l.ends_with('s') && l.contains(" in "),
            "sizes and time: {l}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "no terminal codes in a log: {stderr:?}"
    );
    assert!(
        stderr.contains("wrote oci:"),
        "the writes are still told: {stderr}"
    );

    let second = build(&dir, &["--json"]);
    let (stderr2, report2) = (text(&second.stderr), json(&text(&second.stdout)));
    one_line_per_layer(&stderr2, &report2, "cached");
    // The same layers, the same digests; only their origin changed.
    let strip = |ls: Vec<(String, String, String, String, String)>| {
        ls.into_iter()
            .map(|(i, p, n, d, _)| (i, p, n, d))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(report_layers(&report)),
        strip(report_layers(&report2))
    );
    assert_eq!(shape(&report), shape(&report2));
    assert_eq!(
        shape(&report).into_iter().collect::<Vec<_>>(),
        [
            vec!["compressed", "digest", "name", "origin", "uncompressed"],
            vec![
                "compressed",
                "image",
                "layers",
                "limit",
                "manifest",
                "platform",
                "uncompressed",
                "within_limit"
            ],
        ]
        .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>()),
        "the --json report keeps its fields"
    );
}

#[test]
fn quiet_prints_nothing_on_stderr_and_stdout_is_unchanged() {
    let dir = scratch("progress-quiet");
    // Cold cache: every layer built, not a word on stderr.
    let cold = build(&dir, &["--quiet"]);
    assert_eq!(text(&cold.stderr), "", "--quiet on a successful build");
    let table = text(&cold.stdout);
    assert!(
        table.contains("ael:latest") && table.contains("native-tools:latest"),
        "the size report is still on stdout: {table}"
    );
    // Warm cache: `-q` before the command, as a global flag; stdout is
    // byte for byte what a build without it prints.
    let mut quiet = common::aelimg();
    quiet.arg("-q");
    let quiet = run(quiet.args(build_cmd(&dir, &["--json"]).get_args()));
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert_eq!(text(&quiet.stderr), "");
    let loud = build(&dir, &["--json"]);
    assert!(!loud.stderr.is_empty());
    assert_eq!(text(&quiet.stdout), text(&loud.stdout));
    json(&text(&quiet.stdout));

    // A failure still says why, and only that.
    let failed = run(&mut build_cmd(
        &dir,
        &["--quiet", "--platform", "linux/s390x"],
    ));
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed.stderr));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn on_a_terminal_bars_are_drawn_and_steps_are_still_told() {
    let dir = scratch("progress-tty");
    // `script` gives the command a pseudo-terminal for stdin, stdout and
    // stderr, and copies what it writes to stdout.
    let cmd = build_cmd(&dir, &["--compression", "gzip"]);
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let o = run(Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .current_dir(repo())
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120"));
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}");
    // The finished steps are plain lines above the bars…
    assert!(
        out.contains("payload: 4 prebuilt binaries for linux/amd64, linux/arm64/v8"),
        "{out}"
    );
    let lines = out.replace('\r', "\n");
    assert!(
        lines
            .lines()
            .any(|l| l.contains("layer ael ") && l.contains("`ael`: built")),
        "{out}"
    );
    // …and the bars were drawn (and cleared) with terminal codes.
    assert!(out.contains('\u{1b}'), "no terminal codes: {out:?}");
}

/// Records the payload events of a build.
#[derive(Default)]
struct PayloadEvents(std::sync::Mutex<Vec<String>>);

impl aelimg::progress::Progress for PayloadEvents {
    fn event(&self, e: &aelimg::progress::Event<'_>) {
        use aelimg::progress::Event;
        let line = match e {
            Event::PayloadStarted { estimate, .. } => format!("started {estimate:?}"),
            Event::PayloadUnit {
                package,
                name,
                fresh,
                done,
                total,
            } => format!("unit {package}/{name} fresh={fresh} {done}/{total:?}"),
            Event::PayloadOutput { line } => format!("output {line}"),
            Event::PayloadFinished { units, fresh, .. } => format!("finished {units} {fresh}"),
            Event::PayloadUpToDate { binaries, .. } => format!("up to date {binaries}"),
            Event::PayloadRelinked { platforms, .. } => format!("relinked {}", platforms.len()),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

/// A real cargo build of a tiny workspace (a library with a build script,
/// and a binary using it) through `CargoBuilder`: the estimate is cargo's
/// count, every unit is reported compiled, then fresh, and cargo's stderr
/// arrives as lines.
#[test]
fn cargo_builds_report_units_against_an_exact_estimate_and_pass_on_stderr() {
    use aelimg::cargo::PayloadBuilder;

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    tiny_workspace(ws);
    let builder = dev_builder(ws, false);
    let (_, _, wanted) = app_on_host();
    let run = || {
        let seen = PayloadEvents::default();
        let bins = builder.build(&wanted, &seen).unwrap();
        assert!(bins.values().all(|p| p.is_file()), "{bins:?}");
        seen.0.into_inner().unwrap()
    };
    let first = run();
    let units = |events: &[String]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.starts_with("unit "))
            .cloned()
            .collect()
    };
    assert_eq!(first[0], "started Some(3)", "{first:#?}");
    assert_eq!(
        units(&first),
        [
            "unit dep/build-script-build fresh=false 1/Some(3)",
            "unit dep/dep fresh=false 2/Some(3)",
            "unit app/app fresh=false 3/Some(3)",
        ],
        "{first:#?}"
    );
    assert!(
        first
            .iter()
            .any(|e| e.starts_with("output ") && e.contains("Compiling app v0.1.0")),
        "{first:#?}"
    );
    assert_eq!(first.last().unwrap(), "finished 3 0");

    let again = run();
    assert_eq!(again[0], "started Some(3)");
    assert!(
        units(&again).iter().all(|u| u.contains("fresh=true")),
        "{again:#?}"
    );
    assert_eq!(again.last().unwrap(), "finished 3 3");
}

/// A workspace of a library with a build script (`dep`) and a binary that
/// uses it (`app`), written into `ws`.
/// The dependency list goes in through aelimg as cargo's rustc wrapper,
/// which cargo does not fingerprint: a binary cargo finds fresh but that
/// holds another list (as one an older aelimg linked would) is compiled
/// again, and then holds the list aelimg links now.
#[test]
fn a_binary_holding_another_dependency_list_is_compiled_again() {
    use std::io::{Seek as _, SeekFrom, Write as _};

    use aelimg::cargo::PayloadBuilder;
    use aelimg::cargo::auditable::{SECTION, section_in};

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    tiny_workspace(ws);
    let builder = dev_builder(ws, false);
    let (platform, id, wanted) = app_on_host();
    let run = || {
        let seen = PayloadEvents::default();
        let bins = builder.build(&wanted, &seen).unwrap();
        (
            bins[&(platform, id.clone())].clone(),
            seen.0.into_inner().unwrap(),
        )
    };
    let (bin, _) = run();
    let list = section_in(&bin)
        .unwrap()
        .unwrap_or_else(|| panic!("no {SECTION} in {}", bin.display()));
    let json = {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::ZlibDecoder::new(&list[..]), &mut out)
            .unwrap();
        out
    };
    assert!(json.contains(r#""name":"dep""#), "{json}");

    // Another list of the same size, written into the binary in place
    // (cargo's copy in deps/ is the same file): cargo still finds it fresh.
    let bytes = std::fs::read(&bin).unwrap();
    let at = bytes
        .windows(list.len())
        .position(|w| w == &list[..])
        .unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&bin).unwrap();
    f.seek(SeekFrom::Start(at as u64 + list.len() as u64 / 2))
        .unwrap();
    f.write_all(&[!list[list.len() / 2]]).unwrap();
    drop(f);
    assert_ne!(section_in(&bin).unwrap().as_ref(), Some(&list));

    let (bin, events) = run();
    assert!(events.contains(&"relinked 1".to_string()), "{events:?}");
    assert_eq!(
        section_in(&bin).unwrap().as_ref(),
        Some(&list),
        "the list aelimg links"
    );
    let (_, events) = run();
    assert!(
        !events.iter().any(|e| e.starts_with("relinked")),
        "{events:?}"
    );
}

/// The platform the tests build for.
fn host() -> aelimg::platform::Platform {
    aelimg::platform::Platform::parse_list(&common::host_platform()).unwrap()[0]
}

/// A builder of the workspace at `ws` in the dev profile, linking the
/// dependency lists through the aelimg built for these tests.
fn dev_builder(ws: &Path, trust_stamp: bool) -> aelimg::cargo::CargoBuilder {
    aelimg::cargo::CargoBuilder {
        workspace: aelimg::cargo::CargoWorkspace::discover(ws).unwrap(),
        profile: "dev".into(),
        locked: false,
        color: false,
        trust_stamp,
        embed_dependencies: Some(env!("CARGO_BIN_EXE_aelimg").into()),
    }
}

/// The host platform, the `app` binary of [`tiny_workspace`], and a build
/// that wants just it.
fn app_on_host() -> (
    aelimg::platform::Platform,
    aelimg::cargo::BinId,
    std::collections::BTreeMap<aelimg::platform::Platform, BTreeSet<aelimg::cargo::BinId>>,
) {
    let platform = host();
    let id = aelimg::cargo::BinId {
        package: "app".into(),
        bin: "app".into(),
    };
    let wanted = std::collections::BTreeMap::from([(platform, BTreeSet::from([id.clone()]))]);
    (platform, id, wanted)
}

fn tiny_workspace(ws: &std::path::Path) {
    let write = |rel: &str, text: &str| {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"dep\", \"app\"]\nresolver = \"3\"\n",
    );
    write(
        "dep/Cargo.toml",
        "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write(
        "dep/build.rs",
        "fn main() { println!(\"cargo::rustc-env=DEP=1\"); }\n",
    );
    write("dep/src/lib.rs", "pub fn f() -> u32 { 1 }\n");
    write(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[dependencies]\ndep = { path = \"../dep\" }\n",
    );
    write(
        "app/src/main.rs",
        "fn main() { println!(\"{}\", dep::f()); }\n",
    );
}

/// The stamp in the target directory: once cargo has built the payload and
/// nothing changed, the next build takes the binaries without running
/// cargo; a source edit (even one that keeps size and mtime), a manifest
/// edit, a changed environment or a removed binary make cargo run again.
#[test]
fn an_unchanged_payload_is_taken_without_running_cargo() {
    use aelimg::cargo::{CargoBuilder, PayloadBuilder};

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    tiny_workspace(ws);
    // A checkout has its Cargo.lock (a build that writes it changes an
    // input of its own stamp, and the next build asks cargo once more).
    let lock = std::process::Command::new("cargo")
        .arg("generate-lockfile")
        .current_dir(ws)
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    // Older than the builds below, as files in a checkout are: a file
    // written within a second before cargo starts leaves no stamp.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let builder = dev_builder(ws, true);
    let (_, _, wanted) = app_on_host();
    let run = |b: &CargoBuilder| {
        let seen = PayloadEvents::default();
        let bins = b.build(&wanted, &seen).unwrap();
        assert!(bins.values().all(|p| p.is_file()), "{bins:?}");
        let events = seen.0.into_inner().unwrap();
        let last = events.last().cloned().unwrap();
        (last, bins)
    };
    assert_eq!(run(&builder).0, "finished 3 0", "first build");
    let (last, bins) = run(&builder);
    assert_eq!(last, "up to date 1", "nothing changed");
    let exe = bins.values().next().unwrap().clone();

    // A source edit.
    let lib = ws.join("dep/src/lib.rs");
    std::fs::write(&lib, "pub fn f() -> u32 { 2 }\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(run(&builder).0, "finished 3 1", "a library source edited");
    assert_eq!(run(&builder).0, "up to date 1");

    // The same size and mtime, other bytes: the ctime still moves, and
    // cargo is asked (it judges by mtime alone, and finds it fresh).
    let mtime = std::fs::metadata(&lib).unwrap().modified().unwrap();
    std::fs::write(&lib, "pub fn f() -> u32 { 3 }\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&lib)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(run(&builder).0.starts_with("finished 3 "), "mtime kept");
    assert_eq!(run(&builder).0, "up to date 1");

    // A manifest edit, without any source change.
    let manifest = ws.join("app/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        run(&builder).0.starts_with("finished 3 "),
        "manifest edited"
    );
    assert_eq!(run(&builder).0, "up to date 1");

    // The binary replaced behind aelimg's back.
    std::fs::remove_file(&exe).unwrap();
    assert!(run(&builder).0.starts_with("finished 3 "), "binary removed");
    assert_eq!(run(&builder).0, "up to date 1");

    // Another profile is another command, with a stamp of its own.
    let release = CargoBuilder {
        profile: "release".into(),
        ..builder.clone()
    };
    assert_eq!(run(&release).0, "finished 3 0", "release");
    assert_eq!(run(&builder).0, "up to date 1", "dev still stamped");

    // Not trusted (`--no-cache`): cargo is asked.
    let ask = CargoBuilder {
        trust_stamp: false,
        ..builder.clone()
    };
    assert_eq!(run(&ask).0, "finished 3 3");
}

/// Each payload package is built as `cargo build -p` alone would build it:
/// a feature one package switches on in a shared dependency does not reach
/// the other's binary, which is the same, byte for byte, whether or not the
/// first is built beside it.
#[test]
fn each_package_is_built_with_its_own_features() {
    use std::collections::BTreeMap;

    use aelimg::cargo::{BinId, PayloadBuilder};

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let write = |rel: &str, text: &str| {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let package = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[dependencies]\n{deps}"
        )
    };
    write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"dep\", \"loud\", \"quiet\"]\nresolver = \"3\"\n",
    );
    write(
        "dep/Cargo.toml",
        &format!("{}[features]\nloud = []\n", package("dep", "")),
    );
    write(
        "dep/src/lib.rs",
        "pub fn word() -> &'static str { if cfg!(feature = \"loud\") { \"LOUD\" } else { \"quiet\" } }\n",
    );
    for (name, features) in [("loud", ", features = [\"loud\"]"), ("quiet", "")] {
        write(
            &format!("{name}/Cargo.toml"),
            &package(name, &format!("dep = {{ path = \"../dep\"{features} }}\n")),
        );
        write(
            &format!("{name}/src/main.rs"),
            "fn main() { println!(\"{}\", dep::word()); }\n",
        );
    }
    let builder = dev_builder(ws, false);
    let platform = host();
    let bin = |name: &str| BinId {
        package: name.into(),
        bin: name.into(),
    };
    let build = |names: &[&str]| {
        let wanted = BTreeMap::from([(platform, names.iter().map(|n| bin(n)).collect())]);
        let bins = builder.build(&wanted, &PayloadEvents::default()).unwrap();
        let say = |n: &str| {
            let exe = &bins[&(platform, bin(n))];
            let out = std::process::Command::new(exe).output().unwrap();
            (
                String::from_utf8(out.stdout).unwrap().trim().to_string(),
                std::fs::read(exe).unwrap(),
            )
        };
        names.iter().map(|n| say(n)).collect::<Vec<_>>()
    };
    let both = build(&["loud", "quiet"]);
    assert_eq!(both[0].0, "LOUD");
    assert_eq!(both[1].0, "quiet", "loud's feature reached quiet's binary");
    let alone = build(&["quiet"]);
    assert_eq!(alone[0].0, "quiet");
    assert!(
        alone[0].1 == both[1].1,
        "quiet's binary depends on whether loud is built beside it"
    );
}
