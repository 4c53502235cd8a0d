//! The control socket: the only door into the running daemon. A Unix socket, one JSON request per
//! line ([`protocol`]); peers are checked by their kernel credentials and held to limits
//! ([`server`], [`limits`]); requests reach the daemon through the [`api::ControlApi`] trait it
//! implements; the CLI and hooks talk to it through [`client`].

pub(crate) mod api;
pub mod client;
pub(crate) mod events;
pub(crate) mod limits;
pub mod protocol;
pub(crate) mod server;
