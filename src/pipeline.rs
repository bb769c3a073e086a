//! The library's entry points: one function per thing a user asks for, each
//! taking resolved values (no command-line strings) and returning what
//! happened. The command line parses its arguments and calls exactly one of
//! these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::base;
use crate::cargo::{BinId, Binaries, CargoWorkspace, PayloadBuilder};
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::layer::LayerCompression;
use crate::layout::{Layout, LayoutLock};
use crate::oci::{Document, Referrer};
use crate::plan::{Plan, PlanOptions, Workspace};
use crate::platform::Platform;
use crate::progress::{Event, Progress};
use crate::reference::Reference;
use crate::registry::{Options, Registry, pull::pull_image};
use crate::report::{PlatformSize, over_limit, size_report};
use crate::sink::{Artifact, Record, Sink};
use crate::store::BlobStore;

/// What a build or push tells its caller as it goes.
///
/// Every method has a body that does nothing: implement what you show.
/// An observer is `Send` because progress events come from the threads that
/// do the work (layers are written, and blobs pushed, several at once); the
/// pipeline calls it under a lock, one event at a time, so it needs no
/// locking of its own.
pub trait Observer: Send {
    /// A registry base resolved to a digest (once per distinct base).
    fn base_resolved(&mut self, _reference: &Reference, _digest: &crate::digest::Digest) {}
    /// The size report, once every image is built (printed even when an
    /// image is over its limit).
    fn built(&mut self, _report: &[PlatformSize]) {}
    /// A sink wrote an image.
    fn written(&mut self, _record: &Record) {}
    /// Progress of the payload compile, of each layer and of each blob
    /// pushed ([`Event`]). Called often (every MiB of a layer, every chunk
    /// of a blob): keep it short.
    fn progress(&mut self, _event: &Event<'_>) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

/// An observer shared by the threads of a build: each call takes a lock.
struct Shared<'o>(Mutex<&'o mut dyn Observer>);

impl<'o> Shared<'o> {
    fn new(observer: &'o mut dyn Observer) -> Self {
        Self(Mutex::new(observer))
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Observer) -> T) -> T {
        let mut o = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut **o)
    }
}

impl Progress for Shared<'_> {
    fn event(&self, event: &Event<'_>) {
        self.with(|o| o.progress(event));
    }
}

/// A plan and the cargo workspace its binaries come from.
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// The workspace, when one was found.
    pub workspace: Option<CargoWorkspace>,
}

/// A workspace that could not be read; every cargo source is then an error.
struct NoWorkspace(String);

impl Workspace for NoWorkspace {
    fn binaries(&self, _package: &str) -> Option<Vec<String>> {
        None
    }
    fn members(&self) -> Vec<String> {
        vec![format!("(none: {})", self.0)]
    }
}

/// Loads images.yaml and resolves the plan; reads nothing but metadata.
///
/// # Errors
/// When the spec is wrong or names what does not exist.
pub fn plan(file: &Path, opts: &PlanOptions) -> Result<Planned> {
    let spec = crate::spec::load(file)?;
    let ws = CargoWorkspace::discover(&spec.dir);
    let plan = match &ws {
        Ok(ws) => crate::plan::resolve(&spec, opts, ws)?,
        Err(e) => crate::plan::resolve(&spec, opts, &NoWorkspace(e.to_string()))?,
    };
    Ok(Planned {
        plan,
        workspace: ws.ok(),
    })
}

/// The working blob store (and layer cache) a build in `dir` uses when none
/// is given: `<cargo target dir>/aelimg`, else `target/aelimg`.
#[must_use]
pub fn default_store_dir(dir: &Path) -> PathBuf {
    store_dir_of(CargoWorkspace::discover(dir).ok().as_ref())
}

fn store_dir_of(ws: Option<&CargoWorkspace>) -> PathBuf {
    ws.map_or_else(
        || PathBuf::from("target/aelimg"),
        |w| w.target_dir.join("aelimg"),
    )
}

