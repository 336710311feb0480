//! Byte pipes between the blocking threads that read and write archives and the async
//! exec streams of a mover.
//!
//! The exec streams of a remote command cannot be closed from the side that uses
//! them: once a connection is gone, a blocking thread writing into (or reading from)
//! one would wait forever. These pipes put a channel in between, and an async pump
//! that the job owns: when the job gives up on a stream it drops the pump, and the
//! thread at the other end sees a broken pipe (writing) or the end of the data
//! (reading) and finishes.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// Bytes gathered before a write is handed to the pump.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between a thread and its pump.
const DEPTH: usize = 4;

/// The writing end, for a blocking thread. Dropping it ends the stream.
pub struct ChannelWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
}

/// A pipe whose writer is used on a blocking thread and whose pump feeds `sink`.
pub fn writer() -> (ChannelWriter, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        ChannelWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        },
        rx,
    )
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the stream to the cluster was closed",
    )
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| gone())
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.tx.is_closed() {
            return Err(gone());
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Copies what the writer sends into `sink`, then shuts `sink` down (end of input).
pub async fn pump_in(
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut sink: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    while let Some(chunk) = rx.recv().await {
        sink.write_all(&chunk).await?;
    }
    sink.shutdown().await
}

/// The reading end, for a blocking thread: the end of data once the pump is done or
/// dropped.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

/// A pipe whose pump reads from an async source and whose reader is used on a blocking
/// thread.
pub fn reader() -> (mpsc::Sender<io::Result<Vec<u8>>>, ChannelReader) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        tx,
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

impl io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Copies `source` into the pipe until it ends, or until the reader is gone.
pub async fn pump_out(mut source: impl AsyncRead + Unpin, tx: mpsc::Sender<io::Result<Vec<u8>>>) {
    // One buffer for every read, and each read's bytes copied out: a stream's reads are
    // often far smaller than a chunk (a WebSocket frame), and a fresh chunk per read
    // would be zeroed (and its pages faulted in) for every one of them.
    let mut buf = vec![0u8; CHUNK];
    loop {
        match source.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if tx.send(Ok(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_arrive_whole_and_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 12345).map(|i| (i % 251) as u8).collect();
        let (mut w, rx) = writer();
        let input = data.clone();
        let t = tokio::task::spawn_blocking(move || {
            for part in input.chunks(7777) {
                w.write_all(part).unwrap();
            }
            w.flush().unwrap();
        });
        let (sink, mut far) = tokio::io::duplex(64 * 1024);
        let (tx, mut r) = reader();
        let back = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        let (a, (), b) = tokio::join!(pump_in(rx, sink), pump_out(&mut far, tx), t);
        a.unwrap();
        b.unwrap();
        assert_eq!(back.await.unwrap(), data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_pump_ends_the_threads() {
        // Nothing reads the sink: the writer fills the pipe, then the pump is dropped.
        let (mut w, rx) = writer();
        let t = tokio::task::spawn_blocking(move || {
            let chunk = vec![1u8; 64 * 1024];
            loop {
                if let Err(e) = w.write_all(&chunk) {
                    return e.kind();
                }
            }
        });
        let (sink, _far) = tokio::io::duplex(1024);
        let pump = pump_in(rx, sink);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), pump).await;
        assert_eq!(t.await.unwrap(), io::ErrorKind::BrokenPipe);

        let (tx, mut r) = reader();
        let t = tokio::task::spawn_blocking(move || r.read(&mut [0u8; 16]).unwrap());
        drop(tx);
        assert_eq!(t.await.unwrap(), 0);
    }
}
