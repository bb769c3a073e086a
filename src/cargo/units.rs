//! Counting cargo's units: the compiler artifacts cargo reports as it
//! builds, and an estimate of their total (cargo announces none), for
//! progress.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

use cargo_metadata::{DependencyKind, Message, Metadata, PackageId, TargetKind};

use crate::error::{Error, Result};
use crate::plan::{BinId, Binaries};
use crate::platform::Platform;
use crate::progress::{Event, Progress};

/// The units cargo reported, against the expected total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitCount {
    /// Compiler artifacts reported so far.
    pub done: u64,
    /// Of which were fresh (up to date, nothing compiled).
    pub fresh: u64,
    /// The expected total, when there is an estimate.
    pub estimate: Option<u64>,
}

impl UnitCount {
    /// Nothing counted yet, `estimate` expected.
    #[must_use]
    pub const fn new(estimate: Option<u64>) -> Self {
        Self {
            done: 0,
            fresh: 0,
            estimate,
        }
    }

    /// Counts one artifact; returns the total to show: the estimate, raised
    /// to the count once cargo has reported more than expected, so a bar is
    /// never past its end.
    pub fn artifact(&mut self, fresh: bool) -> Option<u64> {
        self.done += 1;
        self.fresh += u64::from(fresh);
        if let Some(e) = &mut self.estimate {
            *e = (*e).max(self.done);
        }
        self.estimate
    }
}

/// Reads cargo's JSON messages: counts compiler artifacts (reporting each
/// as [`Event::PayloadUnit`]) and returns the wanted binaries cargo built,
/// by their paths as cargo reports them.
///
/// # Errors
/// When the stream is not cargo's JSON messages.
pub fn read_messages(
    from: impl BufRead,
    wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
    count: &mut UnitCount,
    progress: &dyn Progress,
) -> Result<Binaries> {
    let mut found = Binaries::new();
    for msg in Message::parse_stream(from) {
        let msg = msg.map_err(|e| Error::Cargo(format!("reading cargo output: {e}")))?;
        let Message::CompilerArtifact(a) = msg else {
            continue;
        };
        let total = count.artifact(a.fresh);
        progress.event(&Event::PayloadUnit {
            name: &a.target.name,
            package: package_name(&a.package_id.repr),
            fresh: a.fresh,
            done: count.done,
            total,
        });
        let Some(exe) = a.executable else { continue };
        let exe = exe.into_std_path_buf();
        for (platform, bins) in wanted {
            let in_target = exe
                .components()
                .any(|c| c.as_os_str() == platform.rust_target());
            for id in bins {
                if in_target && a.target.name == id.bin {
                    found.insert((*platform, id.clone()), exe.clone());
                }
            }
        }
    }
    Ok(found)
}

/// The name in a package id: `path+file:///ws/dep#0.1.0` (the directory's
/// name), `registry+https://…#serde@1.0.2` or `path+file:///ws/x#name@0.1.0`,
/// or the older `serde 1.0.2 (registry+…)`.
fn package_name(id: &str) -> &str {
    match id.split_once('#') {
        Some((url, fragment)) => match fragment.split_once('@') {
            Some((name, _)) => name,
            None => url.rsplit('/').next().unwrap_or(url),
        },
        None => id.split(' ').next().unwrap_or(id),
    }
}

/// `name version` of a line of `cargo tree --format {p}` (`serde v1.0.2`,
/// `ael v0.1.0 (/ws/runtime)`, `syn v2.0.1 (*)`).
pub(super) fn tree_package(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let version = words.next()?.strip_prefix('v')?;
    Some(format!("{name} {version}"))
}

/// What the unit estimate needs of a package of the resolve.
#[derive(Debug, Clone, Default)]
pub struct UnitPackage {
    /// The package's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// It is a workspace member.
    pub member: bool,
    /// It has a library target (lib, rlib, proc-macro, ...).
    pub lib: bool,
    /// Its library is a proc-macro (built for the host).
    pub proc_macro: bool,
    /// It has a build script.
    pub build_script: bool,
    /// Its dependencies: (package, a normal dependency, a build dependency);
    /// dev-dependencies are left out.
    pub deps: Vec<(String, bool, bool)>,
}

/// A resolve graph for one target, keyed by package id.
#[derive(Debug, Clone, Default)]
pub struct UnitGraph {
    /// Packages by id.
    pub packages: HashMap<String, UnitPackage>,
}

