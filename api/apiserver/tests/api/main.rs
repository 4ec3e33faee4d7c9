//! Process-level tests of apiserver: the real binary on a test node, spoken to over its socket.

mod bad_requests;
mod concurrency;
mod security;
mod settings;
mod support;
mod updates;
