//! The resolved build plan: a pure function of the spec, the command line and
//! the metadata of the files it names.
//!
//! Every check that can fail on bad input runs here, before anything is built
//! or written, so a bad `images.yaml` never leaves a half-written output.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::{Reference, is_valid_tag};
use crate::spec::{ImageSpec, LoadedSpec, Spanned};
use crate::values;

mod context;
mod entries;
mod host;
mod layers;
mod model;
mod paths;

pub use context::SECRET_PATTERNS;
pub use model::*;

use entries::DirAttrs;
use layers::image_layers;
use paths::{absolute, rel};

/// Resolves a loaded spec into a plan.
pub fn resolve(spec: &LoadedSpec, opts: &PlanOptions, ws: &dyn Workspace) -> Result<Plan> {
    for image in &spec.file.images {
        check_name(spec, image)?;
    }
    check_unique_names(spec)?;
    let known: Vec<&str> = spec
        .file
        .images
        .iter()
        .map(|i| i.name.value.as_str())
        .collect();
    for wanted in &opts.only {
        if !known.contains(&wanted.as_str()) {
            return Err(Error::Request(format!(
                "{} defines no image named `{wanted}` (it defines: {})",
                spec.path.display(),
                known.join(", ")
            )));
        }
    }
    let mut images = Vec::new();
    for image in &spec.file.images {
        if opts.only.is_empty() || opts.only.contains(&image.name.value) {
            images.push(resolve_image(spec, image, opts, ws)?);
        } else {
            // Not built this time, but its values are checked all the same:
            // what the file says is wrong is wrong whatever `--image` picks.
            check_values(spec, image)?;
        }
    }
    Ok(Plan {
        spec_file: spec.path.clone(),
        source_date_epoch: opts.source_date_epoch,
        images,
    })
}

fn check_unique_names(spec: &LoadedSpec) -> Result<()> {
    let mut seen: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
    for image in &spec.file.images {
        let name = &image.name;
        if let Some(first) = seen.get(name.value.as_str()) {
            return Err(spec.error_at(
                name,
                format!(
                    "duplicate image name `{}` (first defined at line {}): expected every image to have its own name",
                    name.value,
                    first.referenced.line()
                ),
            ));
        }
        seen.insert(&name.value, name);
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && s.len() <= 128
}

/// The image name is a directory name in the output (`DIR/<name>/`,
/// `DIR/<name>.tar`): never empty, absolute, `..` or with a `/`.
fn check_name(spec: &LoadedSpec, image: &ImageSpec) -> Result<()> {
    let name = &image.name.value;
    if valid_name(name) {
        return Ok(());
    }
    Err(spec.error_at(
        &image.name,
        format!(
            "invalid image name {}: expected lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit (at most 128)",
            values::quoted(name)
        ),
    ))
}

/// The checks of [`resolve_image`] that need neither the file system nor
/// the workspace, for images `--image` leaves out.
fn check_values(spec: &LoadedSpec, image: &ImageSpec) -> Result<()> {
    resolve_tag(spec, image)?;
    resolve_user(spec, image)?;
    resolve_base(spec, image)?;
    resolve_platforms(spec, image, &PlanOptions::default())?;
    resolve_healthcheck(spec, image)?;
    let version = resolve_version(spec, image)?;
    resolve_mcp(spec, image, version.as_deref())?;
    Ok(())
}

/// The standard keys, then images.yaml's, then the command line's.
fn layered(
    standard: &BTreeMap<String, String>,
    spec: &BTreeMap<String, String>,
    cli: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = standard.clone();
    out.extend(spec.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.extend(cli.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// images.yaml's `version`: a specific version (no range, not `latest`).
fn resolve_version(spec: &LoadedSpec, image: &ImageSpec) -> Result<Option<String>> {
    let Some(v) = &image.version else {
        return Ok(None);
    };
    let bad = v.value.is_empty()
        || v.value.len() > 255
        || v.value == "latest"
        || v.value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '^' | '~' | '>' | '<' | '*' | '=')
        })
        || v.value.split('.').any(|p| p == "x");
    if bad {
        return Err(spec.error_at(
            v,
            format!(
                "invalid version {}: expected one specific version such as 1.0.2 (not `latest`, no range)",
                values::quoted(&v.value)
            ),
        ));
    }
    Ok(Some(v.value.clone()))
}

/// Whether `name` is an MCP registry server name: `NAMESPACE/NAME`, the
/// namespace `[a-zA-Z0-9.-]+`, the name `[a-zA-Z0-9._-]+`, 3 to 200 long
/// (the pattern of server.schema.json).
fn is_mcp_name(name: &str) -> bool {
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || extra.contains(&c))
    };
    (3..=200).contains(&name.len())
        && name
            .split_once('/')
            .is_some_and(|(ns, n)| ok(ns, &[]) && ok(n, &['_']))
}