impl UnitGraph {
    /// The graph of `cargo metadata`'s resolve (run with `--filter-platform`
    /// for the target).
    #[must_use]
    pub fn of(meta: &Metadata) -> Self {
        let members: BTreeSet<&PackageId> = meta.workspace_members.iter().collect();
        let mut packages: HashMap<String, UnitPackage> = meta
            .packages
            .iter()
            .map(|p| {
                let has = |k: &TargetKind| p.targets.iter().any(|t| t.kind.contains(k));
                let lib = p.targets.iter().any(|t| {
                    t.kind.iter().any(|k| {
                        matches!(
                            k,
                            TargetKind::Lib
                                | TargetKind::RLib
                                | TargetKind::DyLib
                                | TargetKind::ProcMacro
                        )
                    })
                });
                (
                    p.id.repr.clone(),
                    UnitPackage {
                        name: p.name.to_string(),
                        version: p.version.to_string(),
                        member: members.contains(&p.id),
                        lib,
                        proc_macro: has(&TargetKind::ProcMacro),
                        build_script: has(&TargetKind::CustomBuild),
                        deps: Vec::new(),
                    },
                )
            })
            .collect();
        for node in meta.resolve.iter().flat_map(|r| &r.nodes) {
            let Some(pkg) = packages.get_mut(&node.id.repr) else {
                continue;
            };
            for d in &node.deps {
                let normal = d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal);
                let build = d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Build);
                if normal || build {
                    pkg.deps.push((d.pkg.repr.clone(), normal, build));
                }
            }
        }
        Self { packages }
    }
}

