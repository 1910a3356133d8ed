//! One session channel of a logged-in connection, run on a task of its own.
//!
//! russh hands every message of a channel (its data, and a copy of each
//! request) to a bounded queue, and while that queue is full its connection
//! loop waits: no other channel, no window adjustment, no timer. So each
//! channel's queue is drained from the moment it opens. Requests are answered
//! by the SSH handler and their copies dropped here; data sent before a
//! subsystem is discarded (up to [`STRAY_DATA_LIMIT`], then the channel is
//! closed). Once `sftp` starts, requests are read and answered one at a time
//! and their replies sent by a writer of their own, so a client slow to read
//! its replies never stops its requests being read: up to [`REPLY_BUDGET`]
//! bytes of replies may wait for it, after which reading waits too and the
//! watchdog's write timeout decides.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use russh_sftp::protocol::{Packet, Status, StatusCode};
use russh_sftp::server::{Handler, StatusReply};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::connection::Connection;
use super::sftp::SftpSession;

/// Largest SFTP packet a client may send: OpenSSH's own limit (256 KiB), plus
/// room for the header of a write that carries 256 KiB of data.
pub const MAX_SFTP_PACKET: usize = 256 * 1024 + 1024;

/// Bytes of data a channel may receive before a subsystem starts.
pub const STRAY_DATA_LIMIT: usize = 64 * 1024;

/// Bytes of replies that may wait for a client to read them, per channel.
pub const REPLY_BUDGET: usize = 1 << 20;

const SSH_FXP_WRITE: u8 = 6;

/// Serve one channel until it closes or its connection is killed. `sftp` makes
/// the SFTP session if the client asks for that subsystem.
pub async fn run(
    channel: Channel<Msg>,
    conn: Arc<Connection>,
    sftp: impl FnOnce() -> SftpSession,
    span: tracing::Span,
) {
    let (mut rx, tx) = channel.split();
    let kill = conn.kill.clone();
    tokio::select! {
        () = kill.cancelled() => {}
        () = serve(&mut rx, &tx, &conn, sftp, &span) => {}
    }
}

async fn serve(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    conn: &Arc<Connection>,
    sftp: impl FnOnce() -> SftpSession,
    span: &tracing::Span,
) {
    let mut stray = 0usize;
    loop {
        match rx.wait().await {
            None | Some(ChannelMsg::Close) => return,
            Some(ChannelMsg::Eof) => {
                let _ = tx.eof().await;
                let _ = tx.close().await;
                return;
            }
            // The handler said yes to exactly this request (see `subsystem_request`).
            Some(ChannelMsg::RequestSubsystem { name, .. }) if name == "sftp" => break,
            Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                stray += data.len();
                if stray > STRAY_DATA_LIMIT {
                    tracing::warn!(parent: span, bytes = stray, "channel closed: data sent without a subsystem");
                    let _ = tx.close().await;
                    return;
                }
            }
            // Requests were answered by the handler; their copies need nothing.
            Some(_) => {}
        }
    }
    match serve_sftp(rx, tx, conn, sftp(), span).await {
        End::Eof => {
            // OpenSSH's sftp waits for the server to close after its EOF on
            // `bye`; scp (over SFTP) also wants an exit status, or it reports
            // failure.
            let _ = tx.exit_status(0).await;
            let _ = tx.eof().await;
            let _ = tx.close().await;
        }
        End::Broken => {
            let _ = tx.close().await;
        }
        End::Closed => {}
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client sent EOF: everything it asked was answered.
    Eof,
    /// The channel closed.
    Closed,
    /// The client broke the protocol; the server closes the channel.
    Broken,
}

/// A reply on its way to the client: holds its share of the reply budget
/// and counts as unsent until dropped.
struct Queued {
    bytes: Bytes,
    _budget: OwnedSemaphorePermit,
    conn: Arc<Connection>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.conn.reply_gone();
    }
}

