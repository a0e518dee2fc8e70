//! What a person reads: the terminal (`console`: log formats and quiet), confusion matrices
//! (`confusion`) and pictures (`plots`: curves, sweep rows and the drawing they share;
//! `confusion_picture`), the model for other tools (`onnx`), and TensorBoard's event files
//! (`tensorboard`).

pub mod confusion;
#[cfg(feature = "cli")]
pub mod confusion_picture;
#[cfg(feature = "cli")]
pub mod console;
pub mod onnx;
#[cfg(feature = "cli")]
pub mod plots;
#[cfg(feature = "cli")]
pub mod tensorboard;