/// How many compiler artifacts (`compiler-artifact` messages: libraries,
/// binaries, build scripts) one `cargo build` of these binaries reports,
/// given the resolve graph of each target and the binaries wanted for it.
///
/// For each target, the libraries of the packages reachable from the wanted
/// packages by normal dependencies, and the wanted binaries; once for all
/// targets (cargo builds them once, for the host), the proc-macros and
/// build-dependencies with everything they depend on; and one build script
/// per package that has one. Feature-dependent splits (a package built
/// twice with different features) are not seen, so this is an estimate.
#[must_use]
pub fn estimate_units(per_target: &[(UnitGraph, BTreeSet<BinId>)]) -> u64 {
    let mut units = 0u64;
    let mut host: BTreeSet<&str> = BTreeSet::new();
    let mut scripts: BTreeSet<&str> = BTreeSet::new();
    for (graph, bins) in per_target {
        units += bins.len() as u64;
        let roots: BTreeSet<&str> = bins.iter().map(|b| b.package.as_str()).collect();
        let mut todo: Vec<&str> = graph
            .packages
            .iter()
            .filter(|(_, p)| p.member && roots.contains(p.name.as_str()))
            .map(|(id, _)| id.as_str())
            .collect();
        let mut target_side: BTreeSet<&str> = BTreeSet::new();
        let mut host_seeds: Vec<&str> = Vec::new();
        while let Some(id) = todo.pop() {
            if !target_side.insert(id) {
                continue;
            }
            let Some(p) = graph.packages.get(id) else {
                continue;
            };
            for (dep, normal, build) in &p.deps {
                let proc_macro = graph.packages.get(dep).is_some_and(|d| d.proc_macro);
                if *build || (*normal && proc_macro) {
                    host_seeds.push(dep);
                }
                if *normal && !proc_macro {
                    todo.push(dep);
                }
            }
        }
        for id in &target_side {
            if let Some(p) = graph.packages.get(*id) {
                units += u64::from(p.lib);
                if p.build_script {
                    scripts.insert(id);
                }
            }
        }
        // Everything a host package depends on is built for the host too.
        while let Some(id) = host_seeds.pop() {
            if !host.insert(id) {
                continue;
            }
            if let Some(p) = graph.packages.get(id) {
                if p.build_script {
                    scripts.insert(id);
                }
                host_seeds.extend(p.deps.iter().map(|(d, _, _)| d.as_str()));
            }
        }
    }
    units + host.len() as u64 + scripts.len() as u64
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;

    /// Records the payload events it is sent.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Progress for Seen {
        fn event(&self, e: &Event<'_>) {
            if let Event::PayloadUnit {
                name,
                package,
                fresh,
                done,
                total,
            } = e
            {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{package}/{name} fresh={fresh} {done}/{total:?}"));
            }
        }
    }

    fn recorded(name: &str) -> BufReader<std::fs::File> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cargo-json")
            .join(name);
        BufReader::new(std::fs::File::open(p).unwrap())
    }

    fn app() -> BTreeMap<Platform, BTreeSet<BinId>> {
        BTreeMap::from([(
            Platform::LinuxAmd64,
            BTreeSet::from([BinId {
                package: "app".into(),
                bin: "app".into(),
            }]),
        )])
    }

    #[test]
    fn recorded_cargo_messages_count_fresh_and_compiled_units() {
        // First build: three units (build script, library, binary), all
        // compiled; the estimate was right.
        let seen = Seen::default();
        let mut count = UnitCount::new(Some(3));
        let found =
            read_messages(recorded("first-build.jsonl"), &app(), &mut count, &seen).unwrap();
        assert_eq!(
            count,
            UnitCount {
                done: 3,
                fresh: 0,
                estimate: Some(3)
            }
        );
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "dep/build-script-build fresh=false 1/Some(3)",
                "dep/dep fresh=false 2/Some(3)",
                "app/app fresh=false 3/Some(3)",
            ]
        );
        let exe = &found[&(
            Platform::LinuxAmd64,
            app().values().next().unwrap().first().unwrap().clone(),
        )];
        assert_eq!(
            exe,
            Path::new("/work/ws/target/x86_64-unknown-linux-musl/debug/app")
        );

        // After touching the binary: two fresh units, one compiled; an
        // estimate that was too low is raised as cargo goes past it, so the
        // bar never runs past its end.
        let seen = Seen::default();
        let mut count = UnitCount::new(Some(2));
        let found =
            read_messages(recorded("touched-bin.jsonl"), &app(), &mut count, &seen).unwrap();
        assert_eq!(
            count,
            UnitCount {
                done: 3,
                fresh: 2,
                estimate: Some(3)
            }
        );
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "dep/build-script-build fresh=true 1/Some(2)",
                "dep/dep fresh=true 2/Some(2)",
                "app/app fresh=false 3/Some(3)",
            ]
        );
        assert_eq!(found.len(), 1);

        // No estimate: counted all the same.
        let mut count = UnitCount::new(None);
        read_messages(
            recorded("touched-bin.jsonl"),
            &app(),
            &mut count,
            &Seen::default(),
        )
        .unwrap();
        assert_eq!(
            count,
            UnitCount {
                done: 3,
                fresh: 2,
                estimate: None
            }
        );

        // A binary for another platform is not taken for this one.
        let arm = BTreeMap::from([(Platform::LinuxArm64, app().into_values().next().unwrap())]);
        let found = read_messages(
            recorded("touched-bin.jsonl"),
            &arm,
            &mut UnitCount::default(),
            &Seen::default(),
        )
        .unwrap();
        assert!(found.is_empty(), "{found:?}");
        // A line that is not a message (cargo_metadata passes those on as
        // text) counts nothing.
        let mut count = UnitCount::default();
        read_messages(&b"not json\n"[..], &app(), &mut count, &Seen::default()).unwrap();
        assert_eq!(count.done, 0);
    }

    #[test]
    fn package_names_of_every_id_format() {
        assert_eq!(package_name("path+file:///ws/dep#0.1.0"), "dep");
        assert_eq!(
            package_name("path+file:///ws/crates/x#bearer-auth@0.1.0"),
            "bearer-auth"
        );
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.228"),
            "serde"
        );
        assert_eq!(
            package_name("serde 1.0.2 (registry+https://github.com/rust-lang/crates.io-index)"),
            "serde"
        );
    }

    /// A package: (id, lib, proc-macro, build script, deps as (id, normal, build)).
    fn pkg(
        name: &str,
        member: bool,
        lib: bool,
        proc_macro: bool,
        build_script: bool,
        deps: &[(&str, bool, bool)],
    ) -> (String, UnitPackage) {
        (
            name.to_string(),
            UnitPackage {
                name: name.to_string(),
                version: "1.0.0".to_string(),
                member,
                lib,
                proc_macro,
                build_script,
                deps: deps
                    .iter()
                    .map(|(d, n, b)| ((*d).to_string(), *n, *b))
                    .collect(),
            },
        )
    }

    #[test]
    fn the_unit_estimate_counts_target_units_per_target_and_host_units_once() {
        // app (bin + lib) → serde (build script) → serde_derive (proc-macro) → syn
        //     → cc-using sys crate: build-dependency cc (host)
        //     ↛ dev-only crates are not in the graph at all
        // other (a member nobody asked for) → big
        let graph = UnitGraph {
            packages: HashMap::from([
                pkg(
                    "app",
                    true,
                    true,
                    false,
                    false,
                    &[("serde", true, false), ("sys", true, false)],
                ),
                pkg(
                    "serde",
                    false,
                    true,
                    false,
                    true,
                    &[("serde_derive", true, false)],
                ),
                pkg(
                    "serde_derive",
                    false,
                    true,
                    true,
                    false,
                    &[("syn", true, false)],
                ),
                pkg("syn", false, true, false, true, &[]),
                pkg("sys", false, true, false, true, &[("cc", false, true)]),
                pkg("cc", false, true, false, false, &[]),
                pkg("other", true, true, false, false, &[("big", true, false)]),
                pkg("big", false, true, false, false, &[]),
            ]),
        };
        let bins = app().into_values().next().unwrap();
        // Per target: app's lib, serde, sys (3) + the binary (1) = 4.
        // Host, once: serde_derive, syn, cc = 3.
        // Build scripts, once: serde, syn, sys = 3.
        assert_eq!(estimate_units(&[(graph.clone(), bins.clone())]), 4 + 3 + 3);
        assert_eq!(
            estimate_units(&[(graph.clone(), bins.clone()), (graph, bins)]),
            2 * 4 + 3 + 3
        );
        // The recorded workspace: dep's build script, dep, app's binary.
        let ws = UnitGraph {
            packages: HashMap::from([
                pkg("app", true, false, false, false, &[("dep", true, false)]),
                pkg("dep", true, true, false, true, &[]),
            ]),
        };
        let bins = app().into_values().next().unwrap();
        let mut count = UnitCount::default();
        read_messages(
            recorded("first-build.jsonl"),
            &app(),
            &mut count,
            &Seen::default(),
        )
        .unwrap();
        assert_eq!(estimate_units(&[(ws, bins)]), count.done);
    }
}
