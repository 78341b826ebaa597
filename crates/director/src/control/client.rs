//! The tool's end of the control socket: one request, one reply.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::protocol::{Reply, Request, StatusReport};

/// Bound on the whole exchange.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a control request got no usable answer.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Nothing listens there, or we may not connect.
    #[error(
        "cannot reach the director at {path}: {error} (is it running? see [director] \
            control_socket, or give --socket or -c FILE)"
    )]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The exchange failed half-way.
    #[error("control socket {path}: {error}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// No reply in time.
    #[error("control socket {0}: no reply within 5 s")]
    Timeout(PathBuf),
    /// A reply this version does not understand.
    #[error(
        "control socket {path}: unreadable reply ({source}); is the director the same version?"
    )]
    BadReply {
        /// The socket path.
        path: PathBuf,
        /// The decode error.
        source: serde_json::Error,
    },
    /// The director refused the request.
    #[error("{0}")]
    Refused(String),
    /// A reply of the wrong kind.
    #[error("control socket {0}: the director answered another question")]
    Unexpected(PathBuf),
}

/// Send one request and return the director's reply (a refusal is
/// `Ok(Reply::Error)`).
pub async fn request(socket: &Path, req: &Request) -> Result<Reply, ControlError> {
    let path = || socket.to_path_buf();
    let io = |error| ControlError::Io { path: path(), error };
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|error| ControlError::Connect { path: path(), error })?;
        let mut line = serde_json::to_vec(req).expect("requests serialize");
        line.push(b'\n');
        s.write_all(&line).await.map_err(io)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(io)?;
        serde_json::from_slice(&out)
            .map_err(|source| ControlError::BadReply { path: path(), source })
    };
    tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| ControlError::Timeout(path()))?
}

/// [`Request::Status`], unwrapped.
pub async fn status(socket: &Path) -> Result<StatusReport, ControlError> {
    match request(socket, &Request::Status).await? {
        Reply::Status(s) => Ok(*s),
        Reply::Error { error } => Err(ControlError::Refused(error)),
        Reply::Changed { .. } => Err(ControlError::Unexpected(socket.to_path_buf())),
    }
}
