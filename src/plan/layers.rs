//! The entries of each layer: the synthesized root layer and the layers of
//! images.yaml, with parent directories added and clashes refused.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::entries::{DirAttrs, LayerEntries, Lower, ROOT_DIR, dir_entry};
use super::host::{HostError, add_host_path};
use super::model::{Entry, EntryKind, LayerPlan, User, Workspace};
use super::paths::{absolute, rel};
use crate::error::Result;
use crate::rootfs;
use crate::spec::{ImageSpec, LoadedSpec, Owner, Spanned};

fn generated(path: &str, what: &str, bytes: Vec<u8>) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Generated {
            what: what.to_string(),
            size: bytes.len() as u64,
            bytes,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// The layer every image on `scratch` starts with: what does not depend on
/// the image's user, volumes or workdir (nsswitch.conf, the CA bundle,
/// /tmp), so that images with the same `ca_certificates` share one blob on
/// every platform.
pub(super) fn root_layer(image: &ImageSpec, dirs: &BTreeMap<String, DirAttrs>) -> LayerPlan {
    let mut l = LayerEntries::new(dirs);
    let mut add = |e: Entry| {
        // Fixed paths, each once.
        let _ = l.add(e);
    };
    add(generated(
        "etc/nsswitch.conf",
        "nsswitch.conf",
        rootfs::NSSWITCH.as_bytes().to_vec(),
    ));
    if image.ca_certificates {
        add(generated(
            "etc/ssl/certs/ca-certificates.crt",
            "ca-certificates",
            rootfs::ca_bundle(),
        ));
    }
    add(dir_entry("tmp", dirs, ROOT_DIR));
    l.finish(ROOT_LAYER.into())
}

/// The name of [`root_layer`] in reports and history.
const ROOT_LAYER: &str = "root filesystem (nsswitch.conf, CA certificates, /tmp)";
/// The name of [`accounts_layer`] in reports and history.
const ACCOUNTS_LAYER: &str = "accounts and directories (passwd, group, volumes, workdir)";

/// The image's own part of the root filesystem: /etc/passwd and /etc/group
/// for its user, and its volume, workdir and home directories. Small, and
/// the only synthesized layer a change of user or volumes rebuilds.
pub(super) fn accounts_layer(
    user: &User,
    workdir: Option<&str>,
    volumes: &BTreeSet<String>,
    dirs: &BTreeMap<String, DirAttrs>,
) -> LayerPlan {
    let mut l = LayerEntries::new(dirs);
    let mut add = |e: Entry| {
        // Paths here are fixed or already unique (volumes are a set).
        let _ = l.add(e);
    };
    add(generated("etc/passwd", "passwd", rootfs::passwd(user)));
    add(generated("etc/group", "group", rootfs::group(user)));
    for v in volumes {
        add(dir_entry(&rel(v), dirs, ROOT_DIR));
    }
    if let Some(w) = workdir.filter(|w| *w != "/") {
        add(dir_entry(&rel(w), dirs, ROOT_DIR));
    }
    if user.home != "/" {
        add(dir_entry(&rel(&user.home), dirs, ROOT_DIR));
    }
    l.finish(ACCOUNTS_LAYER.into())
}

/// Every layer aelimg writes for an image (above a registry base's, if
/// any): the root layer, the accounts layer, then the spec's layers, each
/// checked against those below it (a path two layers hold is refused unless
/// the upper entry says `override: true`; directories merge).
pub(super) fn image_layers(
    spec: &LoadedSpec,
    image: &ImageSpec,
    user: &User,
    workdir: Option<&str>,
    volumes: &BTreeSet<String>,
    dirs: &BTreeMap<String, DirAttrs>,
    ws: &dyn Workspace,
) -> Result<Vec<LayerPlan>> {
    let mut layers = vec![
        root_layer(image, dirs),
        accounts_layer(user, workdir, volumes, dirs),
    ];
    let mut lower = Lower::default();
    for l in &layers {
        lower.record(l);
    }
    let mut ctx = None;
    for layer in &image.layers {
        let plan = resolve_layer(spec, layer, user, dirs, ws, &mut ctx, &lower)?;
        lower.record(&plan);
        layers.push(plan);
    }
    Ok(layers)
}

fn resolve_layer(
    spec: &LoadedSpec,
    layer: &crate::spec::LayerSpec,
    user: &User,
    dirs: &BTreeMap<String, DirAttrs>,
    ws: &dyn Workspace,
    ctx: &mut Option<Context>,
    lower: &Lower,
) -> Result<LayerPlan> {
    let mut l = LayerEntries::new(dirs);
    if layer.contents.is_empty() {
        return Err(spec.error_at(
            &layer.name,
            format!(
                "layer `{}` has no contents: expected at least one entry",
                layer.name.value
            ),
        ));
    }
    for (i, c) in layer.contents.iter().enumerate() {
        l.content(i);
        let dest = absolute(spec, &c.dest, "dest")?;
        if let Some(m) = &c.mode
            && m.value.0 & 0o7000 != 0
            && !c.setuid
        {
            return Err(spec.error_at(
                m,
                format!(
                    "mode {:04o} sets the setuid, setgid or sticky bit: expected a mode of at most 0777, or `setuid: true` on this entry to opt in",
                    m.value.0
                ),
            ));
        }
        if dest == "/" {
            return Err(spec.error_at(&c.dest, "dest `/`: expected a path below the root"));
        }
        let (uid, gid) = match c.owner.as_ref().map(|o| o.value) {
            None | Some(Owner::Root) => (0, 0),
            Some(Owner::User) => (user.uid, user.gid),
            Some(Owner::Ids(u, g)) => (u, g),
        };
        let clash = |path: String| {
            spec.error_at(
                &c.dest,
                format!(
                    "`/{path}` is added twice to layer `{}`: expected each path once per layer",
                    layer.name.value
                ),
            )
        };
        match (&c.cargo, &c.path) {
            (Some(cargo), None) => {
                check_cargo(spec, cargo, ws)?;
                if let Some(p) = c.allow_secrets.first() {
                    return Err(spec.error_at(
                        p,
                        "allow_secrets on a cargo binary allows nothing: expected it on a `path:` entry",
                    ));
                }
                l.add(Entry {
                    path: rel(&dest),
                    kind: EntryKind::Cargo {
                        package: cargo.value.package.clone(),
                        bin: cargo.value.bin.clone(),
                    },
                    mode: c.mode.as_ref().map_or(0o755, |m| m.value.0),
                    uid,
                    gid,
                })
                .map_err(clash)?;
            }
            (None, Some(path)) => {
                let ctx = match ctx {
                    Some(ctx) => ctx,
                    None => ctx.insert(Context::new(spec)?),
                };
                add_host_path(spec, ctx, c, path, &rel(&dest), (uid, gid), &mut l).map_err(
                    |e| match e {
                        HostError::Clash(p) => clash(p),
                        HostError::Other(e) => e,
                    },
                )?;
            }
            _ => {
                return Err(spec.error_at(
                    &c.dest,
                    "expected exactly one of `cargo` or `path` in this content entry",
                ));
            }
        }
    }
    l.link_hard_links()
        .map_err(|m| spec.error_at(&layer.name, m))?;
    if let Some(r) = l
        .replacing(lower)
        .into_iter()
        .find(|r| !layer.contents.get(r.origin).is_some_and(|c| c.replace))
    {
        let c = &layer.contents[r.origin.min(layer.contents.len() - 1)];
        return Err(spec.error_at(
            &c.dest,
            format!(
                "`/{}` is {} in layer `{}` below, and layer `{}` puts {} there: expected each path in one layer of an image, or `override: true` on this entry to replace it",
                r.path,
                r.lower_what,
                r.lower,
                layer.name.value,
                r.what
            ),
        ));
    }
    Ok(l.finish(layer.name.value.clone()))
}

fn check_cargo(
    spec: &LoadedSpec,
    cargo: &Spanned<crate::spec::CargoSource>,
    ws: &dyn Workspace,
) -> Result<()> {
    let c = &cargo.value;
    // Only members with a binary target can fill a layer.
    let with_binaries = || {
        ws.members()
            .into_iter()
            .filter(|m| ws.binaries(m).is_some_and(|b| !b.is_empty()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ws.binaries(&c.package) {
        None => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` is not a member of the workspace: expected one of {}",
                c.package,
                with_binaries()
            ),
        )),
        Some(bins) if bins.is_empty() => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` has no binary target (a library cannot fill a layer): expected one of {}",
                c.package,
                with_binaries()
            ),
        )),
        Some(bins) if !bins.contains(&c.bin) => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` has no binary `{}`: expected one of {}",
                c.package,
                c.bin,
                bins.join(", ")
            ),
        )),
        Some(_) => Ok(()),
    }
}
