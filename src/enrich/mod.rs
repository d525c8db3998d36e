//! Facts derived from a request beyond its token: who the client is (IP,
//! User-Agent) and what kind of agent made the request.
//!
//! Each submodule is pure: it takes request parts and returns values; none
//! of them touches a sink or does I/O on the request path.

pub mod agent;
pub mod ip;
pub mod ua;
