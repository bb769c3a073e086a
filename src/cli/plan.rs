//! `aelimg plan`.

use aelimg::error::Error;
use clap::Args;

use super::CmdResult;
use super::args::SpecArgs;

/// Arguments of `aelimg plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the resolved plan.
pub fn run(args: &PlanArgs) -> CmdResult {
    let planned = aelimg::pipeline::plan(&args.spec.file, &args.spec.plan_options()?)?;
    let plan = &planned.plan;
    if args.json {
        let s = serde_json::to_string_pretty(plan).map_err(|e| Error::json("plan", e))?;
        println!("{s}");
        return Ok(());
    }
    for img in &plan.images {
        let platforms: Vec<String> = img.platforms.iter().map(ToString::to_string).collect();
        println!("{}:{} [{}]", img.name, img.tag, platforms.join(", "));
        for l in &img.layers {
            println!("  layer {} ({} entries)", l.name, l.entries.len());
            for x in &l.excluded {
                println!("    excluded {} ({})", x.path, x.rule);
            }
        }
    }
    Ok(())
}
