//! `runner list`: the bundled policies.

use clap::Args;
use serde_json::json;

use super::{CommandResult, Exit, OutputFormat};
use crate::policy::{catalog, default_search_path};

/// `runner list`'s arguments.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t, conflicts_with = "names")]
    output: OutputFormat,

    /// Only the names, one per line (for scripts and shell completion).
    #[arg(long)]
    names: bool,
}

/// Print the bundled policies.
pub fn run(args: ListArgs) -> CommandResult {
    let search = default_search_path();
    let rows: Vec<_> = catalog(&search).into_iter().map(|entry| (entry.name, entry.path, entry.loaded)).collect();
    if args.names {
        for (name, _, loaded) in &rows {
            println!("{}", loaded.as_ref().map_or(name.as_str(), |p| p.manifest.name.as_str()));
        }
        return Ok(Exit::Success);
    }
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => {
            let items: Vec<_> = rows
                .iter()
                .map(|(name, path, loaded)| match loaded {
                    Ok(p) => json!({"name": p.manifest.name, "version": p.manifest.version, "world": p.manifest.world, "description": p.manifest.description, "path": path}),
                    Err(e) => json!({"name": name, "path": path, "error": e.to_string()}),
                })
                .collect();
            format.print(&items);
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
                        let head = format!("{:<28} {:<8} {:<8}", p.manifest.name, p.manifest.version, p.manifest.world.to_string());
                        println!("{head} {}", clipped(summary, LINE_WIDTH.saturating_sub(head.chars().count() + 1)));
                    }
                    Err(e) => println!("{name:<28} unusable: {e}"),
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// The widest line `runner list` prints: the full description is in `runner review` and `--output json`.
const LINE_WIDTH: usize = 120;

/// `text` cut at a word boundary to at most `width` characters, ending in `…` when cut.
fn clipped(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() + word.chars().count() + 2 > width {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::clipped;

    #[test]
    fn long_summaries_are_cut_at_a_word() {
        assert_eq!(clipped("short enough", 20), "short enough");
        assert_eq!(clipped("move every member of a StatefulSet", 20), "move every member…");
        assert!(clipped(&"word ".repeat(200), 60).chars().count() <= 60);
    }
}
