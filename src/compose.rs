//! `aelimg compose`: DOC-056's compose files, production and development,
//! written from the plan so that what the images define (image names and
//! tags, ports, volumes, user, the health check and its timings) can never
//! drift from them.
//!
//! What images.yaml cannot say is DOC-056's deployment itself, fixed here:
//! two services, `ael` and `native-tools`; native-tools serves MCP over HTTP
//! on [`NATIVE_TOOLS_PORT`] (its image's default is stdio, which exits at
//! once without a stdin); ael reads the configuration that reaches it there
//! ([`COMPOSE_CONFIG`], beside the image's own configuration); bearer tokens
//! come from Docker secrets.
//!
//! Each volume of an image becomes either a read-only bind mount of the
//! checkout directory its files come from (workflows, config) or a named
//! volume `<service>-<dir>` (`ael-data`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::plan::{EntryKind, Healthcheck, ImagePlan, Plan};

/// The port native-tools serves MCP on inside the compose network.
pub const NATIVE_TOOLS_PORT: u16 = 8083;

/// The ael configuration the compose deployment uses, in the image's
/// config directory (mounted from the checkout): native-tools by service
/// name over HTTP with a bearer token from a secret.
pub const COMPOSE_CONFIG: &str = "ael-compose.yaml";

/// The secrets: name, the file in the checkout, what it is.
const SECRETS: [(&str, &str, &str); 2] = [
    (
        "ael_token",
        "secrets/ael_token",
        "bearer token clients send to ael's /mcp",
    ),
    (
        "native_tools_token",
        "secrets/native_tools_token",
        "bearer token ael sends to native-tools' /mcp",
    ),
];

/// Which file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `docker-compose.yaml`: restart policy, read-only root, log rotation.
    Production,
    /// `docker-compose.dev.yaml`: DEBUG logs, hot reload, no restart policy.
    Development,
}

/// What a compose file is written for.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// Production or development.
    pub flavor: Flavor,
    /// The directory the file will be in: mount sources are relative to it.
    pub dir: PathBuf,
    /// Images by digest instead of by tag (`--pin`): image name →
    /// `REGISTRY/REPO@sha256:…`, as `--digest-file` lists them.
    pub pins: BTreeMap<String, String>,
}

/// Reads a digest file (`aelimg push --digest-file`, `build --push
/// --digest-file`): one `REGISTRY/REPO@sha256:…` per line; each is the pin
/// of the image named by the repository's last path component.
///
/// # Errors
/// When the file cannot be read or a line is not a reference by digest.
pub fn read_pins(file: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let mut pins = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let r = crate::reference::Reference::parse(line)?;
        if r.digest.is_none() {
            return Err(Error::Request(format!(
                "{}:{}: `{line}` is not a reference by digest (REGISTRY/REPO@sha256:…)",
                file.display(),
                i + 1
            )));
        }
        let name = r
            .repository
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        pins.insert(name, line.to_string());
    }
    Ok(pins)
}

