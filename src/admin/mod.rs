//! The admin surface: the JSON API ([`api`]), served on a Unix socket
//! ([`socket`]) and optionally on TCP with bearer tokens ([`tcp`],
//! [`tokens`]), with `/metrics` and health ([`service`]); its OpenAPI
//! document ([`openapi`]); and the client the CLI uses ([`client`]).

pub mod api;
pub mod client;
pub mod openapi;
pub mod service;
pub mod socket;
pub mod tcp;
pub mod tokens;
