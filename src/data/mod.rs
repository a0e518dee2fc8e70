//! Datasets: reading IDX files (`idx`), the samples and labels of a set (`dataset`), where the
//! files are and how they are downloaded (`sources`), and how pixels become inputs
//! (`input_norm`), pictures in MNIST's form (`picture`), and data of the user's own: NumPy
//! archives, CSV tables and image folders (`own`). Knows nothing of models or training.

pub mod classes;
pub mod csv_table;
pub mod dataset;
pub mod idx;
pub mod image_folder;
pub mod input_norm;
pub mod npy;
pub mod own;
pub mod picture;
pub mod sources;

pub use dataset::{Dataset, Pixels, Task};
pub use input_norm::{FeatureNorm, InputNorm};
pub use own::{DataKind, FileData, FileFormat, OwnData};
pub use sources::{DataSources, DatasetName};
