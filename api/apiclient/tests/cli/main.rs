//! Process-level tests: the real `apiclient` binary against a fake API server on a unix socket.

mod fake_api;
mod raw;
mod settings;
mod update;
