//! What a person reads: the terminal (`console`: log formats and quiet), confusion matrices
//! (`confusion`) and pictures (`plots`: curves, sweep rows and the drawing they share;
//! `confusion_picture`), and the model for other tools (`onnx`).

pub mod confusion;
pub mod confusion_picture;
pub mod console;
pub mod onnx;
pub mod plots;
