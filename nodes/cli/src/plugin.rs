//! `evospike plugin list|new`: the plugins this host knows (built-in and found in
//! plugin folders), and a scaffold for a new external plugin crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use evospike_plugin_api::PluginType;
use evospike_plugin_host::{Entry, PluginSource};
use evospike_schemas::contract;
use serde_json::{json, Value};

use crate::out::Out;
use crate::table;

/// The plugin tools.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// List the built-in plugins and those found in the plugin folders.
    List(ListArgs),
    /// Write a new external plugin crate.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// A folder with external plugins (manifest + library). Repeatable; added to
    /// those in `EVOSPIKE_PLUGIN_DIRS`.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// A JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// Plugin name, e.g. `MyNeuron`.
    name: String,
    /// Plugin type.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    plugin_type: PluginType,
    /// Folder to create the crate in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

fn parse_type(text: &str) -> Result<PluginType, String> {
    text.parse::<PluginType>().map_err(|err| err.to_string())
}

pub(crate) fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::List(args) => list(args),
        PluginCommand::New(args) => new(args),
    }
}

fn plugin_dirs(flags: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var(contract::env::PLUGIN_DIRS)
        .map(|v| {
            contract::split_dirs(&v)
                .into_iter()
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    dirs.extend(flags.iter().cloned());
    dirs
}

fn source(entry: &Entry) -> String {
    match entry.source() {
        PluginSource::Builtin => "built-in".to_string(),
        PluginSource::External { library, .. } => library.display().to_string(),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let dirs = plugin_dirs(&args.plugin_dirs);
    let manager = evospike_plugins::plugin_manager(&dirs).context("cannot discover the plugins")?;
    for problem in manager.load_errors() {
        eprintln!("warning: {problem}");
    }
    let mut entries: Vec<&Entry> = manager.registry().entries().collect();
    entries.sort_by_key(|e| (e.metadata().plugin_type.code(), e.metadata().name.clone()));
    let mut out = Out::new();
    if args.json {
        let items: Vec<Value> = entries
            .iter()
            .map(|e| {
                let meta = e.metadata();
                json!({
                    "name": meta.name,
                    "type": meta.plugin_type.as_str(),
                    "version": meta.version.to_string(),
                    "priority": meta.effective_priority().0,
                    "status": e.status().to_string(),
                    "source": source(e),
                    "description": meta.description,
                })
            })
            .collect();
        out.line(Value::Array(items))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let meta = e.metadata();
            vec![
                meta.name.clone(),
                meta.plugin_type.to_string(),
                meta.version.to_string(),
                meta.effective_priority().0.to_string(),
                e.status().to_string(),
                source(e),
            ]
        })
        .collect();
    for line in table::render(
        &["NAME", "TYPE", "VERSION", "PRIORITY", "STATUS", "SOURCE"],
        &rows,
    ) {
        out.line(line)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let dir = evospike_plugin_host::scaffold::new_plugin(&args.dir, &args.name, args.plugin_type)
        .with_context(|| {
        format!(
            "cannot create plugin {} in {}",
            args.name,
            args.dir.display()
        )
    })?;
    let mut out = Out::new();
    out.line(format!(
        "created {} plugin {} in {}",
        args.plugin_type,
        args.name,
        dir.display()
    ))?;
    out.line(format!(
        "next: cargo build --release --manifest-path {}/Cargo.toml",
        dir.display()
    ))?;
    out.line(
        "then copy the library and its .plugin.toml manifest into a plugin folder (--plugin-dir)",
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_types_parse_by_name() {
        assert_eq!(parse_type("neuron").unwrap(), PluginType::Neuron);
        let err = parse_type("toaster").unwrap_err();
        assert!(err.contains("toaster") && err.contains("neuron"), "{err}");
    }
}
