//! `runner push`, `runner pull`, `runner sign`, `runner verify`, `runner
//! key generate`: policies in OCI registries and image layouts
//! ([`crate::distribution`]).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::distribution::lock::Lock;
use crate::distribution::signature::{NamedKey, PublicKey, SigningKey};
use crate::distribution::{self, Reference};
use crate::policy::Policy;
use crate::run::{distribution_failure, distribution_settings};

/// `runner push`'s arguments.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The component to push (inspected first: what the host would refuse is not pushed).
    file: PathBuf,
    /// Where: `oci://REGISTRY/REPOSITORY:TAG`, or `oci-layout:DIR:TAG` (an image-layout directory, created when missing).
    reference: String,
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner pull`'s arguments.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// `oci://REGISTRY/REPOSITORY[:TAG|@sha256:...]` or `oci-layout:DIR[:TAG|@sha256:...]`.
    reference: String,
    /// Also write the component to this file.
    #[arg(long, value_name = "FILE.wasm")]
    save: Option<PathBuf>,
    /// Also write it (and its signature, when pulled) into this OCI image-layout directory, for clusters with no registry.
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner sign`'s arguments.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The reference whose manifest to sign (`oci://...`, or `oci-layout:DIR[:TAG|@sha256:...]`, signed in place with no network).
    reference: String,
    /// The private key (PEM: cosign's encrypted key, PKCS#8 or SEC1); its password from COSIGN_PASSWORD.
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner verify`'s arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The reference whose signature to check.
    reference: String,
    /// A public key (PEM) one of which must have signed; repeatable.
    #[arg(long, value_name = "PUB.pem", required = true)]
    key: Vec<PathBuf>,
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner key`'s arguments.
#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

