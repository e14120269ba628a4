//! `rkt export [--app=NAME] [--overwrite] UUID FILE.aci`: an exited pod's app as an ACI.

use crate::flags::GlobalArgs;
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Name of the app to export within the specified pod
    #[arg(long)]
    pub app: Option<String>,
    /// Overwrite output ACI
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::flags::parse_bool, default_value = "false")]
    pub overwrite: bool,
    /// The exited pod's UUID (or a unique prefix)
    pub uuid: String,
    /// Where to write the ACI (its name ends in .aci)
    pub output: PathBuf,
}

pub fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<()> {
    stage0::export::export(
        &global.config()?,
        &args.uuid,
        args.app.as_deref(),
        &args.output,
        args.overwrite,
    )?;
    Ok(())
}