async fn serve_sftp(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    conn: &Arc<Connection>,
    mut session: SftpSession,
    span: &tracing::Span,
) -> End {
    let (out, mut replies) = mpsc::unbounded_channel::<Queued>();
    let budget = Arc::new(Semaphore::new(REPLY_BUDGET));
    let reading = async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            while buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len > MAX_SFTP_PACKET {
                    tracing::warn!(parent: span, bytes = len, "SFTP packet over the size limit; channel closed");
                    return End::Broken;
                }
                if buf.len() < 4 + len {
                    buf.reserve(4 + len - buf.len());
                    break;
                }
                buf.advance(4);
                let packet = buf.split_to(len).freeze();
                let reply = {
                    let _busy = conn.busy();
                    answer(&mut session, packet).await
                };
                let permit = match budget
                    .clone()
                    .acquire_many_owned(reply.len().min(REPLY_BUDGET) as u32)
                    .await
                {
                    Ok(p) => p,
                    Err(_) => return End::Closed,
                };
                conn.reply_queued();
                let queued = Queued {
                    bytes: reply,
                    _budget: permit,
                    conn: conn.clone(),
                };
                if out.send(queued).is_err() {
                    return End::Closed;
                }
            }
            match rx.wait().await {
                Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
                Some(ChannelMsg::Eof) => return End::Eof,
                None | Some(ChannelMsg::Close) => return End::Closed,
                Some(_) => {}
            }
        }
    };
    let writing = async {
        while let Some(mut reply) = replies.recv().await {
            let bytes = std::mem::take(&mut reply.bytes);
            if tx.data_bytes(bytes).await.is_err() {
                return;
            }
            conn.reply_sent();
        }
    };
    let (end, ()) = tokio::join!(reading, writing);
    end
}

/// The encoded reply to one SFTP request.
async fn answer(session: &mut SftpSession, mut packet: Bytes) -> Bytes {
    // Writes are nearly every request of an upload: parsed here, their data
    // goes to the file straight from the received buffer.
    let reply = if packet.first() == Some(&SSH_FXP_WRITE) {
        match parse_write(packet.clone()) {
            Some((id, handle, offset, data)) => {
                status(id, session.write_at(id, &handle, offset, &data).await)
            }
            None => Packet::error(request_id(&packet), StatusCode::BadMessage),
        }
    } else {
        let id = request_id(&packet);
        match Packet::try_from(&mut packet) {
            Ok(request) => dispatch(session, request).await,
            Err(_) => Packet::error(id, StatusCode::BadMessage),
        }
    };
    Bytes::try_from(reply).unwrap_or_else(|_| {
        // Only a reply over 4 GiB fails to encode; none of ours comes near.
        Bytes::from_static(b"")
    })
}