/// What `runner key` does.
#[derive(clap::Subcommand, Debug)]
enum KeyCommand {
    /// Write an ECDSA P-256 key pair as cosign does: PREFIX.key (encrypted
    /// with COSIGN_PASSWORD, which may be empty) and PREFIX.pub.
    Generate {
        /// The files' prefix: PREFIX.key and PREFIX.pub.
        #[arg(default_value = "runner")]
        prefix: PathBuf,
        /// Replace files that are already there.
        #[arg(long)]
        force: bool,
        /// Report format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

fn parse(reference: &str) -> Result<Reference, Failure> {
    Reference::parse(reference).map_err(|e| distribution_failure(&e))
}

fn read(path: &PathBuf, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::bad_input(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Push a component to a registry; print the manifest digest.
pub fn push(args: PushArgs) -> CommandResult {
    let reference = parse(&args.reference)?;
    let policy = Policy::load(&args.file).map_err(|e| Failure::bad_input(e.to_string()))?;
    let pushed = distribution::push(&policy.bytes, &reference, distribution_settings()).map_err(|e| distribution_failure(&e))?;
    match args.output {
        OutputFormat::Text => {
            println!("pushed {} {} ({}) to {}", policy.manifest.name, policy.manifest.version, policy.manifest.world, args.reference);
            println!("reference: {}", pushed.reference);
            println!("digest:    {}", pushed.manifest_digest);
            println!("layer:     {} ({} bytes)", pushed.layer_digest, pushed.size);
        }
        format => format.print(&pushed),
    }
    Ok(Exit::Success)
}

/// Pull a reference into the cache (checked as every load is), pin it in the lock file.
pub fn pull(args: PullArgs, lock_file: PathBuf) -> CommandResult {
    let reference = parse(&args.reference)?;
    let settings = distribution_settings();
    let fetched = distribution::fetch(&reference, settings).map_err(|e| distribution_failure(&e))?;
    let policy = Policy::from_bytes(std::path::Path::new(&fetched.reference), fetched.bytes.clone()).map_err(|e| Failure::bad_input(e.to_string()))?;
    let mut lock = Lock::load(&lock_file).map_err(|e| distribution_failure(&e))?;
    lock.upsert(policy.name(), &args.reference, &fetched.manifest_digest);
    lock.save(&lock_file).map_err(|e| distribution_failure(&e))?;
    if let Some(save) = &args.save {
        std::fs::write(save, &fetched.bytes).map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", save.display())))?;
    }
    if let Some(dir) = &args.layout {
        distribution::write_layout(&fetched, &reference, settings, dir).map_err(|e| distribution_failure(&e))?;
    }
    let cached = distribution::cached_blob(settings, &fetched.layer_digest);
    let document = json!({
        "name": policy.name(),
        "version": policy.manifest.version,
        "world": policy.manifest.world,
        "reference": fetched.reference,
        "digest": fetched.manifest_digest,
        "layer_digest": fetched.layer_digest,
        "size_bytes": fetched.bytes.len(),
        "signer": fetched.signer,
        "from_cache": fetched.from_cache,
        "cache_path": cached,
        "lock_file": lock_file,
        "layout": args.layout,
    });
    match args.output {
        OutputFormat::Text => {
            println!("pulled {} {} ({}) from {}", policy.name(), policy.manifest.version, policy.manifest.world, args.reference);
            println!("digest:  {}", fetched.manifest_digest);
            println!("size:    {} bytes (layer {})", fetched.bytes.len(), fetched.layer_digest);
            println!("signer:  {}", fetched.signer.as_deref().unwrap_or("none (the trust policy asks for no signature)"));
            if let Some(path) = &cached {
                println!("cache:   {}{}", path.display(), if fetched.from_cache { " (no network call)" } else { "" });
            }
            println!("locked:  {}", lock_file.display());
            if let Some(dir) = &args.layout {
                println!("layout:  {}", dir.display());
            }
        }
        format => format.print(&document),
    }
    Ok(Exit::Success)
}

/// Sign a reference's manifest with a key; print the signature tag.
pub fn sign(args: SignArgs) -> CommandResult {
    let reference = parse(&args.reference)?;
    let pem = read(&args.key, "key")?;
    let password = std::env::var("COSIGN_PASSWORD").ok();
    let key = SigningKey::from_pem(&pem, password.as_deref().map(str::as_bytes)).map_err(|e| Failure::bad_input(format!("{}: {e}", args.key.display())))?;
    let tag = distribution::sign(&reference, &key, distribution_settings()).map_err(|e| distribution_failure(&e))?;
    let fingerprint = key.public_key().fingerprint();
    match args.output {
        OutputFormat::Text => println!("signed {} with {} ({fingerprint}): tag {tag}", args.reference, args.key.display()),
        format => format.print(&json!({"reference": args.reference, "signature_tag": tag, "key": args.key, "fingerprint": fingerprint})),
    }
    Ok(Exit::Success)
}

/// Check a reference's signature; exit 0 and the signer, else 2.
pub fn verify(args: VerifyArgs) -> CommandResult {
    let reference = parse(&args.reference)?;
    let mut keys = Vec::new();
    for path in &args.key {
        let key = PublicKey::from_pem(&read(path, "public key")?).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
        keys.push(NamedKey { name: path.display().to_string(), key });
    }
    let signer = distribution::verify(&reference, &keys, distribution_settings()).map_err(|e| distribution_failure(&e))?;
    match args.output {
        OutputFormat::Text => println!("verified {}: signed by {} ({})", args.reference, signer.key, signer.fingerprint),
        format => format.print(&json!({"reference": args.reference, "signer": {"key": signer.key, "fingerprint": signer.fingerprint}})),
    }
    Ok(Exit::Success)
}

/// Generate a key pair; the private key never leaves its file unencrypted.
pub fn key(args: KeyArgs) -> CommandResult {
    let KeyCommand::Generate { prefix, force, output } = args.command;
    let password = std::env::var("COSIGN_PASSWORD")
        .map_err(|_| Failure::bad_input("set COSIGN_PASSWORD to the password that encrypts the private key (it may be empty: COSIGN_PASSWORD=)"))?;
    let with_extension = |extension: &str| {
        let mut path = prefix.clone().into_os_string();
        path.push(extension);
        PathBuf::from(path)
    };
    let (private, public) = (with_extension(".key"), with_extension(".pub"));
    if !force && let Some(existing) = [&private, &public].into_iter().find(|path| path.exists()) {
        return Err(Failure::bad_input(format!("{} exists; choose another prefix, or --force to replace it", existing.display())));
    }
    let key = SigningKey::generate();
    let write = |path: &PathBuf, text: &str, mode: u32| -> Result<(), Failure> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", path.display())))?;
        file.write_all(text.as_bytes()).map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", path.display())))
    };
    write(&private, &key.to_encrypted_pem(password.as_bytes()), 0o600)?;
    let public_key = key.public_key();
    write(&public, &public_key.to_pem(), 0o644)?;
    let fingerprint = public_key.fingerprint();
    match output {
        OutputFormat::Text => {
            println!("private key: {} (encrypted with COSIGN_PASSWORD; cosign reads it too)", private.display());
            println!("public key:  {} ({fingerprint})", public.display());
        }
        format => format.print(&json!({"private_key": private, "public_key": public, "fingerprint": fingerprint})),
    }
    Ok(Exit::Success)
}
