//! `aelimg login`.

use std::io::Read as _;

use aelimg::reference::Reference;
use aelimg::registry::Registry;
use aelimg::registry::credentials::{Credential, store};
use anyhow::Context as _;
use clap::Args;

use super::args::RegistryArgs;
use super::progress::Mode;
use super::{CmdResult, usage};

/// Arguments of `aelimg login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry, HOST[:PORT] (docker.io for Docker Hub).
    #[arg(value_name = "REGISTRY")]
    registry: String,
    /// The user name.
    #[arg(short = 'u', long)]
    username: String,
    /// Read the password (or token) from standard input (the only way: a
    /// password on the command line ends up in shell history and `ps`).
    #[arg(long, required = true)]
    password_stdin: bool,
    #[command(flatten)]
    args: RegistryArgs,
}

/// Checks the credentials against the registry and stores them.
pub fn run(args: &LoginArgs, mode: Mode) -> CmdResult {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(usage("--password-stdin: standard input was empty"));
    }
    let r = Reference::parse(&format!("{}/x", args.registry.trim_end_matches('/')))
        .map_err(|_| usage(format!("`{}` is not a registry host", args.registry)))?;
    let creds = Credential {
        username: args.username.clone(),
        secret: password.clone(),
        source: "standard input".into(),
    };
    let reg = Registry::connect_with(&r.registry, r.api_host(), args.args.options()?, Some(creds))?;
    reg.check_login()?;
    let dest = store(&r.registry, &args.username, &password)?;
    if mode != Mode::Quiet {
        eprintln!(
            "Login Succeeded: credentials for {} saved in {dest}",
            r.registry
        );
    }
    Ok(())
}
