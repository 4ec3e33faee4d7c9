//! One request: the peer check, the route (method + path), the bounded body, the query, and the handler, which does
//! its datastore and process work on tokio's blocking pool. Every error is a `text/plain` body from
//! [`RequestError`], with its status.
//!
//! ```text
//! request ─► peer uid own/root? ─no─► 403
//!              │ yes
//!              ▼
//!            route known? ─no─► 404     method allowed? ─no─► 405 (Allow)
//!              ▼
//!            body ≤ 1 MiB? ─no─► 413    query names known, once each? ─no─► 400
//!              ▼
//!            handler (spawn_blocking) ─► settings / tx / os / updates
//! ```

use crate::error::{self, RequestError};
use crate::os;
use crate::render;
use crate::settings;
use crate::store::{self, Selection, SettingsStore};
use crate::updates::{self, UpdateCommand};
use datastore::{Committed, DEFAULT_TRANSACTION, Key};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use snafu::ensure;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest request body accepted (413 above it).
pub const BODY_LIMIT: usize = 1 << 20;

/// What every request needs: the node's paths, the programs to run, the settings store.
#[derive(Debug)]
pub struct Api {
    pub sysroot: PathBuf,
    pub thar_be_updates: PathBuf,
    pub reboot_command: Vec<String>,
    pub update_answer_timeout: std::time::Duration,
    pub store: SettingsStore,
    /// The server's own effective uid; it and root may connect.
    pub server_uid: u32,
}

/// The endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Root,
    Settings,
    Tx,
    TxList,
    TxCommit,
    TxCommitAndApply,
    Os,
    UpdatesStatus,
    Update(UpdateCommand),
    Reboot,
}

impl Route {
    fn find(path: &str) -> Option<(Self, &'static [Method])> {
        const GET: &[Method] = &[Method::GET];
        const POST: &[Method] = &[Method::POST];
        Some(match path {
            "/" => (Self::Root, GET),
            "/settings" => (Self::Settings, &[Method::GET, Method::PATCH]),
            "/tx" => (Self::Tx, &[Method::GET, Method::DELETE]),
            "/tx/list" => (Self::TxList, GET),
            "/tx/commit" => (Self::TxCommit, POST),
            "/tx/commit_and_apply" => (Self::TxCommitAndApply, POST),
            "/os" => (Self::Os, GET),
            "/updates/status" => (Self::UpdatesStatus, GET),
            "/actions/refresh-updates" => (Self::Update(UpdateCommand::Refresh), POST),
            "/actions/prepare-update" => (Self::Update(UpdateCommand::Prepare), POST),
            "/actions/activate-update" => (Self::Update(UpdateCommand::Activate), POST),
            "/actions/deactivate-update" => (Self::Update(UpdateCommand::Deactivate), POST),
            "/actions/reboot" => (Self::Reboot, POST),
            _ => return None,
        })
    }

    /// The query parameters this route (with this method) takes.
    fn parameters(self, method: &Method) -> &'static [&'static str] {
        match (self, method) {
            (Self::Root, _) => &["prefix"],
            (Self::Settings, &Method::GET) => &["keys", "prefix"],
            (Self::Settings | Self::Tx | Self::TxCommit | Self::TxCommitAndApply, _) => &["tx"],
            _ => &[],
        }
    }
}

/// A successful answer.
enum Reply {
    NoContent,
    Json(Value),
    /// JSON text served as it is (the update status file).
    RawJson(String),
}

/// Answers one request from a peer whose uid is `peer_uid` (`None`: the kernel did not say).
pub async fn handle(
    api: Arc<Api>,
    peer_uid: Option<u32>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = match answer(api, peer_uid, request).await {
        Ok(Reply::NoContent) => empty(StatusCode::NO_CONTENT),
        Ok(Reply::Json(value)) => json(StatusCode::OK, value.to_string()),
        Ok(Reply::RawJson(text)) => json(StatusCode::OK, text),
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                log::error!("{method} {path}: {e}");
            } else {
                log::info!("{method} {path}: {status}: {e}");
            }
            let mut response = text(status, format!("{e}\n"));
            if let RequestError::MethodNotAllowed { allowed, .. } = &e
                && let Ok(allow) = HeaderValue::from_str(allowed)
            {
                response.headers_mut().insert(ALLOW, allow);
            }
            response
        }
    };
    Ok(response)
}

