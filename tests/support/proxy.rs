//! A TCP proxy between a client and a server that a test can cut, to see what a job
//! does when its cluster goes away: [`Mode::Reset`] closes every connection and
//! refuses new ones (a server that went down), [`Mode::Blackhole`] keeps the sockets
//! open and moves nothing (a network partition: nothing tells the client), and
//! [`Mode::Forward`] carries traffic again. Dropping the proxy stops it and every
//! connection it holds.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Reset,
    Blackhole,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Forward);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if *rx.borrow() == Mode::Reset {
                    drop(client);
                    continue;
                }
                conns.spawn(carry(client, upstream, rx.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        Proxy { addr, mode, task }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// One connection: bytes both ways while the mode is `Forward`.
async fn carry(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Reset => return,
            Mode::Blackhole => {
                // Hold both sockets, read nothing, until the mode changes.
                if mode.changed().await.is_err() {
                    return;
                }
            }
            Mode::Forward => {
                tokio::select! {
                    r = cr.read(&mut up) => match r {
                        Ok(n @ 1..) => if sw.write_all(&up[..n]).await.is_err() { return },
                        _ => return,
                    },
                    r = sr.read(&mut down) => match r {
                        Ok(n @ 1..) => if cw.write_all(&down[..n]).await.is_err() { return },
                        _ => return,
                    },
                    changed = mode.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