/// A payload builder for a build with no cargo workspace: it can only build
/// nothing (the plan refuses cargo sources without a workspace).
struct NoPayload;

impl PayloadBuilder for NoPayload {
    fn build(
        &self,
        wanted: &BTreeMap<Platform, std::collections::BTreeSet<BinId>>,
        _progress: &dyn Progress,
    ) -> Result<Binaries> {
        if wanted.is_empty() {
            Ok(Binaries::new())
        } else {
            Err(Error::Cargo(
                "no cargo workspace to build the payload in: give prebuilt binaries".into(),
            ))
        }
    }
}

/// How a build runs.
pub struct BuildSettings<'a> {
    /// The working blob store (default: `<cargo target dir>/aelimg`).
    pub store_dir: Option<PathBuf>,
    /// Where the payload binaries come from; `None`: cargo in the plan's
    /// workspace, with `profile` and `locked`.
    pub payload: Option<&'a dyn PayloadBuilder>,
    /// Cargo profile of the payload binaries.
    pub profile: String,
    /// Pass `--locked` to cargo.
    pub locked: bool,
    /// Ask cargo for colored messages: they reach the observer as
    /// [`Event::PayloadOutput`] lines, which it shows on a terminal.
    pub cargo_color: bool,
    /// Build every layer afresh, looking nothing up in the layer cache.
    pub no_cache: bool,
    /// Link each cargo-built binary's crate list into it (cargo-auditable's
    /// `.dep-v0` section), with this aelimg executable as cargo's rustc
    /// wrapper (see [`crate::cargo::wrapper`]); `None` leaves it out.
    pub embed_dependencies: Option<std::path::PathBuf>,
    /// How to reach registries (for registry bases).
    pub registry: Options,
    /// Algorithm and level of the layers aelimg writes (default gzip 6).
    pub compression: LayerCompression,
    /// Threads for compressing layers; 0: the available parallelism. The
    /// output is the same whatever it is.
    pub jobs: usize,
    /// What to attach to each image (an SBOM by default).
    pub attach: crate::attest::AttachSettings,
}

/// What a build did.
pub struct BuildOutcome {
    /// The images, their blobs in the working store.
    pub images: Vec<BuiltImage>,
    /// Sizes per image, platform and layer.
    pub report: Vec<PlatformSize>,
    /// What the sinks did.
    pub records: Vec<Record>,
}

/// Plans the images of `spec` with `opts` and builds them: [`plan`], then
/// [`build_planned`].
///
/// # Errors
/// At the first step that fails.
pub fn build(
    spec: &Path,
    opts: &PlanOptions,
    settings: &BuildSettings<'_>,
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
) -> Result<BuildOutcome> {
    build_planned(&plan(spec, opts)?, settings, sink, observer)
}

