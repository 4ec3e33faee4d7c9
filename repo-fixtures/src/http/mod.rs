//! A fault-injecting HTTP/1.1 server over a directory, for tests.
//!
//! ```no_run
//! use repo_fixtures::http::{Fault, FaultServer, PathMatch, Rule};
//!
//! let server = FaultServer::serve("/path/to/repo")?;
//! // The second request for timestamp.json gets a 503; the first target download drops after 1 KiB.
//! server.add_rule(Rule::new(PathMatch::suffix("timestamp.json"), Fault::Status(503)).nth(2));
//! server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(1024)).first(1));
//! let metadata_url = server.url_for("metadata/");
//! // ... run the client ...
//! assert!(server.requests_for(".lz4").iter().any(|r| r.range.is_some()), "the client resumed with a Range");
//! # Ok::<(), repo_fixtures::http::FaultServerError>(())
//! ```
//!
//! Files: `server.rs` (the handle and its lifecycle), `connection.rs` (one connection: choosing each response),
//! `body.rs` (sending a body with faults at exact byte counts), `fault.rs` (faults and rules), `range.rs`,
//! `request.rs` (request heads and paths), `request_log.rs`, `stop.rs` (the stop signal).

mod body;
mod connection;
mod fault;
mod range;
mod request;
mod request_log;
mod server;
mod stop;

pub use fault::{AfterStall, Applies, Fault, PathMatch, Rule, RuleId};
pub use range::ByteRange;
pub use request_log::RecordedRequest;
pub use server::{FaultServer, FaultServerBuilder, FaultServerError};
