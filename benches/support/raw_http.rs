//! A load generator's HTTP client, as small as it can be: one keep-alive HTTP/1.1
//! connection that sends whole prepared requests, one at a time, and reads each answer's
//! status. It shares the cores with the server it measures, so every cycle it spends is a
//! cycle taken from the figure; reqwest (redirect policy, URL and header handling, a pool
//! per client) cost the intake bench about a sixth of its process's time (BENCHMARKS.md).

use std::net::SocketAddr;

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bytes of a `POST` with a body of known length.
pub fn post(host: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One connection to `addr`, opened when first needed and again if the server closed it.
pub struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Connection {
        Connection {
            addr,
            stream: None,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and returns the status of its answer, whose body is read and dropped.
    /// A request on a connection the server had closed while idle is sent once more on a
    /// new one (webhooks are idempotent: the inbox keeps one copy of each event).
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        let reused = self.stream.is_some();
        match self.exchange(request).await {
            Ok(status) => Ok(status),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(request).await
            }
            Err(error) => Err(error),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().context("no connection")?;
        if let Err(error) = stream.write_all(request).await {
            self.stream = None;
            return Err(error.into());
        }
        self.buffer.clear();
        let answer = read_answer(stream, &mut self.buffer).await;
        match answer {
            Ok((status, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok(status)
            }
            Err(error) => {
                self.stream = None;
                Err(error)
            }
        }
    }
}

/// Reads one answer (head, then a `content-length` body) into `buffer`; returns its status
/// and whether the connection stays open.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<(u16, bool)> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        ensure!(buffer.len() < 64 * 1024, "an answer's head over 64 KiB");
        fill(stream, buffer).await?;
    };
    let head = std::str::from_utf8(&buffer[..head_end]).context("an answer's head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = match status_line.split(' ').collect::<Vec<_>>()[..] {
        ["HTTP/1.1", code, ..] => code.parse().context("a status that is not a number")?,
        _ => bail!("not an HTTP/1.1 answer: {status_line:?}"),
    };
    let mut length = 0usize;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().context("a content-length")?,
            "transfer-encoding" => bail!("a chunked answer (transfer-encoding: {value})"),
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            _ => {}
        }
    }
    while buffer.len() < head_end + length {
        fill(stream, buffer).await?;
    }
    ensure!(
        buffer.len() == head_end + length,
        "bytes after the answer (nothing was pipelined)"
    );
    Ok((status, keep_alive))
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    ensure!(n > 0, "the server closed the connection");
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
