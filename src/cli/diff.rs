//! `aelimg diff`: what differs between two images. Exits 0 when they are
//! the same image, 1 when they differ, 2 when either cannot be read or
//! the command line is wrong (as diff(1) does).

use std::fmt::Write as _;

use aelimg::diff::{Comparison, FileChangeKind, ImageDiff, compare};
use aelimg::inspect::Source;
use aelimg::report::human;
use clap::Args;

use super::args::RegistryArgs;
use super::{CmdResult, Failure};

/// Arguments of `aelimg diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first image: oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG], or
    /// REGISTRY/REPO[:TAG][@sha256:…].
    #[arg(value_name = "A")]
    a: String,
    /// The second image, in the same forms.
    #[arg(value_name = "B")]
    b: String,
    /// Compare only this platform (os/arch[/variant]); default: every
    /// platform of two multi-platform images.
    #[arg(long)]
    platform: Option<String>,
    /// How many file changes to list per platform (all of them with --json).
    #[arg(long, value_name = "N", default_value_t = 50)]
    top: usize,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `+1.2 kB`, `-3 B`, `0 B`.
pub fn signed(d: i64) -> String {
    let sign = match d.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    format!("{sign}{}", human(d.unsigned_abs()))
}

fn render_one(s: &mut String, d: &ImageDiff, top: usize) {
    for (name, side) in [("a", &d.a), ("b", &d.b)] {
        let _ = writeln!(
            s,
            "{name}: {} ({}, {})",
            side.source,
            side.platform,
            side.manifest.as_ref().map_or_else(
                || format!("config {}", side.config),
                |m| format!("manifest {m}")
            )
        );
    }
    if d.equal {
        let _ = writeln!(s, "{}: equal", d.b.platform);
        return;
    }
    if !d.config.is_empty() {
        let _ = writeln!(s, "config:");
        let show = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .map_or_else(|| "(none)".to_string(), ToString::to_string)
        };
        for c in &d.config {
            let _ = writeln!(s, "  {}: {} -> {}", c.field, show(&c.a), show(&c.b));
        }
    }
    for (what, list) in [("removed", &d.layers_removed), ("added", &d.layers_added)] {
        if !list.is_empty() {
            let _ = writeln!(s, "layers {what}:");
            for l in list {
                let _ = writeln!(
                    s,
                    "  {:>3}  {}  {}",
                    l.index,
                    l.blob.digest,
                    human(l.blob.size)
                );
            }
        }
    }
    if !d.files.is_empty() {
        let count = |k| d.files.iter().filter(|f| f.change == k).count();
        let _ = writeln!(
            s,
            "files: {} changed, {} added, {} removed",
            count(FileChangeKind::Changed),
            count(FileChangeKind::Added),
            count(FileChangeKind::Removed)
        );
        for f in d.files.iter().take(top) {
            let mark = match f.change {
                FileChangeKind::Added => '+',
                FileChangeKind::Removed => '-',
                FileChangeKind::Changed => '~',
            };
            let what = if f.what.is_empty() {
                String::new()
            } else {
                format!("  ({})", f.what.join(", "))
            };
            let _ = writeln!(s, "  {mark} {:>10}  {}{what}", signed(f.size_delta), f.path);
        }
        if d.files.len() > top {
            let _ = writeln!(s, "  … and {} more (--top, --json)", d.files.len() - top);
        }
    }
    for n in &d.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let files = match (d.a.file_bytes, d.b.file_bytes) {
        (Some(x), Some(y)) => format!(" ({} -> {})", human(x), human(y)),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "size: {} in files{files}, {} to pull",
        signed(d.size_delta),
        signed(d.compressed_delta)
    );
}

fn render(c: &Comparison, top: usize) -> String {
    let mut s = String::new();
    for (i, d) in c.platforms.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        render_one(&mut s, d, top);
    }
    for (which, list) in [(&c.a, &c.only_in_a), (&c.b, &c.only_in_b)] {
        if !list.is_empty() {
            let _ = writeln!(s, "only {which} has {}", list.join(", "));
        }
    }
    s.push_str(if c.equal { "equal\n" } else { "different\n" });
    s
}

/// Compares two images; exit 1 when they differ.
pub fn run(args: &DiffArgs) -> CmdResult {
    let opts = args.registry.options()?;
    let c = compare(
        &Source::parse(&args.a)?,
        &Source::parse(&args.b)?,
        args.platform.as_deref(),
        &opts,
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).map_err(anyhow::Error::from)?
        );
    } else {
        print!("{}", render(&c, args.top));
    }
    if c.equal {
        Ok(())
    } else {
        Err(Failure::Exit(1))
    }
}
