//! A stub AWS endpoint on 127.0.0.1 that answers each request from a closure, for the few
//! account-level APIs that neither moto nor a per-client mock can stand in for (the session
//! builds those clients itself from one endpoint). Served from a background thread; stops when
//! the test process ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

/// What the stub saw of a request.
pub struct Request {
    pub path: String,
    /// The `x-amz-target` header (`Service_Version.Operation` for JSON-protocol APIs).
    pub target: String,
    /// The access key ID the request was signed with (from its `Authorization` header).
    pub access_key: String,
    pub body: String,
}

/// A response: status, content type, body.
pub type Reply = (u16, &'static str, String);

/// Starts the stub and returns its endpoint URL.
pub fn serve(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
    let endpoint = format!("http://{}", listener.local_addr().expect("stub address"));
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let mut length = 0usize;
                    let mut target = String::new();
                    let mut access_key = String::new();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            } else if name.eq_ignore_ascii_case("x-amz-target") {
                                target = value.trim().to_string();
                            } else if name.eq_ignore_ascii_case("authorization") {
                                access_key = value
                                    .split("Credential=")
                                    .nth(1)
                                    .and_then(|c| c.split('/').next())
                                    .unwrap_or_default()
                                    .to_string();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request = Request {
                        path,
                        target,
                        access_key,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let (status, content_type, body) = answer(&request);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: stub\r\n\r\n{body}",
                        body.len()
                    );
                    if reader.get_mut().write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    endpoint
}