/// Builds the planned images and writes them to `sink`, in this order:
/// the sink checks the plan, registry bases are resolved and fetched, the
/// payload is built, layers and documents are made, sizes are checked
/// against the limits, then the images are written. Anything that can fail
/// on bad input fails before the payload build (the sinks' checks read
/// every output layout's `index.json`); nothing is written for a build that
/// fails, and the layout sink writes all images or none.
///
/// # Errors
/// At the first step that fails.
pub fn build_planned(
    planned: &Planned,
    settings: &BuildSettings<'_>,
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
) -> Result<BuildOutcome> {
    let observer = Shared::new(observer);
    let plan = &planned.plan;
    sink.check(plan)?;
    for img in &plan.images {
        for l in &img.layers {
            for x in &l.excluded {
                observer.event(&Event::SourceExcluded {
                    image: &img.name,
                    layer: &l.name,
                    path: &x.path,
                    rule: &x.rule,
                });
            }
        }
    }
    let store_dir = settings
        .store_dir
        .clone()
        .unwrap_or_else(|| store_dir_of(planned.workspace.as_ref()));
    let store = BlobStore::open(&store_dir)?;
    let bases = if base::needs_registry(plan) {
        base::resolve(plan, &store, &settings.registry)?
    } else {
        BTreeMap::new()
    };
    let mut told = std::collections::BTreeSet::new();
    for b in bases.values() {
        if told.insert(b.reference.to_string()) {
            observer.with(|o| o.base_resolved(&b.reference, &b.digest));
        }
    }
    let cargo;
    let payload: &dyn PayloadBuilder = match (settings.payload, &planned.workspace) {
        (Some(p), _) => p,
        (None, Some(ws)) => {
            cargo = crate::cargo::CargoBuilder {
                workspace: ws.clone(),
                profile: settings.profile.clone(),
                locked: settings.locked,
                color: settings.cargo_color,
                // `--no-cache` asks cargo too, as a user who suspects a
                // stale binary expects.
                trust_stamp: !settings.no_cache,
                embed_dependencies: settings.embed_dependencies.clone(),
            };
            &cargo
        }
        (None, None) => &NoPayload,
    };
    let cache = crate::cache::LayerCache::new(&store, !settings.no_cache);
    let layers = crate::build::LayerSettings {
        compression: settings.compression,
        jobs: settings.jobs,
    };
    // What the SBOM and provenance need besides the layers (git, rustc,
    // crate lists) is found while the layers are built.
    let (attach, workspace) = (settings.attach, planned.workspace.as_ref());
    let (built, prepared) = std::thread::scope(|s| {
        let prepared = s.spawn(move || crate::attest::prepare(plan, workspace, attach));
        let built = crate::build::build(plan, &bases, &cache, payload, &layers, &observer);
        let prepared = prepared
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (built, prepared)
    });
    let crate::build::Built {
        mut images,
        binaries,
    } = built?;
    let prepared = prepared?;
    let compression = settings.compression.cache_key();
    crate::attest::attach(
        &crate::attest::BuildFacts {
            plan,
            bases: &bases,
            binaries: &binaries,
            compression: &compression,
        },
        &prepared,
        &mut images,
        &store,
        settings.attach,
    )?;
    let report = size_report(&images);
    observer.with(|o| o.built(&report));
    let over = over_limit(&report);
    if !over.is_empty() {
        return Err(Error::SizeLimit(format!(
            "{}; nothing was written",
            over.join("; ")
        )));
    }
    // Every image is built and within its limit: the sinks write them all
    // (a layout sink all or nothing, see `sink::layout`).
    let artifacts: Vec<Artifact<'_>> = images.iter().map(|i| i.artifact(&store)).collect();
    let records = sink.write_all(&artifacts, &observer)?;
    for r in &records {
        observer.with(|o| o.written(r));
    }
    Ok(BuildOutcome {
        images,
        report,
        records,
    })
}

/// An image in an OCI layout, to push.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The image's name (the layout directory's name).
    pub name: String,
    /// The layout.
    pub root: PathBuf,
    /// The tag to push; `None`: the layout's only one.
    pub tag: Option<String>,
}

