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

mod entries;
mod host;
mod layers;
mod model;
mod paths;

pub use model::*;

use entries::DirAttrs;
use layers::{accounts_layer, resolve_layer, root_layer};
use paths::{absolute, rel};

/// Resolves a loaded spec into a plan.
pub fn resolve(spec: &LoadedSpec, opts: &PlanOptions, ws: &dyn Workspace) -> Result<Plan> {
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

fn resolve_image(
    spec: &LoadedSpec,
    image: &ImageSpec,
    opts: &PlanOptions,
    ws: &dyn Workspace,
) -> Result<ImagePlan> {
    let name = image.name.value.clone();
    if !valid_name(&name) {
        return Err(spec.error_at(
            &image.name,
            format!("invalid image name `{name}`: expected lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"),
        ));
    }
    let tag = match &image.tag {
        Some(t) if !is_valid_tag(&t.value) => {
            return Err(spec.error_at(
                t,
                format!(
                    "invalid tag `{}`: expected letters, digits, `_`, `.` or `-` (at most 128)",
                    t.value
                ),
            ));
        }
        Some(t) => t.value.clone(),
        None => "latest".to_string(),
    };
    let user = resolve_user(spec, image)?;
    let workdir = match &image.workdir {
        Some(w) => Some(absolute(spec, w, "workdir")?),
        None => None,
    };
    let mut volumes = BTreeSet::new();
    for v in &image.volumes {
        volumes.insert(absolute(spec, v, "volume")?);
    }
    let dirs = special_dirs(&user, &volumes);
    let mut layers = vec![
        root_layer(image, &dirs),
        accounts_layer(&user, workdir.as_deref(), &volumes, &dirs),
    ];
    for layer in &image.layers {
        layers.push(resolve_layer(spec, layer, &user, &dirs, ws)?);
    }
    Ok(ImagePlan {
        name,
        tag,
        base: resolve_base(spec, image)?,
        platforms: resolve_platforms(spec, image, opts)?,
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
            labels: image.labels.clone(),
            stop_signal: image.stop_signal.clone(),
            healthcheck: resolve_healthcheck(spec, image)?,
        },
        user,
        annotations: image.annotations.clone(),
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

/// The command line's platforms, else the image's, else the host's.
fn resolve_platforms(
    spec: &LoadedSpec,
    image: &ImageSpec,
    opts: &PlanOptions,
) -> Result<Vec<Platform>> {
    if let Some(p) = &opts.platforms {
        return Ok(p.clone());
    }
    if image.platforms.is_empty() {
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
    let mut out = Vec::new();
    for p in &image.platforms {
        let parsed = Platform::parse(&p.value).map_err(|m| spec.error_at(p, m))?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    if let Some(p) = opts.prefer_platform.filter(|p| out.contains(p)) {
        return Ok(vec![p]);
    }
    Ok(out)
}

/// The runtime user: a non-root account unless root is opted into.
fn resolve_user(spec: &LoadedSpec, image: &ImageSpec) -> Result<User> {
    let u = &image.user.value;
    if u.uid == 0 && !u.allow_root {
        return Err(spec.error_at(
            &image.user,
            "user uid 0 runs the container as root: expected a non-root uid, or `allow_root: true` to opt in",
        ));
    }
    if !valid_account_name(&u.name) {
        return Err(spec.error_at(
            &image.user,
            format!(
                "invalid user name `{}`: expected letters, digits, `_` or `-`",
                u.name
            ),
        ));
    }
    let user = User {
        name: u.name.clone(),
        uid: u.uid,
        gid: u.gid.unwrap_or(u.uid),
        group: u.group.clone().unwrap_or_else(|| u.name.clone()),
        home: u
            .home
            .clone()
            .unwrap_or_else(|| format!("/home/{}", u.name)),
    };
    if !valid_account_name(&user.group) {
        return Err(spec.error_at(
            &image.user,
            format!(
                "invalid group name `{}`: expected letters, digits, `_` or `-`",
                user.group
            ),
        ));
    }
    Ok(user)
}

/// `KEY=value`, sorted by key, with the default `PATH`.
fn resolve_env(spec: &LoadedSpec, image: &ImageSpec) -> Result<Vec<String>> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    for (k, v) in &image.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(spec.error_at(
                v,
                format!("invalid environment variable name `{k}`: expected a name without `=`"),
            ));
        }
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

fn valid_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
