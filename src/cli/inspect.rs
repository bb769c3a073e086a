//! `aelimg inspect`: an image's layers, files and wasted bytes.

use std::fmt::Write as _;

use aelimg::inspect::files::FileInfo;
use aelimg::inspect::tree::Change;
use aelimg::inspect::{Image, Inspection, Source, inspect};
use aelimg::report::human;
use clap::Args;

use super::args::RegistryArgs;
use super::{CmdResult, usage};

/// Arguments of `aelimg inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG], or
    /// REGISTRY/REPO[:TAG][@sha256:…].
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The platform of a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    platform: Option<String>,
    /// Show this layer's files (0 is the bottom layer) and what each does.
    #[arg(long, value_name = "N", conflicts_with = "tree")]
    layer: Option<usize>,
    /// Show the merged file tree (what a container sees).
    #[arg(long)]
    tree: bool,
    /// How many of the largest files to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Print JSON on stdout: without --layer, the summary, the largest files
    /// and the merged file tree; with --layer, that layer's entries.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `-rw-r--r--  0:0  12.3 kB  /path -> target`.
pub fn file_row(f: &FileInfo) -> String {
    let size = match f.kind {
        aelimg::inspect::files::FileType::Dir => "-".to_string(),
        _ => human(f.size),
    };
    let mut s = format!(
        "{}  {:>11}  {:>10}  {}",
        f.mode_string(),
        format!("{}:{}", f.uid, f.gid),
        size,
        f.path
    );
    if let Some(l) = &f.link {
        let arrow = if f.kind == aelimg::inspect::files::FileType::Hardlink {
            "link to"
        } else {
            "->"
        };
        let _ = write!(s, " {arrow} {l}");
    }
    s
}

fn summary(i: &Inspection) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} ({})", i.source, i.platform);
    if let Some(m) = &i.manifest {
        let _ = writeln!(s, "manifest {m}");
    }
    let _ = writeln!(s, "config   {}", i.config);
    let _ = writeln!(
        s,
        "{} compressed, {} uncompressed, {} in {} files, {} wasted",
        human(i.compressed),
        human(i.uncompressed),
        human(i.file_bytes),
        i.files
            .iter()
            .filter(|f| f.file.kind == aelimg::inspect::files::FileType::File)
            .count(),
        human(i.wasted)
    );
    let _ = writeln!(
        s,
        "\n{:>5}  {:<12}  {:>10}  {:>12}  {:>6}  {:>11}  {:>7}  {:>10}",
        "layer",
        "digest",
        "compressed",
        "uncompressed",
        "added",
        "overwritten",
        "deleted",
        "wasted"
    );
    for l in &i.layers {
        let _ = writeln!(
            s,
            "{:>5}  {:<12}  {:>10}  {:>12}  {:>6}  {:>11}  {:>7}  {:>10}",
            l.index,
            l.blob.digest.short(),
            human(l.blob.size),
            human(l.uncompressed),
            l.stats.added,
            l.stats.overwritten,
            l.stats.deleted,
            human(l.stats.wasted)
        );
    }
    if !i.largest.is_empty() {
        let _ = writeln!(s, "\nlargest files:");
        for f in &i.largest {
            let _ = writeln!(
                s,
                "  {:>10}  {}  (layer {})",
                human(f.file.size),
                f.file.path,
                f.layer
            );
        }
    }
    s
}

/// Prints what an image holds.
pub fn run(args: &InspectArgs) -> CmdResult {
    let source = Source::parse(&args.image)?;
    let image = Image::open(&source, args.platform.as_deref(), &args.registry.options()?)?;
    let (inspection, merged) = inspect(&image, args.top)?;
    let out = match args.layer {
        Some(n) => {
            let Some(layer) = inspection.layers.get(n) else {
                return Err(usage(format!(
                    "--layer {n}: {} has {} layers (0 to {})",
                    inspection.source,
                    inspection.layers.len(),
                    inspection.layers.len().saturating_sub(1)
                )));
            };
            let entries = &merged.layers[n];
            if args.json {
                serde_json::to_string_pretty(&serde_json::json!({
                    "source": inspection.source,
                    "platform": inspection.platform,
                    "layer": layer,
                    "entries": entries,
                }))
                .map_err(anyhow::Error::from)?
            } else {
                let mut s = format!(
                    "{} ({}) layer {n}: {}, {} compressed, {} uncompressed; {} added, {} overwritten, {} deleted, {} wasted\n",
                    inspection.source,
                    inspection.platform,
                    layer.blob.digest,
                    human(layer.blob.size),
                    human(layer.uncompressed),
                    layer.stats.added,
                    layer.stats.overwritten,
                    layer.stats.deleted,
                    human(layer.stats.wasted)
                );
                let mut rows: Vec<_> = entries.iter().collect();
                rows.sort_by(|a, b| aelimg::inspect::tree::tree_order(&a.file.path, &b.file.path));
                for e in rows {
                    let mark = match e.change {
                        Change::Added => "A",
                        Change::Overwritten => "M",
                        Change::Unchanged => " ",
                        Change::Deleted => "D",
                        Change::Opaque => "O",
                    };
                    let _ = writeln!(s, "{mark} {}", file_row(&e.file));
                }
                s.push_str("(A added, M overwritten, D deleted, O opaque: hides what the layers below have in it)");
                s
            }
        }
        None if args.json => {
            serde_json::to_string_pretty(&inspection).map_err(anyhow::Error::from)?
        }
        None => {
            let mut s = summary(&inspection);
            if args.tree {
                let _ = writeln!(s, "\nfiles (layer, mode, owner, size, path):");
                for f in &inspection.files {
                    let _ = writeln!(s, "{:>3}  {}", f.layer, file_row(&f.file));
                }
            }
            s.trim_end().to_string()
        }
    };
    println!("{out}");
    Ok(())
}