/// images.yaml's `mcp:` section, checked against what the MCP registry's
/// server.json schema requires.
fn resolve_mcp(
    spec: &LoadedSpec,
    image: &ImageSpec,
    version: Option<&str>,
) -> Result<Option<McpPlan>> {
    let Some(m) = &image.mcp else {
        return Ok(None);
    };
    if !is_mcp_name(&m.name.value) {
        return Err(spec.error_at(
            &m.name,
            format!(
                "invalid MCP server name {}: expected NAMESPACE/NAME in reverse-DNS form such as io.github.OWNER/ael (letters, digits, `.` and `-`, then one `/`, then letters, digits, `.`, `_` and `-`; 3 to 200 characters)",
                values::quoted(&m.name.value)
            ),
        ));
    }
    let d = &m.description;
    if d.value.is_empty() || d.value.chars().count() > 100 {
        return Err(spec.error_at(
            d,
            format!(
                "MCP description of {} characters: expected 1 to 100",
                d.value.chars().count()
            ),
        ));
    }
    if version.is_none() {
        return Err(spec.error_at(
            &m.name,
            "an image with `mcp:` needs `version:` (server.json names the version it publishes)",
        ));
    }
    let url = match m.transport.as_ref() {
        Some(t) if t.value == "streamable-http" => {
            let Some(u) = &m.url else {
                return Err(spec.error_at(
                    t,
                    "transport `streamable-http` needs `url:` (e.g. http://localhost:8082/mcp)",
                ));
            };
            if !(u.value.starts_with("http://") || u.value.starts_with("https://")) {
                return Err(spec.error_at(
                    u,
                    format!(
                        "MCP url {}: expected an http:// or https:// URL",
                        values::quoted(&u.value)
                    ),
                ));
            }
            Some(u.value.clone())
        }
        Some(t) if t.value != "stdio" => {
            return Err(spec.error_at(
                t,
                format!(
                    "unknown MCP transport {}: expected `stdio` or `streamable-http`",
                    values::quoted(&t.value)
                ),
            ));
        }
        _ => {
            if let Some(u) = &m.url {
                return Err(spec.error_at(
                    u,
                    "`url:` is for transport `streamable-http`: expected no url for stdio",
                ));
            }
            None
        }
    };
    if let Some(r) = &m.repository
        && !r.value.starts_with("https://")
    {
        return Err(spec.error_at(
            r,
            format!(
                "MCP repository {}: expected an https:// URL",
                values::quoted(&r.value)
            ),
        ));
    }
    Ok(Some(McpPlan {
        name: m.name.value.clone(),
        description: d.value.clone(),
        url,
        repository: m.repository.as_ref().map(|r| r.value.clone()),
        environment_variables: m
            .environment_variables
            .iter()
            .map(|e| McpEnv {
                name: e.name.clone(),
                description: e.description.clone(),
                required: e.required,
                secret: e.secret,
                default: e.default.clone(),
            })
            .collect(),
    }))
}

fn resolve_tag(spec: &LoadedSpec, image: &ImageSpec) -> Result<String> {
    Ok(match &image.tag {
        Some(t) if !is_valid_tag(&t.value) => {
            return Err(spec.error_at(
                t,
                format!(
                    "invalid tag {}: expected letters, digits, `_`, `.` or `-`, not starting with `.` or `-` (at most 128)",
                    values::quoted(&t.value)
                ),
            ));
        }
        Some(t) => t.value.clone(),
        None => "latest".to_string(),
    })
}

