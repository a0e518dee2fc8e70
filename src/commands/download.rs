//! `gpu-nn download`: a dataset fetched ahead of time into the directory the other commands
//! read, each file verified by content (`data::sources::download_command`).

use crate::commands::args::DownloadArgs;
use crate::core::Settings;
use anyhow::{Result, bail};

pub fn run(a: DownloadArgs, env: &Settings) -> Result<()> {
    let name: crate::data::DatasetName = a.dataset.parse()?;
    if name == crate::data::DatasetName::Inline {
        bail!("--dataset inline has nothing to download");
    }
    let dir = crate::data::sources::data_dir(name, a.dir.as_deref(), &env.data);
    #[cfg(feature = "download")]
    return crate::data::sources::download_command(name, &dir, &env.data, a.quiet);
    #[cfg(not(feature = "download"))]
    bail!("this build of gpu-nn cannot download (built without the cargo feature `download`); put the {} files into {}", name.name(), dir.display())
}
