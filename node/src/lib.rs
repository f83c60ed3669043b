//! zeek-node: a Zeek-compatible network analysis node.
//!
//! Data flow (docs/ARCHITECTURE.md): [`capture`] → [`decode`] → [`conn`] (sessions, reassembly) →
//! [`analyzers`] → [`logs`]; [`engine`] ties one analysis thread together.

pub mod alloc;
pub mod analyzers;
pub mod capture;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod cpus;
pub mod decode;
pub mod detect;
pub mod engine;
pub mod exchange;
pub mod logs;
pub mod metrics;
pub mod retention;
pub mod runner;
pub mod watchdog;
