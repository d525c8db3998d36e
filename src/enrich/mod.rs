//! Facts derived from a request beyond its token: who the client is (IP,
//! geo, User-Agent), what kind of agent made the request, and what privacy
//! the request asks for.
//!
//! Each submodule takes request parts and returns values; none of them
//! touches a sink or does I/O on the request path (the geo databases are
//! memory-mapped and reloaded off the request path).

pub mod agent;
pub mod geo;
pub mod ip;
pub mod privacy;
pub mod ua;
