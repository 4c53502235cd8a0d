//! Serving DNS: the loopback listener, the per-query handler, routing snapshots, the answer cache and
//! the upstream transports (UDP, reused TCP and TLS streams). This side reads routing snapshots; it never changes link state.

pub mod cache;
pub mod ede;
pub mod fastval;
pub mod handler;
pub mod listener;
pub mod route;
pub mod scrub;
// Test support (unit tests, and the `test-support` feature for integration tests and benches):
// not in a release build.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod signing_fixture;
pub mod snapshot;
pub mod stream;
pub mod tls;
pub mod udp;
pub mod upstream;
pub mod validate;
pub mod wire;
