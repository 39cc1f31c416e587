//! `smsgate healthcheck`, the container HEALTHCHECK: exit 0 when the metrics
//! server answers 200 on /healthz (or /readyz with --ready), 1 otherwise.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

/// A one-request HTTP server answering `status`; returns its address and
/// the request path it received.
fn serve_once(status: &'static str) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        let reply =
            format!("HTTP/1.1 {status}\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
        stream.write_all(reply.as_bytes()).unwrap();
        request.split_whitespace().nth(1).unwrap_or("").to_string()
    });
    (addr, handle)
}

fn healthcheck(listen: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .arg("healthcheck")
        .args(args)
        .env("SMSGATE__METRICS__LISTEN", listen)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn a_gate_answering_200_on_healthz_is_healthy() {
    let (addr, server) = serve_once("200 OK");
    let out = healthcheck(&addr, &[]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.join().unwrap(), "/healthz");
}

#[test]
fn ready_flag_probes_readyz_and_a_503_is_unhealthy() {
    let (addr, server) = serve_once("503 Service Unavailable");
    let out = healthcheck(&addr, &["--ready"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.join().unwrap(), "/readyz");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("503"),
        "the error names the status: {stderr}"
    );
}

#[test]
fn no_server_listening_is_unhealthy_with_a_one_line_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = healthcheck(&format!("127.0.0.1:{port}"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn an_unspecified_listen_address_is_probed_on_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    let out = healthcheck(&format!("0.0.0.0:{port}"), &[]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.join().unwrap();
}
