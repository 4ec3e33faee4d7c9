//! `update check|apply|cancel`: upstream's `wait_request`, which makes the API's fire-and-return update
//! actions synchronous.
//!
//! ```text
//!  GET /updates/status ──► before = most_recent_command.timestamp   (404: "first call")
//!  POST /actions/<action>  (non-2xx: error, upstream's shape)
//!  loop, at most max_attempts, sleeping `between_attempts` first:
//!      GET /updates/status ── 423 ─► keep waiting (the action holds the lock)
//!                          ── other failure ─► count it; the 5th aborts
//!                          ── 2xx: cmd_type == ours && timestamp != before ─► done:
//!                                  cmd_status must be "Success", else an error with its stderr
//! ```
//!
//! A status whose timestamp changed but whose `cmd_type` is another command keeps us waiting, as upstream
//! (someone else's command finished in between; ours may still finish, else we time out).

use crate::client::{self, ApiClient};
use log::{debug, info, trace, warn};
use serde_json::Value;
use snafu::{ResultExt, Snafu, ensure};
use std::time::Duration;

/// Overrides every wait's interval (milliseconds) while keeping upstream's attempt counts; for tests, so a
/// budget of 1200 polls does not take ten minutes. Not meant for operators (documented in the README).
pub const POLL_INTERVAL_ENV: &str = "APICLIENT_POLL_INTERVAL_MS";

/// How many failed status checks (other than 423) end the wait, as upstream.
const MAX_STATUS_FAILURES: u32 = 5;

/// How to wait for an action: `max_attempts` polls `between_attempts` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    pub between_attempts: Duration,
    pub max_attempts: u32,
}

impl WaitPolicy {
    #[must_use]
    pub const fn new(between_attempts: Duration, max_attempts: u32) -> Self {
        Self {
            between_attempts,
            max_attempts,
        }
    }

    /// Upstream's budget for a refresh: 100 ms × 100.
    #[must_use]
    pub fn refresh() -> Self {
        Self::new(Duration::from_millis(100), 100).overridden()
    }

    /// Upstream's budget for a prepare (writing the images): 500 ms × 1200.
    #[must_use]
    pub fn prepare() -> Self {
        Self::new(Duration::from_millis(500), 1200).overridden()
    }

    /// Upstream's budget for an activate or a deactivate: 100 ms × 50.
    #[must_use]
    pub fn activate() -> Self {
        Self::new(Duration::from_millis(100), 50).overridden()
    }

