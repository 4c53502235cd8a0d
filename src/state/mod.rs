//! The daemon's truth about VPN links: what each connection offered ([`link`]), who owns which
//! domain ([`table`]), and its copy on disk ([`persist`]). Nothing here does DNS.

pub mod link;
pub(crate) mod persist;
pub(crate) mod table;

pub use link::{LinkSpec, SpecError};
pub use table::{AnchorState, AnchorView, Link, LinkTable, Refusal, RefusalKind, Resolved};
