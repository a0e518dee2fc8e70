//! Datasets: reading IDX files (`idx`), the samples and labels of a set (`dataset`), where the
//! files are and how they are downloaded (`sources`), and how pixels become inputs
//! (`input_norm`), and pictures in MNIST's form (`picture`). Knows nothing of models or training.

pub mod dataset;
pub mod idx;
pub mod input_norm;
pub mod picture;
pub mod sources;

pub use dataset::{Dataset, Pixels, Task};
pub use input_norm::InputNorm;
pub use sources::{DataSources, DatasetName};
