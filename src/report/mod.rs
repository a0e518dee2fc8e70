//! What a person reads: the terminal (`console`: log formats and quiet), confusion matrices
//! (`confusion`) and pictures (`plots`: curves, sweep rows and the drawing they share;
//! `confusion_picture`).

pub mod confusion;
pub mod confusion_picture;
pub mod console;
pub mod plots;
