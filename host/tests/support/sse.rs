//! A Server-Sent Events client over a plain `TcpStream`, so a test decides
//! exactly when (and whether) it reads: HTTP/1.1 GET, chunked body decoded
//! by hand, events parsed from `event:`/`data:` lines.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// One event: its `event:` name and its `data:` parsed as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// An open `text/event-stream` response.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    decoded: VecDeque<u8>,
    ended: bool,
}

impl SseClient {
    /// `GET path` on `127.0.0.1:port`; panics unless the answer is 200
    /// `text/event-stream`. Reads time out after `patience`, so a test that
    /// waits for an event that never comes fails instead of hanging.
    pub fn connect(port: u16, path: &str, patience: Duration) -> SseClient {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
        stream.set_read_timeout(Some(patience)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .expect("reading the response head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "GET {path} did not answer 200:\n{head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream"), "{head}");
        assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        SseClient {
            reader,
            decoded: VecDeque::new(),
            ended: false,
        }
    }

    /// Decodes the next chunk into `decoded`; false at the end of the body.
    fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        let mut size_line = String::new();
        match self.reader.read_line(&mut size_line) {
            Ok(0) => {
                self.ended = true;
                return false;
            }
            Ok(_) => {}
            Err(e) => panic!("reading the event stream: {e}"),
        }
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size_line:?}"));
        if size == 0 {
            self.ended = true;
            return false;
        }
        let mut chunk = vec![0; size + 2];
        self.reader
            .read_exact(&mut chunk)
            .unwrap_or_else(|e| panic!("reading a chunk of {size} bytes: {e}"));
        self.decoded.extend(&chunk[..size]);
        true
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.decoded.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.decoded.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the
    /// stream ends.
    pub fn next(&mut self) -> Option<SseEvent> {
        let mut event = String::from("message");
        let mut data = String::new();
        let mut any = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if any {
                    let data = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
                    return Some(SseEvent { event, data });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => {
                    event = value.to_owned();
                    any = true;
                }
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                    any = true;
                }
                _ => any = true,
            }
        }
    }

    /// The next event whose name is not `summary` (a summary can come at
    /// any second).
    pub fn next_not_summary(&mut self) -> Option<SseEvent> {
        loop {
            let event = self.next()?;
            if event.event != "summary" {
                return Some(event);
            }
        }
    }
}