fn resolve_image(
    spec: &LoadedSpec,
    image: &ImageSpec,
    opts: &PlanOptions,
    ws: &dyn Workspace,
) -> Result<ImagePlan> {
    let name = image.name.value.clone();
    let tag = resolve_tag(spec, image)?;
    let base = resolve_base(spec, image)?;
    let platforms = resolve_platforms(spec, image, opts)?;
    let user = resolve_user(spec, image)?;
    let workdir = match &image.workdir {
        Some(w) => {
            let p = absolute(spec, w, "workdir")?;
            not_over_a_file(spec, image, w, &p, "workdir")?;
            Some(p)
        }
        None => None,
    };
    let mut volumes = BTreeSet::new();
    for v in &image.volumes {
        let p = absolute(spec, v, "volume")?;
        if p == "/" {
            return Err(spec.error_at(v, "volume `/`: expected a directory below the root"));
        }
        not_over_a_file(spec, image, v, &p, "volume")?;
        volumes.insert(p);
    }
    if let Some(h) = &image.user.value.home {
        let at = Spanned::new(h.clone(), image.user.referenced, image.user.defined);
        not_over_a_file(spec, image, &at, &user.home, "home")?;
    }
    let dirs = special_dirs(&user, &volumes);
    let layers = image_layers(spec, image, &user, workdir.as_deref(), &volumes, &dirs, ws)?;
    check_layers(spec, image, &layers)?;
    // A registry base may bring its own; a `scratch` image has nothing to run.
    if base == Base::Scratch && image.entrypoint.is_empty() && image.cmd.is_empty() {
        return Err(spec.error_at(
            &image.name,
            format!(
                "image `{name}` has neither `entrypoint` nor `cmd`: expected at least one, e.g. entrypoint: [/usr/local/bin/{name}]"
            ),
        ));
    }
    let version = resolve_version(spec, image)?;
    let mcp = resolve_mcp(spec, image, version.as_deref())?;
    let standard = crate::annotations::standard(&crate::annotations::Inputs {
        name: &name,
        created: opts.source_date_epoch,
        version: version.as_deref(),
        licenses: image.licenses.as_ref().map(|l| l.value.as_str()),
        mcp_name: mcp.as_ref().map(|m| m.name.as_str()),
        git: opts.git.as_ref(),
    });
    Ok(ImagePlan {
        name,
        tag,
        base,
        platforms,
        config: ConfigPlan {
            user: format!("{}:{}", user.uid, user.gid),
            env: resolve_env(spec, image)?,
            exposed_ports: image
                .ports
                .iter()
                .map(|p| p.value.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            volumes: volumes.into_iter().collect(),
            workdir,
            entrypoint: image.entrypoint.clone(),
            cmd: image.cmd.clone(),
            labels: layered(&standard, &image.labels, &opts.labels),
            stop_signal: image.stop_signal.clone(),
            healthcheck: resolve_healthcheck(spec, image)?,
        },
        user,
        annotations: layered(&standard, &image.annotations, &opts.annotations),
        version,
        mcp,
        size_limit: image.size_limit.as_ref().map(|s| s.value.0),
        layers,
    })
}

/// `scratch`, or a registry image named by tag or digest.
fn resolve_base(spec: &LoadedSpec, image: &ImageSpec) -> Result<Base> {
    match &image.base {
        None => Ok(Base::Scratch),
        Some(b) if b.value == "scratch" => Ok(Base::Scratch),
        Some(b) => match Reference::parse(&b.value) {
            Ok(r) if r.tag.is_some() || r.digest.is_some() => Ok(Base::Image(r)),
            _ => Err(spec.error_at(
                b,
                format!(
                    "unsupported base `{}`: expected `scratch` or REGISTRY/REPO:TAG[@sha256:…]",
                    b.value
                ),
            )),
        },
    }
}

/// The command line's platforms, else the image's, else the host's. The
/// image's are checked even when the command line overrides them.
fn resolve_platforms(
    spec: &LoadedSpec,
    image: &ImageSpec,
    opts: &PlanOptions,
) -> Result<Vec<Platform>> {
    let mut out = Vec::new();
    for p in &image.platforms {
        let parsed = Platform::parse(&p.value).map_err(|m| spec.error_at(p, m))?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    if let Some(p) = &opts.platforms {
        return Ok(p.clone());
    }
    if out.is_empty() {
        if let Some(p) = opts.prefer_platform {
            return Ok(vec![p]);
        }
        return Ok(vec![Platform::host().ok_or_else(|| {
            Error::Request(format!(
                "the host architecture {} is not supported: name a platform",
                std::env::consts::ARCH
            ))
        })?]);
    }
    if let Some(p) = opts.prefer_platform.filter(|p| out.contains(p)) {
        return Ok(vec![p]);
    }
    Ok(out)
}

/// uid and gid 65534: `nobody` and `nogroup`, which every image has.
const NOBODY: u32 = 65534;

/// The runtime user: a non-root account unless root is opted into, and never
/// a second account with uid 0 or a second name for root's or nobody's ids
/// (the names themselves were checked as they were read).
fn resolve_user(spec: &LoadedSpec, image: &ImageSpec) -> Result<User> {
    let u = &image.user.value;
    let err = |m: String| Err(spec.error_at(&image.user, m));
    if u.uid == 0 && !u.allow_root {
        return err(
            "user uid 0 runs the container as root: expected a non-root uid, or `allow_root: true` to opt in".into(),
        );
    }
    for (id, owner, what) in [(0, "root", "uid"), (NOBODY, "nobody", "uid")] {
        if (u.uid == id) != (u.name == owner) {
            return err(format!(
                "user `{}` with uid {}: {what} {id} is `{owner}`'s in /etc/passwd; expected the name `{owner}` with {what} {id} and no other",
                u.name, u.uid
            ));
        }
    }
    let gid = u.gid.unwrap_or(u.uid);
    let group = match (&u.group, gid) {
        (Some(g), _) => g.clone(),
        (None, 0) => "root".to_string(),
        (None, NOBODY) => "nogroup".to_string(),
        (None, _) => u.name.clone(),
    };
    for (id, owner) in [(0, "root"), (NOBODY, "nogroup")] {
        if (gid == id) != (group == owner) {
            return err(format!(
                "group `{group}` with gid {gid}: gid {id} is `{owner}`'s in /etc/group; expected the name `{owner}` with gid {id} and no other"
            ));
        }
    }
    let home = match &u.home {
        Some(h) => values::home(h).map_err(|m| spec.error_at(&image.user, m))?,
        None => format!("/home/{}", u.name),
    };
    Ok(User {
        name: u.name.clone(),
        uid: u.uid,
        gid,
        group,
        home,
    })
}

/// Files every image on `scratch` has before its own layers.
fn synthesized_files(image: &ImageSpec) -> Vec<&'static str> {
    let mut files = vec!["/etc/passwd", "/etc/group", "/etc/nsswitch.conf"];
    if image.ca_certificates {
        files.push("/etc/ssl/certs/ca-certificates.crt");
    }
    files
}

/// A directory the accounts layer creates (volume, workdir, home) must not
/// be one of the synthesized files or below one.
fn not_over_a_file(
    spec: &LoadedSpec,
    image: &ImageSpec,
    at: &Spanned<String>,
    path: &str,
    what: &str,
) -> Result<()> {
    for file in synthesized_files(image) {
        if path == file || path.starts_with(&format!("{file}/")) {
            return Err(spec.error_at(
                at,
                format!(
                    "{what} `{path}` collides with {file}, a file aelimg writes into every image: expected a directory elsewhere"
                ),
            ));
        }
    }
    Ok(())
}

/// Across all layers of an image, bottom first: every entry path is one a
/// tar can carry (see [`values::entry_path`]), and nothing is put below a
/// file or symlink of a layer beneath (or of its own layer). A path held by
/// two layers is [`image_layers`]' to refuse (or allow, with `override:
/// true`); the upper entry's kind then counts.
fn check_layers(spec: &LoadedSpec, image: &ImageSpec, layers: &[LayerPlan]) -> Result<()> {
    let mut seen: BTreeMap<&str, (bool, usize)> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for e in &layer.entries {
            let at = |m: String| {
                let m = format!("`/{}`: {m}", e.path);
                match layer_spec(image, i) {
                    Some(l) => match content_for(l, &e.path) {
                        Some(dest) => spec.error_at(dest, m),
                        None => spec.error_at(&l.name, m),
                    },
                    None => spec.error_at(&image.name, m),
                }
            };
            values::entry_path(&e.path).map_err(&at)?;
            let name = |j: usize| &layers[j].name;
            let is_dir = e.kind == EntryKind::Dir;
            let mut ancestor = e.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                ancestor = parent;
                if let Some((false, j)) = seen.get(parent) {
                    return Err(at(format!(
                        "it is below `/{parent}`, a file or symlink of layer `{}`: expected nothing below a file",
                        name(*j)
                    )));
                }
            }
            seen.insert(&e.path, (is_dir, i));
        }
    }
    Ok(())
}

