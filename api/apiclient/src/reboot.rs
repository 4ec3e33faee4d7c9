//! `reboot`: `POST /actions/reboot` (the server starts its reboot command and answers 204).

use crate::client::{self, ApiClient};

/// Asks the API to reboot the node.
pub async fn reboot(client: &ApiClient) -> client::Result<()> {
    client.request("POST", "/actions/reboot", None).await?;
    log::info!("Rebooting, goodbye...");
    Ok(())
}
