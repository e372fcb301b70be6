//! The admin surface: the JSON API, served on a Unix socket, and the
//! client the CLI uses to reach a running server.

pub mod api;
pub mod client;
pub mod socket;
