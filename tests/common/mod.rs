//! Shared test fixtures: an in-process davgate, a recording backend, HTTP
//! helpers, and real DAV servers (Radicale, WsgiDAV) with their clients.

#![allow(dead_code, unused_imports)]

pub mod backends;
pub mod binary;
pub mod client;
pub mod gate;
pub mod postgres;
pub mod recipes;
pub mod recorder;
pub mod scripted;
pub mod web;

pub use client::{Http, raw, raw_status};
pub use gate::Gate;
pub use recorder::Recorder;

/// The scope for every path.
pub fn all() -> davgate::gateway::scope::Scope {
    davgate::gateway::scope::Scope::default()
}

/// A scope of the given services.
pub fn services(names: &[&str]) -> davgate::gateway::scope::Scope {
    davgate::gateway::scope::Scope { services: names.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}
