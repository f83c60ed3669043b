//! Version `v1alpha1` of the `zeek.io` API.

pub mod rules;
mod spec;
mod status;

pub use spec::*;
pub use status::*;
