//! What the server knows of one connection while it runs, and how it ends one
//! that must end.
//!
//! russh runs each connection's loop on a task of its own, and that loop can
//! wait forever (on a client that never reads, or a queue nobody drains); its
//! own inactivity timer only fires while the loop is free. So the server keeps
//! its own account of activity ([`Connection`]), checked by a watchdog outside
//! that task, and ends a connection by failing its socket ([`Killable`]) and
//! stopping its channel tasks: the loop then sees errors wherever it waits,
//! ends, and everything the connection held (its slots, handles and files) is
//! given back.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::ChannelId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Activity of one connection: when the client last did something, whether
/// the server is busy on its behalf, and whether replies wait for a client
/// that does not read them.
pub struct Connection {
    start: Instant,
    /// Milliseconds since `start` of the last activity.
    last_activity: AtomicU64,
    /// Requests being worked on by the server (not the client's idleness).
    busy: AtomicU32,
    /// Replies queued for the client and not yet sent.
    unsent: AtomicU32,
    /// Milliseconds since `start` when sending last made progress.
    last_sent: AtomicU64,
    /// Cancelled to end the connection: its socket fails, its channel tasks stop.
    pub kill: CancellationToken,
    /// Channels whose task runs, and whether each has started its subsystem.
    /// A channel leaves when its task ends, whichever side closed it.
    channels: Mutex<HashMap<ChannelId, bool>>,
}

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wait until then and look again.
    CheckAt(Instant),
    Idle,
    /// Replies have waited too long for the client to read them.
    NotReading,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_activity: AtomicU64::new(0),
            busy: AtomicU32::new(0),
            unsent: AtomicU32::new(0),
            last_sent: AtomicU64::new(0),
            kill: CancellationToken::new(),
            channels: Mutex::new(HashMap::new()),
        }
    }
}

impl Connection {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// The client did something.
    pub fn touch(&self) {
        self.last_activity.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The server works on a request until the guard is dropped; meanwhile
    /// the connection is not idle.
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// A reply was queued for the client.
    pub fn reply_queued(&self) {
        if self.unsent.fetch_add(1, Ordering::AcqRel) == 0 {
            self.last_sent.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A queued reply went out: sending makes progress.
    pub fn reply_sent(&self) {
        let now = self.now_ms();
        self.last_sent.store(now, Ordering::Relaxed);
        self.last_activity.store(now, Ordering::Relaxed);
    }

    /// A queued reply is no longer waiting (sent, or dropped with its channel).
    pub fn reply_gone(&self) {
        self.unsent.fetch_sub(1, Ordering::AcqRel);
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, bool>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a new channel, if the connection has fewer than `max` open.
    pub fn open_channel(&self, id: ChannelId, max: u32) -> bool {
        let mut channels = self.channels();
        if channels.len() >= max as usize {
            return false;
        }
        channels.insert(id, false);
        true
    }

    /// The channel's task has ended (or the client closed it).
    pub fn channel_ended(&self, id: ChannelId) {
        self.channels().remove(&id);
    }

    /// Whether the channel may start the subsystem `name`: only `sftp`, and
    /// only as the channel's first subsystem.
    pub fn start_subsystem(&self, id: ChannelId, name: &str) -> bool {
        match self.channels().get_mut(&id) {
            Some(started) if !*started && name == "sftp" => {
                *started = true;
                true
            }
            _ => false,
        }
    }

    /// Should the connection end, and if not, when to look again.
    pub fn verdict(&self, idle: Duration, write: Duration) -> Verdict {
        let now = Instant::now();
        if self.unsent.load(Ordering::Acquire) > 0 {
            let stalled_at = self.at(self.last_sent.load(Ordering::Relaxed)) + write;
            if stalled_at <= now {
                return Verdict::NotReading;
            }
            return Verdict::CheckAt(stalled_at.min(now + idle));
        }
        if self.busy.load(Ordering::Acquire) > 0 {
            return Verdict::CheckAt(now + idle.min(Duration::from_secs(5)));
        }
        let idle_at = self.at(self.last_activity.load(Ordering::Relaxed)) + idle;
        if idle_at <= now {
            return Verdict::Idle;
        }
        Verdict::CheckAt(idle_at)
    }
}

pub struct Busy<'a>(&'a Connection);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that fails every read and write once its connection is killed, so
/// that russh's loop, wherever it waits on the socket, wakes up and ends.
pub struct Killable<S> {
    inner: S,
    kill: CancellationToken,
    /// One each for the read and the write side: they are polled from
    /// different tasks' contexts, and each must be woken.
    read_killed: Pin<Box<WaitForCancellationFutureOwned>>,
    write_killed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Killable<S> {
    pub fn new(inner: S, kill: CancellationToken) -> Self {
        Self {
            inner,
            read_killed: Box::pin(kill.clone().cancelled_owned()),
            write_killed: Box::pin(kill.clone().cancelled_owned()),
            kill,
        }
    }
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection ended by rosterd",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Killable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.is_cancelled() || self.read_killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Killable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.is_cancelled() || self.write_killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.is_cancelled() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.is_cancelled() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_killed_socket_wakes_a_pending_read() {
        let (a, _b) = tokio::io::duplex(64);
        let kill = CancellationToken::new();
        let mut s = Killable::new(a, kill.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        kill.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_killed_socket_wakes_a_blocked_write() {
        let (a, _b) = tokio::io::duplex(8);
        let kill = CancellationToken::new();
        let mut s = Killable::new(a, kill.clone());
        let writer = tokio::spawn(async move { s.write_all(&[0u8; 1024]).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        kill.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("woken")
            .unwrap();
        assert!(r.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_busy_and_unread_replies() {
        let idle = Duration::from_secs(10);
        let write = Duration::from_secs(4);
        let c = Connection::default();
        assert!(matches!(c.verdict(idle, write), Verdict::CheckAt(_)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(c.verdict(idle, write), Verdict::Idle);
        c.touch();
        {
            let _b = c.busy();
            tokio::time::advance(Duration::from_secs(30)).await;
            assert!(
                matches!(c.verdict(idle, write), Verdict::CheckAt(_)),
                "a connection the server works for is not idle"
            );
        }
        c.reply_queued();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(matches!(c.verdict(idle, write), Verdict::CheckAt(_)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(c.verdict(idle, write), Verdict::NotReading);
        c.reply_sent();
        c.reply_gone();
        assert!(matches!(c.verdict(idle, write), Verdict::CheckAt(_)));
    }
}
