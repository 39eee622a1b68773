//! A minimal VICI client: framing over a unix or TCP stream, messages
//! encoded with `serde_vici`.
//!
//! A [`Session`] is owned by exactly one task and used strictly
//! request-after-request, so there is no reader task to race with: a frame is
//! either read whole or the session is dropped (every caller wraps an
//! operation in a timeout and discards the session on any error). That is the
//! reason this module exists instead of `rsvici`, whose background listener
//! spins on a closed socket (charon restarted) and can lose half-read frames.
//!
//! Wire format (strongSwan `src/libcharon/plugins/vici/README.md`): a 32-bit
//! big-endian length, then a packet type byte, then for named types a
//! length-prefixed name, then the message.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

/// charon refuses messages above 512 KiB; anything bigger is a broken stream.
const MAX_PACKET: usize = 512 * 1024;

/// Where charon's VICI socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// The URI is neither `unix:///absolute/path` nor `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a VICI URI like unix:///run/charon.vici or tcp://127.0.0.1:4502")]
pub struct EndpointError;

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, EndpointError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') && path.len() > 1 {
                return Ok(Endpoint::Unix(PathBuf::from(path)));
            }
        } else if let Some(addr) = s.strip_prefix("tcp://") {
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if ok {
                return Ok(Endpoint::Tcp(addr.to_owned()));
            }
        }
        Err(EndpointError)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Why a VICI exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ViciError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// charon does not know the command or event.
    #[error("unknown command or event: {0}")]
    Unknown(String),
    /// charon ran the command and reported a failure (`success = no`).
    #[error("{0}")]
    Failed(String),
}

impl ViciError {
    /// The session can no longer be trusted (stream position unknown).
    pub(crate) fn breaks_session(&self) -> bool {
        matches!(self, ViciError::Io(_) | ViciError::Protocol(_))
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One raw packet.
pub(crate) struct Packet {
    pub kind: u8,
    pub name: Option<String>,
    pub payload: Vec<u8>,
}

/// The generic answer of a command.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CmdResult {
    pub success: Option<bool>,
    pub errmsg: Option<String>,
}

impl CmdResult {
    fn check(self, cmd: &str) -> Result<(), ViciError> {
        match self.success {
            Some(false) => {
                Err(ViciError::Failed(self.errmsg.unwrap_or_else(|| {
                    format!("{cmd} failed without a message")
                })))
            }
            _ => Ok(()),
        }
    }
}

/// A connected VICI session.
pub(crate) struct Session {
    io: Box<dyn Stream>,
}

impl Session {
    pub(crate) async fn connect(ep: &Endpoint) -> io::Result<Session> {
        let io: Box<dyn Stream> = match ep {
            Endpoint::Unix(p) => Box::new(UnixStream::connect(p).await?),
            Endpoint::Tcp(a) => Box::new(TcpStream::connect(a.as_str()).await?),
        };
        Ok(Session { io })
    }

    async fn send(&mut self, kind: u8, name: Option<&str>, payload: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 64);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.push(kind);
        if let Some(n) = name {
            let len = u8::try_from(n.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?;
            buf.push(len);
            buf.extend_from_slice(n.as_bytes());
        }
        buf.extend_from_slice(payload);
        let len = u32::try_from(buf.len() - 4)
            .ok()
            .filter(|l| (*l as usize) <= MAX_PACKET)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.io.write_all(&buf).await?;
        self.io.flush().await
    }

    /// Read one whole packet.
    pub(crate) async fn recv(&mut self) -> Result<Packet, ViciError> {
        let len = self.io.read_u32().await? as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(ViciError::Protocol(format!("bad packet length {len}")));
        }
        let mut buf = vec![0; len];
        self.io.read_exact(&mut buf).await?;
        let kind = buf[0];
        let (name, body_at) = match kind {
            CMD_REQUEST | EVENT_REGISTER | EVENT_UNREGISTER | EVENT => {
                let n = *buf
                    .get(1)
                    .ok_or_else(|| ViciError::Protocol("truncated packet".into()))?
                    as usize;
                let name = buf
                    .get(2..2 + n)
                    .ok_or_else(|| ViciError::Protocol("truncated packet".into()))?;
                (Some(String::from_utf8_lossy(name).into_owned()), 2 + n)
            }
            CMD_RESPONSE | CMD_UNKNOWN | EVENT_CONFIRM | EVENT_UNKNOWN => (None, 1),
            other => return Err(ViciError::Protocol(format!("unknown packet type {other}"))),
        };
        Ok(Packet {
            kind,
            name,
            payload: buf.split_off(body_at),
        })
    }

    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ViciError> {
        serde_vici::from_slice(payload).map_err(|e| ViciError::Protocol(e.to_string()))
    }

    fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ViciError> {
        // An encoding failure is a bug in our message types, not a broken
        // stream, so it must not be `Io`/`Protocol`.
        serde_vici::to_vec(msg)
            .map_err(|e| ViciError::Failed(format!("cannot encode request: {e}")))
    }

