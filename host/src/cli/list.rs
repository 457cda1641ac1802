//! `runner list`: the bundled policies.

use clap::Args;
use serde_json::json;

use super::{CommandResult, Exit, OutputFormat};
use crate::policy::{catalog, default_search_path};

/// `runner list`'s arguments.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Print the bundled policies.
pub fn run(args: ListArgs) -> CommandResult {
    let search = default_search_path();
    let rows: Vec<_> = catalog(&search).into_iter().map(|entry| (entry.name, entry.path, entry.loaded)).collect();
    match args.output {
        OutputFormat::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|(name, path, loaded)| match loaded {
                    Ok(p) => json!({"name": p.manifest.name, "version": p.manifest.version, "world": p.manifest.world, "description": p.manifest.description, "path": path}),
                    Err(e) => json!({"name": name, "path": path, "error": e.to_string()}),
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
        }
        OutputFormat::Text => {
            if rows.is_empty() {
                println!(
                    "no bundled policies found; build them with scripts/build-policies (searched: {})",
                    search.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            for (name, _, loaded) in &rows {
                match loaded {
                    Ok(p) => {
                        let summary = p.manifest.description.split(". ").next().unwrap_or_default();
                        println!("{:<28} {:<8} {:<8} {summary}", p.manifest.name, p.manifest.version, p.manifest.world.to_string());
                    }
                    Err(e) => println!("{name:<28} unusable: {e}"),
                }
            }
        }
    }
    Ok(Exit::Success)
}
