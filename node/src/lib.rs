//! zeek-node: a Zeek-compatible network analysis node.
//!
//! Data flow (docs/ARCHITECTURE.md): [`capture`] → [`decode`] → [`conn`] (sessions, reassembly) →
//! [`analyzers`] → [`logs`]; [`engine`] ties one analysis thread together.

pub mod analyzers;
pub mod conn;
pub mod logs;
pub mod config;
pub mod decode;
pub mod engine;
pub mod capture;
pub mod runner;
pub mod cluster;