    /// Send a command and wait for its response, skipping events that were
    /// registered earlier on this session.
    async fn command_raw<Q: Serialize>(
        &mut self,
        cmd: &str,
        req: &Q,
    ) -> Result<Vec<u8>, ViciError> {
        let payload = Self::encode(req)?;
        self.send(CMD_REQUEST, Some(cmd), &payload).await?;
        loop {
            let p = self.recv().await?;
            match p.kind {
                CMD_RESPONSE => return Ok(p.payload),
                CMD_UNKNOWN => return Err(ViciError::Unknown(cmd.to_owned())),
                EVENT => continue,
                k => return Err(ViciError::Protocol(format!("unexpected packet type {k}"))),
            }
        }
    }

    /// A command whose answer is `success`/`errmsg` plus possibly more.
    /// Only the test helpers read such answers (`get-shared`).
    #[cfg(any(test, feature = "testbed"))]
    pub(crate) async fn request<Q: Serialize, R: DeserializeOwned>(
        &mut self,
        cmd: &str,
        req: &Q,
    ) -> Result<R, ViciError> {
        let payload = self.command_raw(cmd, req).await?;
        let status: CmdResult = Self::decode(&payload)?;
        status.check(cmd)?;
        Self::decode(&payload)
    }

    /// A command without a meaningful answer beyond success.
    pub(crate) async fn call<Q: Serialize>(&mut self, cmd: &str, req: &Q) -> Result<(), ViciError> {
        let payload = self.command_raw(cmd, req).await?;
        Self::decode::<CmdResult>(&payload)?.check(cmd)
    }

    async fn register_kind(&mut self, kind: u8, event: &str) -> Result<(), ViciError> {
        self.send(kind, Some(event), &[]).await?;
        loop {
            let p = self.recv().await?;
            match p.kind {
                EVENT_CONFIRM => return Ok(()),
                EVENT_UNKNOWN => return Err(ViciError::Unknown(event.to_owned())),
                EVENT => continue,
                k => return Err(ViciError::Protocol(format!("unexpected packet type {k}"))),
            }
        }
    }

    /// Subscribe this session to `event`.
    pub(crate) async fn register(&mut self, event: &str) -> Result<(), ViciError> {
        self.register_kind(EVENT_REGISTER, event).await
    }

    /// A streamed command (`list-sas`, `list-conns`, ...): every `event`
    /// message raised before the command's response, decoded as `E`.
    pub(crate) async fn stream<Q: Serialize, E: DeserializeOwned>(
        &mut self,
        cmd: &str,
        event: &str,
        req: &Q,
    ) -> Result<Vec<E>, ViciError> {
        self.register_kind(EVENT_REGISTER, event).await?;
        let payload = Self::encode(req)?;
        self.send(CMD_REQUEST, Some(cmd), &payload).await?;
        let mut items = Vec::new();
        let status = loop {
            let p = self.recv().await?;
            match p.kind {
                EVENT if p.name.as_deref() == Some(event) => items.push(Self::decode(&p.payload)?),
                EVENT => continue,
                CMD_RESPONSE => break Self::decode::<CmdResult>(&p.payload)?,
                CMD_UNKNOWN => return Err(ViciError::Unknown(cmd.to_owned())),
                k => return Err(ViciError::Protocol(format!("unexpected packet type {k}"))),
            }
        };
        self.register_kind(EVENT_UNREGISTER, event).await?;
        status.check(cmd)?;
        Ok(items)
    }

    /// Wait for the next event on a session that registered for some.
    pub(crate) async fn next_event(&mut self) -> Result<(String, Vec<u8>), ViciError> {
        loop {
            let p = self.recv().await?;
            if p.kind == EVENT {
                return Ok((p.name.unwrap_or_default(), p.payload));
            }
        }
    }

    /// Decode an event payload.
    pub(crate) fn decode_event<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ViciError> {
        Self::decode(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:///run/charon.vici".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/charon.vici".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:4502".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:4502".into())
        );
        for bad in [
            "",
            "unix://",
            "unix://rel",
            "tcp://host",
            "tcp://:1",
            "http://x:1",
            "/run/x",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn round_trip_over_a_socket_pair() {
        // A fake daemon answering one command, to pin the framing.
        let (a, mut b) = tokio::io::duplex(4096);
        let mut s = Session { io: Box::new(a) };
        let server = tokio::spawn(async move {
            let len = b.read_u32().await.unwrap() as usize;
            let mut buf = vec![0; len];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf[0], CMD_REQUEST);
            assert_eq!(&buf[2..2 + buf[1] as usize], b"version");
            #[derive(Serialize)]
            struct V {
                daemon: &'static str,
            }
            let body = serde_vici::to_vec(&V { daemon: "charon" }).unwrap();
            let mut out = (1 + body.len() as u32).to_be_bytes().to_vec();
            out.push(CMD_RESPONSE);
            out.extend_from_slice(&body);
            b.write_all(&out).await.unwrap();
        });
        #[derive(Deserialize)]
        struct V {
            daemon: String,
        }
        let v: V = s.request("version", &()).await.unwrap();
        assert_eq!(v.daemon, "charon");
        server.await.unwrap();
    }
}
