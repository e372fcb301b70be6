//! The admin Unix socket (mode 0600): the JSON API for the CLI while the
//! server owns the store. Access control is the file mode: only the user
//! davgate runs as (and root) can connect.

use super::service::{self, Listener};
use crate::App;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// Binds the socket with mode 0600 before it becomes visible at `path`:
/// it is bound under a temporary name, restricted, then renamed.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        // A live server would hold the store lock, so this one is stale.
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("admin.socket: cannot remove stale {}: {e}", path.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| anyhow::anyhow!("admin.socket: cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

/// Serves the API until `shutdown` turns true, then removes the socket.
pub async fn serve(listener: UnixListener, path: PathBuf, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(service::handle(&app, req, Listener::Socket).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
    let _ = std::fs::remove_file(&path);
}