async fn answer(
    api: Arc<Api>,
    peer_uid: Option<u32>,
    request: Request<Incoming>,
) -> Result<Reply, RequestError> {
    match peer_uid {
        Some(uid) if uid == api.server_uid || uid == 0 => {}
        uid => {
            return error::ForbiddenSnafu {
                peer: uid.map_or_else(
                    || "of unknown uid (its credentials could not be read)".to_string(),
                    |uid| format!("uid {uid}"),
                ),
                server_uid: api.server_uid,
            }
            .fail();
        }
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let Some((route, methods)) = Route::find(path) else {
        return error::NoRouteSnafu { path }.fail();
    };
    ensure!(
        methods.contains(&parts.method),
        error::MethodNotAllowedSnafu {
            method: parts.method.as_str(),
            path,
            allowed: methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        }
    );
    let body = read_body(body).await?;
    let query = parse_query(parts.uri.query(), route.parameters(&parts.method))?;
    dispatch(api, route, &parts.method, &query, &body).await
}

async fn dispatch(
    api: Arc<Api>,
    route: Route,
    method: &Method,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> Result<Reply, RequestError> {
    let tx = || {
        query
            .get("tx")
            .map_or(DEFAULT_TRANSACTION, String::as_str)
            .to_string()
    };
    match (route, method) {
        (Route::Root, _) => {
            let prefix = query.get("prefix").cloned().unwrap_or_default();
            blocking(move || root(&api, &prefix)).await
        }
        (Route::Settings, &Method::GET) => {
            let selection = selection(query)?;
            blocking(move || {
                let values = api.store.get(&selection, &Committed::Live)?;
                Ok(Reply::Json(settings::nest(&values, 1)?))
            })
            .await
        }
        (Route::Settings, _) => {
            let committed = SettingsStore::check_transaction(&tx())?;
            let text = std::str::from_utf8(body).map_err(|e| RequestError::NotUtf8 {
                offset: e.valid_up_to(),
            })?;
            let patch = settings::parse_patch(text)?;
            blocking(move || {
                api.store.patch(&committed, &patch)?;
                Ok(Reply::NoContent)
            })
            .await
        }
        (Route::Tx, &Method::GET) => {
            let committed = SettingsStore::check_transaction(&tx())?;
            blocking(move || {
                let values = api.store.get(&Selection::All, &committed)?;
                Ok(Reply::Json(settings::nest(&values, 1)?))
            })
            .await
        }
        (Route::Tx, _) => {
            let tx = tx();
            SettingsStore::check_transaction(&tx)?;
            blocking(move || Ok(key_list(&api.store.delete(&tx)?))).await
        }
        (Route::TxList, _) => {
            blocking(move || Ok(Reply::Json(api.store.transactions()?.into_iter().collect()))).await
        }
        (Route::TxCommit, _) => {
            let tx = tx();
            SettingsStore::check_transaction(&tx)?;
            blocking(move || Ok(key_list(&api.store.commit(&tx)?))).await
        }
        (Route::TxCommitAndApply, _) => {
            let tx = tx();
            SettingsStore::check_transaction(&tx)?;
            blocking(move || {
                let committed = api
                    .store
                    .commit_then(&tx, |live| render::render(&api.sysroot, live))?;
                Ok(key_list(&committed))
            })
            .await
        }
        (Route::Os, _) => {
            blocking(move || Ok(Reply::Json(Value::Object(os::os_info(&api.sysroot)?)))).await
        }
        (Route::UpdatesStatus, _) => {
            blocking(move || {
                Ok(Reply::RawJson(updates::current_status(
                    &api.thar_be_updates,
                    &api.sysroot,
                    api.update_answer_timeout,
                )?))
            })
            .await
        }
        (Route::Update(command), _) => {
            blocking(move || {
                updates::run(
                    &api.thar_be_updates,
                    &api.sysroot,
                    command,
                    api.update_answer_timeout,
                )?;
                Ok(Reply::NoContent)
            })
            .await
        }
        (Route::Reboot, _) => {
            blocking(move || {
                updates::reboot(&api.reboot_command)?;
                Ok(Reply::NoContent)
            })
            .await
        }
    }
}

/// `GET /?prefix=`: `{"settings": {…}, "os": {…}}`, each key kept when its full name (`settings.motd`, `os.arch`)
/// starts with the prefix; a section nothing matched is left out.
fn root(api: &Api, prefix: &str) -> Result<Reply, RequestError> {
    let mut document = serde_json::Map::new();
    let settings_root = format!("{}.", settings::SETTINGS);
    let selection = if settings_root.starts_with(prefix) {
        Some(Selection::All)
    } else if prefix.starts_with(&settings_root) {
        Some(Selection::Prefix(prefix.to_string()))
    } else {
        None
    };
    if let Some(selection) = selection {
        let values = api.store.get(&selection, &Committed::Live)?;
        if let Value::Object(nested) = settings::nest(&values, 0)? {
            document.extend(nested);
        }
    }
    if "os.".starts_with(prefix) || prefix.starts_with("os.") {
        let os: serde_json::Map<String, Value> = os::os_info(&api.sysroot)?
            .into_iter()
            .filter(|(name, _)| format!("os.{name}").starts_with(prefix))
            .collect();
        if !os.is_empty() {
            document.insert("os".into(), Value::Object(os));
        }
    }
    Ok(Reply::Json(Value::Object(document)))
}

fn selection(query: &BTreeMap<String, String>) -> Result<Selection, RequestError> {
    match (query.get("keys"), query.get("prefix")) {
        (Some(_), Some(_)) => error::BadQuerySnafu {
            reason: "give 'keys' or 'prefix', not both",
        }
        .fail(),
        (Some(keys), None) => {
            let keys = keys
                .split(',')
                .map(store::query_key)
                .collect::<Result<Vec<Key>, _>>()?;
            Ok(Selection::Keys(keys))
        }
        (None, Some(prefix)) => Ok(Selection::Prefix(store::under_settings(prefix))),
        (None, None) => Ok(Selection::All),
    }
}

fn key_list(keys: &BTreeSet<Key>) -> Reply {
    Reply::Json(keys.iter().map(|k| Value::from(k.name())).collect())
}

async fn read_body(body: Incoming) -> Result<Bytes, RequestError> {
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            error::BodyTooLargeSnafu { limit: BODY_LIMIT }.fail()
        }
        Err(e) => error::ReadBodySnafu {
            message: e.to_string(),
        }
        .fail(),
    }
}

