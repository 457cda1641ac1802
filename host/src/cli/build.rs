//! `runner build [DIR]`: a policy's sources to a checked, precompiled component.

use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Exit, OutputFormat};
use crate::run::build;

/// `runner build`'s arguments.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The policy folder: a Rust crate (Cargo.toml) or a Python gate (manifest.toml and app.py).
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,

    /// Where to write the component (default: DIR/target/NAME.wasm).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Build, check and precompile the policy in `args.dir`.
pub fn run(args: BuildArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let built = build::build(&args.dir, args.out.as_deref(), cache_dir, &mut |line| eprintln!("build: {line}"))?;
    if args.output != OutputFormat::Text {
        args.output.print(&built);
        return Ok(Exit::Success);
    }
    println!("built {} {} ({:?}) -> {}", built.world, built.name, built.language, built.component.display());
    println!("  size     {:.1} MB ({} bytes)", built.bytes as f64 / 1e6, built.bytes);
    println!("  digest   {}", built.digest);
    println!("  build    {:.1} s", built.build_time.as_secs_f64());
    let compiled = if built.already_compiled { "already in the cache" } else { "compiled" };
    let cache = built.cache_dir.as_ref().map_or("no cache directory: exec compiles it again".to_string(), |d| d.display().to_string());
    println!("  compile  {:.1} s, {compiled} ({cache})", built.compile_time.as_secs_f64());
    println!("\ntest and run it:\n  runner test {}\n  runner exec {} --target lab", args.dir.display(), built.component.display());
    Ok(Exit::Success)
}
