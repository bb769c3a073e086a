//! `aelimg cache info` and `aelimg cache prune`.

use std::path::PathBuf;

use aelimg::cache::LayerCache;
use aelimg::report::human;
use aelimg::store::BlobStore;
use aelimg::units::{ByteSize, Duration};
use clap::{Args, Subcommand};

use super::{CmdResult, usage};

/// Arguments of `aelimg cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
    /// The working blob store and layer cache (default: <cargo target dir>/aelimg).
    #[arg(long, value_name = "DIR", env = "AELIMG_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// What the cache holds.
    Info,
    /// Remove blobs and layer records, least recently used first.
    Prune {
        /// Remove what was last used longer ago than this (e.g. 72h, 7d).
        #[arg(long, value_name = "DURATION")]
        max_age: Option<String>,
        /// Then remove the least recently used until the blobs take at most
        /// this much (e.g. 2GB, 500MiB).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Remove everything.
        #[arg(long, conflicts_with_all = ["max_age", "max_size"])]
        all: bool,
    },
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: &str) -> CmdResult {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).map_err(|e| aelimg::Error::json("cache", e))?
        );
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Runs a cache command.
pub fn run(args: &CacheArgs) -> CmdResult {
    let dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| aelimg::pipeline::default_store_dir(std::path::Path::new(".")));
    let cache = LayerCache::new(&BlobStore::open(&dir)?, true);
    match &args.command {
        CacheCommand::Info => {
            let i = cache.info()?;
            let text = format!(
                "{}: {} blobs ({}), {} layer records, {} remembered file digests",
                i.dir.display(),
                i.blobs,
                human(i.blob_bytes),
                i.layers,
                i.files
            );
            print(args.json, &i, &text)
        }
        CacheCommand::Prune {
            max_age,
            max_size,
            all,
        } => {
            if max_age.is_none() && max_size.is_none() && !all {
                return Err(usage(
                    "cache prune: say what to remove: --max-age, --max-size or --all",
                ));
            }
            let age = match max_age {
                Some(a) => Some(
                    Duration::parse(a)
                        .map_err(|m| usage(format!("--max-age {a}: {m}")))?
                        .0,
                ),
                None => None,
            };
            let size = match (max_size, all) {
                (_, true) => Some(0),
                (Some(s), _) => Some(
                    ByteSize::parse(s)
                        .map_err(|m| usage(format!("--max-size {s}: {m}")))?
                        .0,
                ),
                (None, false) => None,
            };
            let p = cache.prune(age, size)?;
            let text = format!(
                "removed {} blobs ({}), {} layer records and {} SBOM and file-list records from {}",
                p.blobs,
                human(p.bytes),
                p.layers,
                p.records,
                dir.display()
            );
            print(args.json, &p, &text)
        }
    }
}