/// The images.yaml layer of the plan's layer `i` (the first two are synthesized).
fn layer_spec(image: &ImageSpec, i: usize) -> Option<&crate::spec::LayerSpec> {
    i.checked_sub(2).and_then(|k| image.layers.get(k))
}

/// The `dest` of the content entry that put `path` into a layer: the one
/// whose destination is `path` or holds it, else one below it (which
/// implied `path` as a parent directory).
fn content_for<'a>(l: &'a crate::spec::LayerSpec, path: &str) -> Option<&'a Spanned<String>> {
    let dest = |c: &crate::spec::ContentSpec| paths::normalize_abs(&c.dest.value).map(|d| rel(&d));
    let holds = l
        .contents
        .iter()
        .find(|c| dest(c).is_some_and(|d| path == d || path.starts_with(&format!("{d}/"))));
    let below = || {
        l.contents
            .iter()
            .find(|c| dest(c).is_some_and(|d| d.starts_with(&format!("{path}/"))))
    };
    holds.or_else(below).map(|c| &c.dest)
}

/// `KEY=value`, sorted by key, with the default `PATH`.
fn resolve_env(spec: &LoadedSpec, image: &ImageSpec) -> Result<Vec<String>> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    for (k, v) in &image.env {
        values::env_name(k).map_err(|m| spec.error_at(v, m))?;
        values::no_nul("environment value", &v.value).map_err(|m| spec.error_at(v, m))?;
        env.insert(k.clone(), v.value.clone());
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn resolve_healthcheck(spec: &LoadedSpec, image: &ImageSpec) -> Result<Option<Healthcheck>> {
    let Some(h) = &image.healthcheck else {
        return Ok(None);
    };
    if h.test.is_empty() {
        return Err(spec.error_at(
            &image.name,
            format!(
                "image `{}`: healthcheck.test is empty: expected a command such as [ael, health]",
                image.name.value
            ),
        ));
    }
    let ns = |d: Option<crate::units::Duration>| {
        d.map_or(0, |d| u64::try_from(d.0.as_nanos()).unwrap_or(u64::MAX))
    };
    let mut test = vec!["CMD".to_string()];
    test.extend(h.test.iter().cloned());
    Ok(Some(Healthcheck {
        test,
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        retries: h.retries.unwrap_or(0),
    }))
}

/// Directories with attributes of their own (/tmp, volumes and home); every
/// other directory is root's, mode 0755.
fn special_dirs(user: &User, volumes: &BTreeSet<String>) -> BTreeMap<String, DirAttrs> {
    let mut dirs: BTreeMap<String, DirAttrs> = BTreeMap::new();
    dirs.insert(
        "tmp".into(),
        DirAttrs {
            mode: 0o1777,
            uid: 0,
            gid: 0,
        },
    );
    let user_dir = DirAttrs {
        mode: 0o755,
        uid: user.uid,
        gid: user.gid,
    };
    for v in volumes {
        dirs.insert(rel(v), user_dir);
    }
    dirs.insert(rel(&user.home), user_dir);
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        assert!(valid_name("native-tools"));
        assert!(!valid_name("Ael"));
    }
}