/// The request id of a raw packet (type byte, then id), or 0.
fn request_id(packet: &[u8]) -> u32 {
    packet
        .get(1..5)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `SSH_FXP_WRITE`: id, handle, offset, data. Bytes after the data are
/// ignored, as OpenSSH's sftp-server ignores them: Go's pkg/sftp (rclone)
/// sends a short last write inside a packet sized for a full one.
fn parse_write(mut p: Bytes) -> Option<(u32, String, u64, Bytes)> {
    fn string(p: &mut Bytes) -> Option<Bytes> {
        let len = p.try_get_u32().ok()? as usize;
        (p.remaining() >= len).then(|| p.split_to(len))
    }
    p.advance(1);
    let id = p.try_get_u32().ok()?;
    let handle = String::from_utf8(string(&mut p)?.to_vec()).ok()?;
    let offset = p.try_get_u64().ok()?;
    let data = string(&mut p)?;
    Some((id, handle, offset, data))
}

fn status(id: u32, result: Result<Status, StatusReply>) -> Packet {
    match result {
        Ok(s) => Packet::Status(s),
        Err(e) => error_packet(id, e),
    }
}

fn error_packet(id: u32, e: StatusReply) -> Packet {
    let StatusReply {
        status_code,
        error_message,
        language_tag,
    } = e;
    Packet::Status(Status {
        id,
        status_code,
        error_message: error_message.unwrap_or_else(|| status_code.to_string()),
        language_tag: language_tag.unwrap_or_else(|| "en-US".to_string()),
    })
}

/// Call the handler method for `request`, as russh-sftp's own server does.
async fn dispatch(h: &mut SftpSession, request: Packet) -> Packet {
    let id = request.get_request_id();
    macro_rules! call {
        ($e:expr) => {
            match $e.await {
                Ok(reply) => reply.into(),
                Err(e) => error_packet(id, e),
            }
        };
    }
    match request {
        Packet::Init(p) => call!(h.init(p.version, p.extensions)),
        Packet::Open(p) => call!(h.open(p.id, p.filename, p.pflags, p.attrs)),
        Packet::Close(p) => call!(h.close(p.id, p.handle)),
        Packet::Read(p) => call!(h.read(p.id, p.handle, p.offset, p.len)),
        Packet::Write(p) => call!(h.write(p.id, p.handle, p.offset, p.data)),
        Packet::Lstat(p) => call!(h.lstat(p.id, p.path)),
        Packet::Fstat(p) => call!(h.fstat(p.id, p.handle)),
        Packet::SetStat(p) => call!(h.setstat(p.id, p.path, p.attrs)),
        Packet::FSetStat(p) => call!(h.fsetstat(p.id, p.handle, p.attrs)),
        Packet::OpenDir(p) => call!(h.opendir(p.id, p.path)),
        Packet::ReadDir(p) => call!(h.readdir(p.id, p.handle)),
        Packet::Remove(p) => call!(h.remove(p.id, p.filename)),
        Packet::MkDir(p) => call!(h.mkdir(p.id, p.path, p.attrs)),
        Packet::RmDir(p) => call!(h.rmdir(p.id, p.path)),
        Packet::RealPath(p) => call!(h.realpath(p.id, p.path)),
        Packet::Stat(p) => call!(h.stat(p.id, p.path)),
        Packet::Rename(p) => call!(h.rename(p.id, p.oldpath, p.newpath)),
        Packet::ReadLink(p) => call!(h.readlink(p.id, p.path)),
        Packet::Symlink(p) => call!(h.symlink(p.id, p.linkpath, p.targetpath)),
        Packet::Extended(p) => call!(h.extended(p.id, p.request, p.data)),
        _ => Packet::error(id, StatusCode::BadMessage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn write_packet(id: u32, handle: &str, offset: u64, data: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(SSH_FXP_WRITE);
        b.put_u32(id);
        b.put_u32(handle.len() as u32);
        b.put_slice(handle.as_bytes());
        b.put_u64(offset);
        b.put_u32(data.len() as u32);
        b.put_slice(data);
        b.freeze()
    }

    #[test]
    fn writes_parse_exactly_and_nothing_else_does() {
        let p = write_packet(7, "f1", 1 << 40, b"abc");
        let (id, handle, offset, data) = parse_write(p.clone()).unwrap();
        assert_eq!(
            (id, handle.as_str(), offset, &data[..]),
            (7, "f1", 1 << 40, &b"abc"[..])
        );
        // Cut short anywhere: not a write.
        for cut in 1..p.len() {
            assert!(parse_write(p.slice(..cut)).is_none(), "cut at {cut}");
        }
        // Bytes after the data (pkg/sftp's short last write): the data
        // length decides, the rest is ignored.
        let mut longer = BytesMut::from(&p[..]);
        longer.put_slice(&[0xAA; 32]);
        let (_, _, _, data) = parse_write(longer.freeze()).unwrap();
        assert_eq!(&data[..], b"abc");
        // A data length past the end of the packet.
        let mut lying = BytesMut::from(&p[..p.len() - 3 - 4]);
        lying.put_u32(u32::MAX);
        assert!(parse_write(lying.freeze()).is_none());
        assert_eq!(request_id(&p), 7);
        assert_eq!(request_id(&[6, 0]), 0);
    }
}
