//! Serving DNS: the loopback listener, the per-query handler, routing snapshots, the answer cache
//! and the upstream transports (UDP, reused TCP and TLS streams). This side reads routing
//! snapshots; it never changes link state.

pub mod cache;
pub(crate) mod ede;
pub(crate) mod exchange;
pub mod fastval;
pub mod handler;
pub(crate) mod listener;
pub mod route;
pub(crate) mod scrub;
// Test support (unit tests, and the `test-support` feature for integration tests and benches):
// not in a release build.
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod signing_fixture;
pub mod snapshot;
pub(crate) mod stream;
pub(crate) mod tls;
// The crate's only unsafe code: `recvmmsg`/`sendmmsg` through libc, each block with a SAFETY note.
#[allow(unsafe_code)]
pub(crate) mod udp;
pub mod upstream;
pub mod validate;
pub mod wire;