/// The query's parameters: each one of `allowed`, at most once.
fn parse_query(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut parameters = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        ensure!(
            allowed.contains(&name.as_ref()),
            error::BadQuerySnafu {
                reason: if allowed.is_empty() {
                    format!("unknown parameter '{name}' (this endpoint takes none)")
                } else {
                    format!(
                        "unknown parameter '{name}' (this endpoint takes: {})",
                        allowed.join(", ")
                    )
                },
            }
        );
        ensure!(
            !value.is_empty(),
            error::BadQuerySnafu {
                reason: format!("parameter '{name}' is empty"),
            }
        );
        if parameters
            .insert(name.to_string(), value.to_string())
            .is_some()
        {
            return error::BadQuerySnafu {
                reason: format!("parameter '{name}' is given more than once"),
            }
            .fail();
        }
    }
    Ok(parameters)
}

async fn blocking(
    work: impl FnOnce() -> Result<Reply, RequestError> + Send + 'static,
) -> Result<Reply, RequestError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RequestError::Internal {
            message: e.to_string(),
        })?
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, body, "application/json")
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, body, "text/plain; charset=utf-8")
}

fn with_type(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_take_known_parameters_once() {
        let q = parse_query(Some("tx=a%20b"), &["tx"]).unwrap();
        assert_eq!(q["tx"], "a b");
        for (query, expected) in [
            ("tx=a&tx=b", "more than once"),
            ("x=1", "unknown parameter 'x'"),
            ("tx=", "is empty"),
        ] {
            let err = parse_query(Some(query), &["tx"]).unwrap_err();
            assert!(err.to_string().contains(expected), "{query}: {err}");
        }
        let err = parse_query(Some("tx=a"), &[]).unwrap_err();
        assert!(err.to_string().contains("takes none"), "{err}");
    }

    #[test]
    fn routes_and_their_methods() {
        assert_eq!(
            Route::find("/actions/prepare-update").map(|r| r.0),
            Some(Route::Update(UpdateCommand::Prepare))
        );
        assert!(Route::find("/actions/nope").is_none());
        assert!(Route::find("/settings/").is_none());
        let (_, methods) = Route::find("/tx").unwrap();
        assert_eq!(methods, [Method::GET, Method::DELETE]);
    }
}