/// The layouts below `dir`: `dir` itself when it is a layout, else each
/// layout directly inside it (as `aelimg build` writes them), keeping only
/// `only` when it is not empty.
///
/// # Errors
/// When `dir` cannot be read, holds no layout, or lacks a name of `only`.
pub fn find_layouts(dir: &Path, tag: Option<&str>, only: &[String]) -> Result<Vec<LayoutImage>> {
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    if dir.join("index.json").is_file() {
        out.push(LayoutImage {
            name: name_of(dir),
            root: dir.to_path_buf(),
            tag: tag.map(str::to_string),
        });
    } else {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::Request(format!(
                "cannot read {} ({e}): run `aelimg build` first",
                dir.display()
            ))
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.join("index.json").is_file() {
                out.push(LayoutImage {
                    name: name_of(&p),
                    root: p,
                    tag: tag.map(str::to_string),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for n in only {
        if !out.iter().any(|o| &o.name == n) {
            return Err(Error::Request(format!(
                "no image named `{n}` in {} (it holds: {})",
                dir.display(),
                out.iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !only.is_empty() {
        out.retain(|o| only.contains(&o.name));
    }
    if out.is_empty() {
        return Err(Error::Request(format!(
            "no OCI layout in {}: run `aelimg build` first",
            dir.display()
        )));
    }
    Ok(out)
}

/// Pushes images from their layouts through `sink`.
///
/// A layout holding several tags needs one: the source's, else the push
/// target's own tag.
///
/// # Errors
/// When a layout cannot be read or a push fails.
pub fn push(
    images: &[LayoutImage],
    sink: &mut crate::sink::registry::RegistrySink,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>> {
    let observer = Shared::new(observer);
    sink.check_names(&images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>())?;
    // Each layout's shared lock, held until every push is done: a build
    // writing the layout meanwhile waits, so its garbage collection cannot
    // remove a blob this push has yet to send. Taken in the order of the
    // paths, as writers take theirs.
    let mut order: Vec<(PathBuf, &Path)> = images
        .iter()
        .map(|i| {
            (
                std::fs::canonicalize(&i.root).unwrap_or_else(|_| i.root.clone()),
                i.root.as_path(),
            )
        })
        .collect();
    order.sort();
    order.dedup_by(|a, b| a.0 == b.0);
    let mut locks = Vec::new();
    for (_, root) in order {
        locks.extend(LayoutLock::shared(root, &observer)?);
    }
    let mut picked: Vec<(Layout, Document, String, Vec<Referrer>, &LayoutImage)> = Vec::new();
    for img in images {
        let layout = Layout::open(&img.root)?;
        let (top, ref_name) = match layout.find(img.tag.as_deref()) {
            Ok(x) => x,
            Err(e) if img.tag.is_none() => match &sink.target_of(&img.name)?.tag {
                Some(t) => layout.find(Some(t)).map_err(|_| e)?,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let tag = ref_name.unwrap_or_else(|| "latest".into());
        let referrers = layout.referrers_of(&top)?;
        picked.push((layout, top, tag, referrers, img));
    }
    let mut records = Vec::new();
    for (layout, top, tag, referrers, img) in &picked {
        let artifact = Artifact {
            name: &img.name,
            tag,
            top,
            platform: None,
            store: layout.store(),
            referrers,
        };
        for r in sink.write(&artifact, &observer)? {
            observer.with(|o| o.written(&r));
            records.push(r);
        }
    }
    drop(locks);
    Ok(records)
}

/// Pulls `src` into the layout `root`, tagged with the reference's tag (or
/// `latest`); `platform` (`os/arch`) keeps one platform of an index.
/// Holds the layout's exclusive lock meanwhile (`progress` hears when that
/// means waiting). Returns the pulled top document.
///
/// # Errors
/// When the registry cannot be reached or the image fails verification.
pub fn pull(
    src: &Reference,
    root: &Path,
    platform: Option<(&str, &str)>,
    opts: Options,
    progress: &dyn Progress,
) -> Result<(Document, String)> {
    Layout::check_writable(root)?;
    let lock = LayoutLock::exclusive(root, progress)?;
    let pulled = (|| {
        let layout = Layout::create(root)?;
        let reg = Registry::connect(&src.registry, src.api_host(), opts)?;
        let top = pull_image(&reg, src, layout.store(), platform)?;
        let tag = src.tag.clone().unwrap_or_else(|| "latest".into());
        layout.tag(top.descriptor(), &tag)?;
        Ok((top, tag))
    })();
    if pulled.is_err() && lock.created_dir() {
        // A first pull that failed leaves no half-made layout behind.
        lock.undo();
    }
    pulled
}
