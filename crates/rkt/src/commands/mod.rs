//! One module per rkt subcommand.

pub mod fetch;
pub mod image;
pub mod pods;
pub mod run;
pub mod version;

pub use stage0::fs::copy_tree;
