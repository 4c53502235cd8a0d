//! Serving DNS: the loopback listener, the per-query handler, routing snapshots, the answer cache and
//! the upstream transport. This side reads routing snapshots; it never changes link state.

pub mod cache;
pub mod ede;
pub mod fastval;
#[doc(hidden)]
pub mod fastval_fixture;
pub mod handler;
pub mod listener;
pub mod route;
pub mod scrub;
pub mod snapshot;
pub mod udp;
pub mod upstream;
pub mod validate;
pub mod wire;