/// The `image:` of a service: its pin, else `name:tag`.
fn image_ref(image: &ImagePlan, opts: &ComposeOptions) -> Result<String> {
    if opts.pins.is_empty() {
        return Ok(format!("{}:{}", image.name, image.tag));
    }
    opts.pins.get(&image.name).cloned().ok_or_else(|| {
        Error::Request(format!(
            "--pin: no reference by digest for image {} (it has: {})",
            image.name,
            opts.pins.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// A value in the generated YAML.
enum Y {
    /// A scalar string (quoted when YAML needs it).
    S(String),
    /// A sequence of strings on one line (`["CMD", "ael", "health"]`).
    Flow(Vec<String>),
    /// A block sequence.
    Seq(Vec<Y>),
    /// A mapping, in this order.
    Map(Vec<(String, Y)>),
    /// A literal written as is: a boolean or a number.
    Raw(String),
    /// An empty value (`ael-data:`).
    Null,
}

fn s(v: impl Into<String>) -> Y {
    Y::S(v.into())
}

fn flow<I: IntoIterator<Item = T>, T: Into<String>>(v: I) -> Y {
    Y::Flow(v.into_iter().map(Into::into).collect())
}

fn map(v: Vec<(&str, Y)>) -> Y {
    Y::Map(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Whether `v` can be written unquoted and still read back as this string.
fn plain(v: &str) -> bool {
    let reserved = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    !v.is_empty()
        && v.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=@".contains(c))
        && !reserved.contains(&v.to_ascii_lowercase().as_str())
}

fn scalar(v: &str) -> String {
    if plain(v) {
        v.to_string()
    } else {
        // A JSON string is a YAML double-quoted scalar.
        serde_json::Value::String(v.to_string()).to_string()
    }
}

fn emit(out: &mut String, indent: usize, y: &Y) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) => {
            for (k, v) in entries {
                match v {
                    Y::S(x) => out.push_str(&format!("{pad}{}: {}\n", scalar(k), scalar(x))),
                    Y::Flow(items) => out.push_str(&format!(
                        "{pad}{}: [{}]\n",
                        scalar(k),
                        items
                            .iter()
                            .map(|i| serde_json::Value::String(i.clone()).to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    Y::Raw(x) => out.push_str(&format!("{pad}{}: {x}\n", scalar(k))),
                    Y::Null => out.push_str(&format!("{pad}{}:\n", scalar(k))),
                    Y::Map(_) | Y::Seq(_) => {
                        out.push_str(&format!("{pad}{}:\n", scalar(k)));
                        emit(out, indent + 2, v);
                    }
                }
            }
        }
        Y::Seq(items) => {
            for v in items {
                match v {
                    Y::S(x) => out.push_str(&format!("{pad}- {}\n", scalar(x))),
                    _ => {
                        // Not produced: sequences here hold scalars.
                        out.push_str(&format!("{pad}-\n"));
                        emit(out, indent + 2, v);
                    }
                }
            }
        }
        Y::S(x) => out.push_str(&format!("{pad}{}\n", scalar(x))),
        Y::Raw(x) => out.push_str(&format!("{pad}{x}\n")),
        Y::Flow(_) | Y::Null => {}
    }
}

/// A Go-style duration of nanoseconds, as compose reads it (`30s`, `1m30s`,
/// `500ms`).
fn duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `path` relative to `dir` (both absolute), as `./a/b` or `../a`.
fn relative(dir: &Path, path: &Path) -> String {
    let a: Vec<Component<'_>> = dir.components().collect();
    let b: Vec<Component<'_>> = path.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.first().is_some_and(|p| p == "..") {
        parts.join("/")
    } else if parts.is_empty() {
        ".".into()
    } else {
        format!("./{}", parts.join("/"))
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io(format!("cannot resolve {}", p.display()), e))
}

/// The checkout directory a volume's files come from, when every file the
/// image puts below `volume` is `DIR/<same relative path>`.
fn volume_source(image: &ImagePlan, volume: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{}/", volume.trim_start_matches('/'));
    let mut dir: Option<PathBuf> = None;
    for e in image.layers.iter().flat_map(|l| &l.entries) {
        let Some(rel) = e.path.strip_prefix(&prefix) else {
            continue;
        };
        let EntryKind::File { source } = &e.kind else {
            continue;
        };
        let source = absolute(source)?;
        let mut d = source.clone();
        for _ in Path::new(rel).components() {
            d.pop();
        }
        if !source.ends_with(rel) {
            return Ok(None);
        }
        match &dir {
            None => dir = Some(d),
            Some(x) if *x == d => {}
            Some(_) => return Ok(None),
        }
    }
    Ok(dir)
}

/// `<service>-<last path component>`: `ael-data`.
fn volume_name(service: &str, volume: &str) -> String {
    let last = volume
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("data");
    format!("{service}-{last}")
}

fn healthcheck(test: Vec<String>, h: &Healthcheck) -> Y {
    map(vec![
        ("test", flow(test)),
        ("interval", s(duration(h.interval))),
        ("timeout", s(duration(h.timeout))),
        ("retries", Y::Raw(h.retries.to_string())),
        ("start_period", s(duration(h.start_period))),
    ])
}

fn find<'p>(plan: &'p Plan, name: &str) -> Result<&'p ImagePlan> {
    plan.images.iter().find(|i| i.name == name).ok_or_else(|| {
        Error::Request(format!(
            "aelimg compose writes DOC-056's deployment of the images `ael` and `native-tools`, and {} has no image `{name}` (it has: {}); do not narrow it with --image",
            plan.spec_file.display(),
            plan.images
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The mounts of an image's volumes: read-only binds of checkout
/// directories, else named volumes (collected in `named`).
fn mounts(
    service: &str,
    image: &ImagePlan,
    dir: &Path,
    named: &mut Vec<String>,
) -> Result<(Vec<Y>, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let mut binds = BTreeMap::new();
    for v in &image.config.volumes {
        match volume_source(image, v)? {
            Some(src) => {
                out.push(s(format!("{}:{v}:ro", relative(dir, &src))));
                binds.insert(v.clone(), relative(dir, &src));
            }
            None => {
                let n = volume_name(service, v);
                out.push(s(format!("{n}:{v}")));
                named.push(n);
            }
        }
    }
    Ok((out, binds))
}

/// The hardening both services get: a read-only root with a tmpfs /tmp, no
/// capabilities, no privilege gain.
fn hardening(svc: &mut Vec<(&str, Y)>) {
    svc.push(("read_only", Y::Raw("true".into())));
    svc.push(("tmpfs", Y::Seq(vec![s("/tmp")])));
    svc.push(("cap_drop", Y::Seq(vec![s("ALL")])));
    svc.push(("security_opt", Y::Seq(vec![s("no-new-privileges:true")])));
}

fn logging() -> Y {
    map(vec![
        ("driver", s("json-file")),
        (
            "options",
            map(vec![("max-size", s("10m")), ("max-file", s("3"))]),
        ),
    ])
}

/// The compose file for `plan`'s `ael` and `native-tools` images.
///
/// # Errors
/// When the plan lacks one of them, ael has no health check, or a path
/// cannot be resolved.
pub fn compose(plan: &Plan, opts: &ComposeOptions) -> Result<String> {
    let ael = find(plan, "ael")?;
    let tools = find(plan, "native-tools")?;
    let dev = opts.flavor == Flavor::Development;
    let dir = absolute(&opts.dir)?;
    let check = ael.config.healthcheck.as_ref().ok_or_else(|| {
        Error::Request(format!(
            "image ael in {} has no healthcheck: compose's depends_on needs one",
            plan.spec_file.display()
        ))
    })?;
    let mut named = Vec::new();

    // native-tools: MCP over HTTP on the compose network.
    let (tool_mounts, _) = mounts("native-tools", tools, &dir, &mut named)?;
    let root = tools
        .config
        .volumes
        .first()
        .cloned()
        .unwrap_or_else(|| "/app/data".into());
    let mut nt: Vec<(&str, Y)> = vec![("image", s(image_ref(tools, opts)?))];
    if !dev {
        nt.push(("restart", s("unless-stopped")));
    }
    nt.push((
        "command",
        flow([
            "--transport".to_string(),
            "http".into(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            NATIVE_TOOLS_PORT.to_string(),
            "--root".into(),
            root,
        ]),
    ));
    nt.push(("user", s(tools.config.user.clone())));
    nt.push(("expose", Y::Seq(vec![s(NATIVE_TOOLS_PORT.to_string())])));
    let mut env = vec![
        // Secrets and endpoints by reference: passed from the environment
        // compose runs in, never written here.
        s("KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"),
        s("FIRECRAWL_API_KEY"),
        s("OLLAMA_HOST"),
        s("NATIVE_TOOLS_HTTP_TOKEN_FILE=/run/secrets/native_tools_token"),
    ];
    if dev {
        env.push(s("LOG_LEVEL=debug"));
    }
    nt.push(("environment", Y::Seq(env)));
    nt.push(("volumes", Y::Seq(tool_mounts)));
    nt.push(("secrets", Y::Seq(vec![s("native_tools_token")])));
    nt.push((
        "healthcheck",
        healthcheck(
            vec!["CMD".into(), "native-tools".into(), "health".into()],
            check,
        ),
    ));
    hardening(&mut nt);
    if !dev {
        nt.push(("logging", logging()));
    }

    // ael: the image's port, its health check, its volumes.
    let (ael_mounts, binds) = mounts("ael", ael, &dir, &mut named)?;
    let config_dir = ael
        .config
        .env
        .iter()
        .find_map(|e| e.strip_prefix("AEL_CONFIG_PATH="))
        .and_then(|p| Path::new(p).parent())
        .map_or_else(|| "/app/config".to_string(), |p| p.display().to_string());
    if !binds.contains_key(&config_dir) {
        return Err(Error::Request(format!(
            "image ael in {} does not copy its configuration directory {config_dir} from the checkout (a volume filled by `path:` entries): compose mounts it read-only",
            plan.spec_file.display()
        )));
    }
    let mut a: Vec<(&str, Y)> = vec![("image", s(image_ref(ael, opts)?))];
    if !dev {
        a.push(("restart", s("unless-stopped")));
    }
    if dev {
        let mut cmd = ael.config.cmd.clone();
        cmd.push("--reload".into());
        a.push(("command", flow(cmd)));
    }
    a.push(("user", s(ael.config.user.clone())));
    let ports: Vec<Y> = ael
        .config
        .exposed_ports
        .iter()
        .filter_map(|p| p.strip_suffix("/tcp"))
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                // AEL_PORT picks the host side: `127.0.0.1:18082`.
                s(format!("${{AEL_PORT:-{p}}}:{p}"))
            } else {
                s(format!("{p}:{p}"))
            }
        })
        .collect();
    a.push(("ports", Y::Seq(ports)));
    let mut env = vec![
        s(format!(
            "AEL_LOG_LEVEL={}",
            if dev { "DEBUG" } else { "INFO" }
        )),
        s(format!("AEL_CONFIG_PATH={config_dir}/{COMPOSE_CONFIG}")),
        s("AEL_HTTP_TOKEN_FILE=/run/secrets/ael_token"),
    ];
    if dev {
        env.push(s("AEL_HOT_RELOAD=true"));
    }
    a.push(("environment", Y::Seq(env)));
    a.push(("volumes", Y::Seq(ael_mounts)));
    a.push((
        "secrets",
        Y::Seq(vec![s("ael_token"), s("native_tools_token")]),
    ));
    a.push((
        "depends_on",
        map(vec![(
            "native-tools",
            map(vec![("condition", s("service_healthy"))]),
        )]),
    ));
    let mut test = vec!["CMD".to_string()];
    test.extend(check.test.iter().skip_while(|t| *t == "CMD").cloned());
    a.push(("healthcheck", healthcheck(test, check)));
    hardening(&mut a);
    if !dev {
        a.push(("logging", logging()));
    }

    let secrets = SECRETS
        .iter()
        .map(|(name, file, _)| {
            (
                (*name).to_string(),
                map(vec![("file", s(relative(&dir, &dir.join(file))))]),
            )
        })
        .collect();
    named.sort();
    named.dedup();
    let doc = map(vec![
        (
            "services",
            map(vec![("ael", map(a)), ("native-tools", map(nt))]),
        ),
        (
            "volumes",
            Y::Map(named.into_iter().map(|n| (n, Y::Null)).collect()),
        ),
        ("secrets", Y::Map(secrets)),
    ]);

    let spec = absolute(&plan.spec_file)?;
    let command = if dev {
        "aelimg compose --dev -o docker-compose.dev.yaml"
    } else {
        "aelimg compose -o docker-compose.yaml"
    };
    let mut out = format!(
        "# DOC-056's {} deployment of ael and native-tools, written by\n\
         #     {command}\n\
         # from {}: do not edit it, edit images.yaml and run that again\n\
         # (a test fails when the committed file differs from what it writes).\n\
         #\n",
        if dev { "development" } else { "production" },
        relative(&dir, &spec)
    );
    if dev {
        out.push_str(
            "# Up: docker compose -f docker-compose.dev.yaml up (workflows and config are\n\
             # mounted from the checkout; ael reloads edited workflows; no restart policy).\n",
        );
    } else {
        out.push_str(
            "# Up: docker compose up -d, after `aelimg build --load` and creating the\n\
             # secret files below (readable by uid 10001). AEL_PORT picks the host port\n\
             # (default 8082; e.g. AEL_PORT=127.0.0.1:8082 to stay on loopback).\n",
        );
    }
    if !opts.pins.is_empty() {
        out.push_str("# Images pinned by digest (--pin), as pushed.\n");
    }
    out.push_str("# Secrets (files, never values in this file):\n");
    for (name, file, what) in SECRETS {
        out.push_str(&format!("#   {file}: {what} ({name})\n"));
    }
    emit(&mut out, 0, &doc);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_compose_reads_them() {
        let s = 1_000_000_000;
        assert_eq!(duration(30 * s), "30s");
        assert_eq!(duration(90 * s), "1m30s");
        assert_eq!(duration(3600 * s), "1h");
        assert_eq!(duration(s / 2), "500ms");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn scalars_are_quoted_when_yaml_needs_it() {
        assert_eq!(scalar("ael:latest"), "\"ael:latest\"");
        assert_eq!(scalar("unless-stopped"), "unless-stopped");
        assert_eq!(scalar("/tmp"), "/tmp");
        assert_eq!(scalar("8083"), "\"8083\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(
            scalar("no-new-privileges:true"),
            "\"no-new-privileges:true\""
        );
        assert_eq!(
            scalar("${AEL_PORT:-8082}:8082"),
            "\"${AEL_PORT:-8082}:8082\""
        );
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/r"), Path::new("/r/images/w")),
            "./images/w"
        );
        assert_eq!(
            relative(Path::new("/r/a"), Path::new("/r/images")),
            "../images"
        );
        assert_eq!(relative(Path::new("/r"), Path::new("/r")), ".");
    }
}
