//! `coxswain-web`: the demo web server of the walk-through, standing in for
//! its nginx image.
//!
//! What it promises:
//!
//! * it listens on `0.0.0.0:80`, or on the port given by `--port N` or by the
//!   `PORT` environment variable (the flag wins);
//! * every `GET` (and `HEAD`) of any path is answered `200 OK` with a small
//!   HTML page titled "Welcome to coxswain-web" that names the host (the
//!   pod's hostname), so a test can tell which pod answered; other methods
//!   get `405 Method Not Allowed`;
//! * it prints one line when it starts and one line per request on stdout,
//!   so `kubectl logs` shows the traffic;
//! * SIGTERM and SIGINT end it at once with status 0, as nginx's fast
//!   shutdown does, so a pod stops without waiting out its grace period.
//!
//! It uses only the standard library: blocking sockets and one thread per
//! connection, each connection serving one request (`Connection: close`).

use std::ffi::c_int;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// The port used when neither `--port` nor `PORT` says otherwise.
const DEFAULT_PORT: u16 = 80;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head (request line plus headers) that is read.
const MAX_HEAD_BYTES: u64 = 16 * 1024;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

// SAFETY: these declarations match the C library's prototypes on Linux
// (glibc and musl): `sighandler_t` is a pointer-sized value and `_exit` never
// returns.
unsafe extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    safe fn _exit(status: c_int) -> !;
}

fn main() {
    let port = match port_from(std::env::args().skip(1), std::env::var("PORT").ok()) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("coxswain-web: {message}");
            eprintln!("usage: coxswain-web [--port N]   (or the PORT environment variable)");
            std::process::exit(2);
        }
    };

    for signum in [SIGTERM, SIGINT] {
        // SAFETY: the handler only calls `_exit`, which is async-signal-safe.
        unsafe { signal(signum, exit_now) };
    }

    let host = hostname();
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = match TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("coxswain-web: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!("coxswain-web listening on {address} (host {host})");

    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let host = host.clone();
                std::thread::spawn(move || serve(stream, &host));
            }
            Err(error) => eprintln!("coxswain-web: accept failed: {error}"),
        }
    }
}

/// SIGTERM and SIGINT: stop at once, cleanly.
extern "C" fn exit_now(_signum: c_int) {
    _exit(0);
}

/// Picks the port from the command line, then from `PORT`, then the default.
fn port_from(
    mut args: impl Iterator<Item = String>,
    env_port: Option<String>,
) -> Result<u16, String> {
    let mut chosen = None;
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--port=") {
            Some(value) => value.to_owned(),
            None if arg == "--port" => args.next().ok_or("--port needs a value")?,
            None => return Err(format!("unknown argument {arg:?}")),
        };
        chosen = Some(parse_port(&value)?);
    }
    match (chosen, env_port) {
        (Some(port), _) => Ok(port),
        (None, Some(value)) => parse_port(&value),
        (None, None) => Ok(DEFAULT_PORT),
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a port number"))
}

/// The name of the host (in a pod: the pod's name), for the page and the log.
fn hostname() -> String {
    ["/etc/hostname", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Serves the one request of a connection and logs it.
fn serve(stream: TcpStream, host: &str) {
    let peer = stream
        .peer_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_else(|_| "-".to_owned());
    match answer(stream, host) {
        Ok((request_line, status, bytes)) => {
            println!("{peer} \"{request_line}\" {status} {bytes}");
        }
        Err(error) => println!("{peer} connection error: {error}"),
    }
}

/// Reads the request head and writes the response; returns what the log line
/// needs: the request line, the status code and the body length.
fn answer(stream: TcpStream, host: &str) -> io::Result<(String, u16, usize)> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(MAX_HEAD_BYTES));

    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let request_line = request_line.trim_end().to_owned();

    // Read the headers up to the blank line; their content is not needed.
    let mut header = String::new();
    loop {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }

    let method = request_line.split_whitespace().next().unwrap_or("");
    let (status, reason, body) = match method {
        "GET" | "HEAD" => (200, "OK", welcome_page(host)),
        _ => (
            405,
            "Method Not Allowed",
            format!("method {method:?} is not allowed\n"),
        ),
    };
    let content_type = if status == 200 {
        "text/html"
    } else {
        "text/plain"
    };

    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Allow: GET, HEAD\r\n\
         Server: coxswain-web\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let mut stream = stream;
    stream.write_all(response.as_bytes())?;
    stream.flush()?;
    Ok((request_line, status, body.len()))
}

/// The page every GET receives.
fn welcome_page(host: &str) -> String {
    format!(
        "<!DOCTYPE html>\n\
         <html>\n\
         <head><title>Welcome to coxswain-web</title></head>\n\
         <body>\n\
         <h1>Welcome to coxswain-web</h1>\n\
         <p>Served by <b id=\"host\">{host}</b>.</p>\n\
         </body>\n\
         </html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|arg| arg.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn without_flag_or_env_it_listens_on_port_80() {
        assert_eq!(port_from(args(&[]), None), Ok(80));
    }

    #[test]
    fn the_port_flag_wins_over_the_environment() {
        assert_eq!(
            port_from(args(&["--port", "8080"]), Some("9090".into())),
            Ok(8080)
        );
        assert_eq!(port_from(args(&["--port=81"]), None), Ok(81));
        assert_eq!(port_from(args(&[]), Some("9090".into())), Ok(9090));
    }

    #[test]
    fn a_port_that_is_not_a_number_is_refused() {
        assert!(port_from(args(&["--port", "http"]), None).is_err());
        assert!(port_from(args(&["--port"]), None).is_err());
        assert!(port_from(args(&["--verbose"]), None).is_err());
    }

    #[test]
    fn the_page_names_the_host() {
        assert!(welcome_page("web-7d4f").contains("Welcome to coxswain-web"));
        assert!(welcome_page("web-7d4f").contains("web-7d4f"));
    }
}
