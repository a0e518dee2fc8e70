//! What a person reads: the terminal (`console`: log formats, quiet, progress), pictures
//! (`plots`: curves, confusion, sweeps) and confusion matrices (`confusion`).

pub mod confusion;
pub mod console;
pub mod plots;
