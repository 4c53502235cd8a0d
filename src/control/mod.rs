//! The control socket: the only door into the running daemon. A Unix socket, one JSON request per
//! line ([`protocol`]); peers are checked by their kernel credentials ([`server`]); the CLI and hooks
//! talk to it through [`client`].

pub mod client;
pub mod limits;
pub mod protocol;
pub mod server;