    fn overridden(self) -> Self {
        match std::env::var(POLL_INTERVAL_ENV)
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) => Self::new(Duration::from_millis(ms), self.max_attempts),
            None => self,
        }
    }
}

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display(
        "{command_name} attempt failed with status '{status_name}' ({exit_status}): {stderr}"
    ))]
    Command {
        command_name: String,
        status_name: String,
        exit_status: i64,
        stderr: String,
    },

    #[snafu(display("Failed getting update status: {source}"))]
    GetStatus { source: client::Error },

    #[snafu(display("Unable to check initial update status, got code '{code}': {body}"))]
    MissingStatus { code: u16, body: String },

    // Upstream's extra-clear wrapper for the most common failure.
    #[snafu(display(
        "Failed to prepare update.  This could mean that we don't have a list of updates yet or that an \
         update is already applied.  Running 'apiclient update check' will help you find out.  You can \
         cancel an applied ('Ready') update with 'apiclient update cancel' if desired.  Detail: {source}"
    ))]
    PrepareUpdate {
        #[snafu(source(from(Error, Box::new)))]
        source: Box<Error>,
    },

    #[snafu(display("Failed to make {command_name} request: {source}"))]
    Request {
        command_name: String,
        source: client::Error,
    },

    #[snafu(display(
        "Failed to check status {failures} times after {method} to {uri}, unsure of result"
    ))]
    StatusCheck {
        failures: u32,
        method: String,
        uri: String,
    },

    #[snafu(display(
        "Timed out after waiting {waited:?} after {method} to {uri}, unsure of result"
    ))]
    TimedOut {
        waited: Duration,
        method: String,
        uri: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Refreshes the list of updates and returns the status body that shows it done.
pub async fn check(client: &ApiClient) -> Result<String> {
    info!("Refreshing updates...");
    wait_request(
        client,
        "/actions/refresh-updates",
        "refresh",
        WaitPolicy::refresh(),
    )
    .await
}

/// Whether `update apply --check` has anything to do after a refresh: only in Available or Staged. Says why not
/// (on stderr) otherwise.
#[must_use]
pub fn required(status_body: &str) -> bool {
    let state = status_field(status_body, &["update_state"])
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    match state.as_str() {
        "Available" | "Staged" => true,
        "Idle" => {
            info!("No updates available; nothing to do.");
            false
        }
        "Ready" => {
            info!(
                "Update already applied; reboot for it to take effect, or request a cancel. Nothing to do."
            );
            false
        }
        other => {
            info!("Update state is '{other}', not Available or Staged; nothing to do.");
            false
        }
    }
}

/// Writes the chosen update into the inactive set (prepare), then makes it the next boot (activate).
pub async fn apply(client: &ApiClient) -> Result<()> {
    info!("Downloading and applying update to disk...");
    wait_request(
        client,
        "/actions/prepare-update",
        "prepare",
        WaitPolicy::prepare(),
    )
    .await
    .context(PrepareUpdateSnafu)?;

    info!("Setting the update active so it will apply on the next reboot...");
    wait_request(
        client,
        "/actions/activate-update",
        "activate",
        WaitPolicy::activate(),
    )
    .await?;
    Ok(())
}

/// Deactivates an applied (Ready) update; returns the status body that shows it done.
pub async fn cancel(client: &ApiClient) -> Result<String> {
    info!("Canceling update...");
    wait_request(
        client,
        "/actions/deactivate-update",
        "deactivate",
        WaitPolicy::activate(),
    )
    .await
}

/// POSTs `action` and waits until the status shows `command_name` finished (see the module's diagram);
/// returns that status body.
pub async fn wait_request(
    client: &ApiClient,
    action: &str,
    command_name: &str,
    wait: WaitPolicy,
) -> Result<String> {
    const STATUS: &str = "/updates/status";
    const METHOD: &str = "POST";

    let initial = client
        .request_unchecked("GET", STATUS, None)
        .await
        .context(GetStatusSnafu)?;
    // The first update command on a booted node finds no status yet (404): any new timestamp is a change.
    let before_timestamp = if initial.status == hyper::StatusCode::NOT_FOUND {
        "first call".to_owned()
    } else if initial.status.is_success() {
        timestamp(&initial.body).unwrap_or_else(|| "first call".to_owned())
    } else {
        return MissingStatusSnafu {
            code: initial.status.as_u16(),
            body: initial.body,
        }
        .fail();
    };
    debug!("Found initial timestamp '{before_timestamp}'");

    client
        .request(METHOD, action, None)
        .await
        .context(RequestSnafu { command_name })?;

    // From here on the action is under way: status failures are counted, not returned at once.
    let mut attempt: u32 = 0;
    let mut failures: u32 = 0;
    let notify_every = Duration::from_secs(5);
    let mut waited = Duration::ZERO;
    loop {
        attempt += 1;
        ensure!(
            attempt < wait.max_attempts,
            TimedOutSnafu {
                waited: wait.between_attempts * wait.max_attempts,
                method: METHOD,
                uri: action,
            }
        );
        ensure!(
            failures < MAX_STATUS_FAILURES,
            StatusCheckSnafu {
                failures,
                method: METHOD,
                uri: action,
            }
        );
        if attempt > 1 && waited >= notify_every {
            waited = Duration::ZERO;
            info!(
                "Still waiting for updated status, will wait up to {:?} longer...",
                wait.between_attempts * (wait.max_attempts - attempt)
            );
        }
        tokio::time::sleep(wait.between_attempts).await;
        waited += wait.between_attempts;

        let response = match client.request_unchecked("GET", STATUS, None).await {
            Ok(response) => response,
            Err(error) => {
                failures += 1;
                warn!("Unable to check for update status, failure #{failures}: {error}");
                continue;
            }
        };
        if response.status == hyper::StatusCode::LOCKED {
            trace!("Lock still held, presumably by our request...");
            continue;
        }
        if !response.status.is_success() {
            failures += 1;
            warn!(
                "Got code {} when checking update status, failure #{failures}: {}",
                response.status.as_u16(),
                response.body
            );
            continue;
        }

        let body = response.body;
        let after_timestamp = timestamp(&body).unwrap_or_else(|| "missing".to_owned());
        let after_command = command_str(&body, "cmd_type").unwrap_or_else(|| "missing".to_owned());
        debug!(
            "Found timestamp '{after_timestamp}' and command '{after_command}' (looking for command \
             '{command_name}' and a change from initial timestamp '{before_timestamp}')"
        );
        if after_command == command_name && after_timestamp != before_timestamp {
            let status_name =
                command_str(&body, "cmd_status").unwrap_or_else(|| "missing".to_owned());
            ensure!(
                status_name == "Success",
                CommandSnafu {
                    command_name,
                    status_name,
                    stderr: command_str(&body, "stderr").unwrap_or_else(|| "<missing>".to_owned()),
                    // Upstream reads this number as a string and so always shows -1; we show the real code.
                    exit_status: status_field(&body, &["most_recent_command", "exit_status"])
                        .as_ref()
                        .and_then(Value::as_i64)
                        .unwrap_or(-1),
                }
            );
            return Ok(body);
        }
    }
}

/// The JSON value at `path` in a status body; None if the body is not JSON or the path is missing.
fn status_field(body: &str, path: &[&str]) -> Option<Value> {
    let mut value: Value = serde_json::from_str::<Value>(body).ok()?;
    for key in path {
        value = value.get_mut(key)?.take();
    }
    Some(value)
}

fn command_str(body: &str, field: &str) -> Option<String> {
    status_field(body, &["most_recent_command", field])?
        .as_str()
        .map(str::to_owned)
}

fn timestamp(body: &str) -> Option<String> {
    command_str(body, "timestamp")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{"update_state": "Staged", "most_recent_command":
        {"cmd_type": "prepare", "cmd_status": "Failed", "timestamp": "2026-12-03T12:00:00Z",
         "exit_status": 1, "stderr": "no space"}}"#;

    #[test]
    fn status_fields_are_read_by_path() {
        assert_eq!(timestamp(STATUS).as_deref(), Some("2026-12-03T12:00:00Z"));
        assert_eq!(command_str(STATUS, "cmd_type").as_deref(), Some("prepare"));
        assert_eq!(
            status_field(STATUS, &["most_recent_command", "exit_status"]),
            Some(Value::from(1))
        );
        assert_eq!(timestamp("not json"), None);
        assert_eq!(timestamp(r#"{"most_recent_command": null}"#), None);
    }

    #[test]
    fn only_available_or_staged_needs_an_apply() {
        for (state, expected) in [
            ("Available", true),
            ("Staged", true),
            ("Idle", false),
            ("Ready", false),
        ] {
            assert_eq!(
                required(&format!(r#"{{"update_state": "{state}"}}"#)),
                expected,
                "{state}"
            );
        }
        assert!(!required("garbage"));
    }

    #[test]
    fn budgets_are_upstreams() {
        // The environment override is unset in unit tests.
        assert_eq!(
            WaitPolicy::refresh(),
            WaitPolicy::new(Duration::from_millis(100), 100)
        );
        assert_eq!(
            WaitPolicy::prepare(),
            WaitPolicy::new(Duration::from_millis(500), 1200)
        );
        assert_eq!(
            WaitPolicy::activate(),
            WaitPolicy::new(Duration::from_millis(100), 50)
        );
    }
}
