//! `ustack http serve` and `ustack http get`: HTTP/1.1 over the stack's TCP.
//!
//! The server serves a directory (GET and HEAD, keep-alive, Content-Length, index.html
//! or a listing, 400/404/405), one thread per connection; request paths are decoded,
//! split on `/`, stripped of `.` and refused with `..`, then canonicalised and checked
//! to be under the served directory (so a symlink cannot lead out either). The client
//! fetches one URL (Content-Length, chunked, or until close), with a progress bar on a
//! terminal, and prints throughput and SHA-256.

use super::net::{self, Transfer};
use super::CmdResult;
use crate::global::GlobalArgs;
use clap::{Args, Subcommand};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack_socket::{SockOpt, TcpListener, TcpStream};

/// Longest request or response head we accept.
const MAX_HEAD: usize = 16 * 1024;
/// A keep-alive connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// How often blocked reads and accepts look at the stop flag.
const TICK: Duration = Duration::from_millis(250);

/// Examples for `ustack http --help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    # inside a namespace you created, with the kernel side at 10.77.0.1/24 on tap0:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http serve ./site --port 8080\n  \
    sudo ip netns exec NS curl -o page.html http://10.77.0.2:8080/\n  \
    # fetch from a kernel server (python3 -m http.server 8000 in the namespace):\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http get http://10.77.0.1:8000/big.bin -o big.bin";

/// Options of `ustack http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Serve or fetch.
    #[command(subcommand)]
    pub command: HttpCommand,
}

/// `ustack http serve|get`.
#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Serve the files under DIR (GET/HEAD, keep-alive) until Ctrl-C/SIGTERM.
    #[command(after_help = "Examples:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http serve ./site\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http serve /srv --port 8080")]
    Serve {
        /// Directory to serve (index.html, or a listing, for directories).
        dir: PathBuf,
        /// TCP port.
        #[arg(long, short, default_value_t = 80)]
        port: u16,
    },
    /// Fetch one URL (http://IPv4[:PORT]/PATH or http://[IPv6]:PORT/PATH) and print
    /// throughput and SHA-256.
    #[command(after_help = "Examples:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http get http://10.77.0.1:8000/\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 http get http://10.77.0.1:8000/big.bin -o big.bin\n\n\
        The body goes to stdout (or FILE); the status line and the summary go to stderr.\n\
        Exit code 0 for a 2xx answer, 1 otherwise.")]
    Get {
        /// The URL; the host must be an address, IPv6 in brackets (there is no resolver).
        url: String,
        /// Write the body to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs `ustack http`.
pub fn run(global: &GlobalArgs, args: &HttpArgs) -> CmdResult {
    match &args.command {
        HttpCommand::Serve { dir, port } => serve(global, dir, *port),
        HttpCommand::Get { url, output } => get(global, url, output.as_deref()),
    }
}

// ---------------------------------------------------------------------------------
// Server

fn serve(global: &GlobalArgs, dir: &Path, port: u16) -> CmdResult {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a directory", dir.display()).into());
    }
    let stack = net::stack(global, "http serve")?;
    let watch = net::watch(global, &stack)?;
    // `[::]`: IPv4 and IPv6 clients (dual stack).
    let listener = TcpListener::bind(&stack, ("::", port))?;
    // accept honours SO_RCVTIMEO: wake up every tick to look at the stop flag.
    stack.setsockopt(listener.fd(), SockOpt::RcvTimeo(Some(TICK)))?;
    eprintln!(
        "ustack: serving {} on http://{}:{port}/ ; Ctrl-C to stop",
        root.display(),
        stack.ip()
    );
    let root = Arc::new(root);
    let active = Arc::new(AtomicUsize::new(0));
    serve_loop(&listener, &root, &stop, &active, true);
    drop(listener);
    // Connections notice the flag within a tick, unless stuck writing to a slow client.
    let deadline = Instant::now() + Duration::from_secs(2);
    while active.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(watch);
    let counters = stack.with_interface(|iface, _| super::format_counters(iface));
    eprint!("ustack: interface counters:\n{counters}");
    if active.load(Ordering::Relaxed) == 0 {
        drop(stack);
        net::report_pcap(global);
    }
    Ok(0)
}

/// Accepts and serves connections (a thread each) until `stop` is set; `active` counts
/// the connection threads still running. The listener must have a receive timeout so
/// the flag is seen. `log`: one access-log line per request on stderr.
pub fn serve_loop(
    listener: &TcpListener,
    root: &Arc<PathBuf>,
    stop: &Arc<AtomicBool>,
    active: &Arc<AtomicUsize>,
    log: bool,
) {
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue
            }
            Err(e) => {
                // EIO (dead stack) or EBADF: nothing more will be accepted.
                eprintln!("ustack: accept: {e}");
                return;
            }
        };
        // The listener is dual stack: log IPv4 clients as IPv4, not `::ffff:`.
        let peer = net::show_peer(peer);
        let (root, stop2, active2) = (Arc::clone(root), Arc::clone(stop), Arc::clone(active));
        active.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("http-{peer}"))
            .spawn(move || {
                if let Err(e) = connection(&stream, peer, &root, &stop2, log) {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) {
                        eprintln!("ustack: {peer}: {e}");
                    }
                }
                active2.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::Relaxed);
            eprintln!("ustack: cannot start a connection thread: {e}");
        }
    }
}

/// A parsed request head.
struct Request {
    method: String,
    target: String,
    /// HTTP/1.0, or `Connection: close`.
    close: bool,
    content_length: u64,
    chunked: bool,
}

/// Serves requests on one connection until it closes, idles out or the server stops.
fn connection(
    stream: &TcpStream,
    peer: SocketAddr,
    root: &Path,
    stop: &AtomicBool,
    log: bool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(TICK))?;
    let mut reader = BufReader::with_capacity(MAX_HEAD, stream);
    let mut out = BufWriter::with_capacity(256 * 1024, stream);
    // `None`: closed, idle or stopping.
    while let Some(head) = read_head(&mut reader, stop)? {
        let req = match parse_request(&head) {
            Ok(r) => r,
            Err(why) => {
                respond_error(&mut out, 400, "Bad Request", why, true)?;
                eprintln!("ustack: {peer} bad request: {why}");
                break;
            }
        };
        if req.chunked {
            respond_error(
                &mut out,
                400,
                "Bad Request",
                "chunked request bodies are not supported",
                true,
            )?;
            break;
        }
        // Bodies mean nothing to GET/HEAD; skip them so the next request parses.
        io::copy(&mut (&mut reader).take(req.content_length), &mut io::sink())?;
        let status = handle(&mut out, &req, root)?;
        if log {
            eprintln!(
                "ustack: {peer} \"{} {}\" {status}",
                req.method,
                req.target.escape_debug()
            );
        }
        out.flush()?;
        if req.close {
            break;
        }
    }
    out.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Reads up to the blank line ending a head; `None` on a clean close before any byte,
/// after [`IDLE`] without a request, or when `stop` is set.
fn read_head(reader: &mut BufReader<&TcpStream>, stop: &AtomicBool) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let idle_since = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || (head.is_empty() && idle_since.elapsed() > IDLE) {
            return Ok(None);
        }
        let n = match reader.read_until(b'\n', &mut head) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a request head",
            ));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        // Tolerate blank lines before a request (RFC 9112 §2.2).
        if head == b"\r\n" || head == b"\n" {
            head.clear();
            continue;
        }
        if head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n") {
            return String::from_utf8(head).map(Some).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "request head is not UTF-8")
            });
        }
    }
}

fn parse_request(head: &str) -> Result<Request, &'static str> {
    let mut lines = head.lines();
    let line = lines.next().ok_or("empty request")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("malformed method");
    }
    let mut close = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err("unsupported HTTP version"),
    };
    let mut content_length = 0;
    let mut chunked = false;
    for l in lines {
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').ok_or("malformed header")?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    close = true;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    close = false;
                }
            }
            "content-length" => content_length = value.parse().map_err(|_| "bad Content-Length")?,
            "transfer-encoding" => chunked = !value.eq_ignore_ascii_case("identity"),
            _ => {}
        }
    }
    Ok(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        close,
        content_length,
        chunked,
    })
}

/// Answers one request; returns the status code.
fn handle(out: &mut impl Write, req: &Request, root: &Path) -> io::Result<u16> {
    let head_only = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            write!(
                out,
                "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n\
                 Content-Length: 19\r\n{}\r\nmethod not allowed\n",
                conn_header(req.close)
            )?;
            return Ok(405);
        }
    };
    let Some(path) = resolve(root, &req.target) else {
        respond_error(out, 404, "Not Found", "not found", req.close)?;
        return Ok(404);
    };
    let (path, listing) = if path.is_dir() {
        let index = path.join("index.html");
        if index.is_file() {
            (index, None)
        } else {
            let url_path = req.target.split(['?', '#']).next().unwrap_or("/");
            (path.clone(), Some(listing(&path, url_path)?))
        }
    } else {
        (path, None)
    };
    if let Some(html) = listing {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
            html.len(),
            conn_header(req.close)
        )?;
        if !head_only {
            out.write_all(html.as_bytes())?;
        }
        return Ok(200);
    }
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(_) => {
            respond_error(out, 404, "Not Found", "not found", req.close)?;
            return Ok(404);
        }
    };
    let len = file.metadata()?.len();
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\n{}\r\n",
        content_type(&path),
        conn_header(req.close)
    )?;
    if !head_only {
        let sent = io::copy(&mut (&mut file).take(len), out)?;
        if sent != len {
            // The file shrank under us: the framing is broken, so the connection must go.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while sending",
            ));
        }
    }
    Ok(200)
}

fn conn_header(close: bool) -> &'static str {
    if close {
        "Connection: close\r\nServer: ustack\r\n"
    } else {
        "Server: ustack\r\n"
    }
}

fn respond_error(
    out: &mut impl Write,
    code: u16,
    reason: &str,
    body: &str,
    close: bool,
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}\n",
        body.len() + 1,
        conn_header(close)
    )?;
    out.flush()
}

/// Maps a request target to a file under `root`, or `None` (→ 404) for anything that
/// is not an origin-form path, does not exist, or leads outside `root`.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    if !path.starts_with('/') {
        return None;
    }
    let decoded = percent_decode(path)?;
    let mut full = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\0') || s.contains('\\') => return None,
            s => full.push(s),
        }
    }
    let real = full.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn listing(dir: &Path, url_path: &str) -> io::Result<String> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    names.sort();
    let base = if url_path.ends_with('/') {
        url_path.to_owned()
    } else {
        format!("{url_path}/")
    };
    let title = html_escape(&percent_decode(&base).unwrap_or_else(|| base.clone()));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        html.push_str(&format!(
            "<li><a href=\"{base}{}{slash}\">{}{slash}</a></li>\n",
            url_escape(&name),
            html_escape(&name)
        ));
    }
    html.push_str("</ul></body></html>\n");
    Ok(html)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rs" | "toml") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pcap") => "application/vnd.tcpdump.pcap",
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------------------------
// Client

/// A parsed `http://HOST[:PORT]/PATH` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let path = path.split('#').next().unwrap_or("/").to_owned();
    // RFC 3986 §3.2.2: an IPv6 literal is bracketed, and its colons are not the port's.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let p = &authority[i + 1..];
            (
                &authority[..i],
                p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
            )
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("`{url}`: no host"));
    }
    Ok(Url {
        host: host.to_owned(),
        port,
        path,
    })
}

fn get(global: &GlobalArgs, url: &str, output: Option<&Path>) -> CmdResult {
    let u = parse_url(url)?;
    // RFC 6874 writes a zone as `%25`; `%` alone is accepted too.
    let addr = net::host_addr(&u.host.replacen("%25", "%", 1), u.port)?;
    let stack = net::stack(global, "http get")?;
    let watch = net::watch(global, &stack)?;
    net::await_source(&stack, addr);
    let stream = TcpStream::connect(&stack, addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    let host = if u.port == 80 {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    (&stream).write_all(
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ustack/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            u.path,
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    )?;
    let mut reader = BufReader::with_capacity(256 * 1024, &stream);
    let (status, reason, headers) = read_response_head(&mut reader)?;
    eprintln!("ustack: HTTP/1.1 {status} {reason}");
    let length = header(&headers, "content-length")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("bad Content-Length `{v}`"))
        })
        .transpose()?;
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut sink: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(io::stdout().lock()),
    };
    let mut t = Transfer::new(if chunked { None } else { length });
    if chunked {
        read_chunked(&mut reader, &mut *sink, &mut t)?;
    } else if let Some(n) = length {
        let got = t.copy(&mut (&mut reader).take(n), &mut *sink)?;
        if got != n {
            return Err(format!("connection closed after {got} of {n} body bytes").into());
        }
    } else {
        t.copy(&mut reader, &mut *sink)?;
    }
    sink.flush()?;
    drop(sink);
    eprintln!("ustack: {}", t.finish());
    drop(reader);
    drop(stream);
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(if (200..300).contains(&status) { 0 } else { 1 })
}

type Headers = Vec<(String, String)>;

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_line(r: &mut impl BufRead, limit: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*limit as u64)
        .read_until(b'\n', &mut line)?;
    *limit = limit.saturating_sub(n);
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            if n == 0 {
                "connection closed before the response head"
            } else {
                "response head too long or cut"
            },
        ));
    }
    let s = String::from_utf8_lossy(&line);
    Ok(s.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_response_head(r: &mut impl BufRead) -> io::Result<(u16, String, Headers)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let mut limit = MAX_HEAD;
    loop {
        let status_line = read_line(r, &mut limit)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(bad("not an HTTP/1.x response"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status code"))?;
        let reason = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let l = read_line(r, &mut limit)?;
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').ok_or_else(|| bad("malformed header"))?;
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        // 1xx interim answers (e.g. 100 Continue) precede the real one.
        if !(100..200).contains(&status) {
            return Ok((status, reason, headers));
        }
    }
}

/// Decodes a chunked body (RFC 9112 §7.1) into `out`.
fn read_chunked(r: &mut impl BufRead, out: &mut dyn Write, t: &mut Transfer) -> io::Result<()> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    loop {
        let mut limit = MAX_HEAD;
        let line = read_line(r, &mut limit)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailer section up to the blank line.
            loop {
                if read_line(r, &mut limit)?.is_empty() {
                    return Ok(());
                }
            }
        }
        let mut chunk = r.by_ref().take(size);
        if t.copy(&mut chunk, out)? < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
        if !crlf.trim_end_matches(['\r', '\n']).is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("http://10.0.0.1:8000/a/b?x=1").unwrap(),
            Url {
                host: "10.0.0.1".into(),
                port: 8000,
                path: "/a/b?x=1".into()
            }
        );
        assert_eq!(
            parse_url("http://10.0.0.1").unwrap(),
            Url {
                host: "10.0.0.1".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            parse_url("http://[fd00::1]:8000/x").unwrap(),
            Url {
                host: "[fd00::1]".into(),
                port: 8000,
                path: "/x".into()
            }
        );
        assert_eq!(parse_url("http://[fd00::1]/").unwrap().port, 80);
        assert!(parse_url("http://[fd00::1]:x/").is_err());
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
    }

    #[test]
    fn chunked_bodies_decode() {
        let body = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut r = BufReader::new(&body[..]);
        let mut out = Vec::new();
        let mut t = Transfer::new(None);
        read_chunked(&mut r, &mut out, &mut t).unwrap();
        assert_eq!(out, b"hello, world");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
        let cut = b"5\r\nhel";
        assert!(read_chunked(&mut BufReader::new(&cut[..]), &mut Vec::new(), &mut t).is_err());
    }

    #[test]
    fn requests_parse() {
        let r = parse_request("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.close),
            ("GET", "/x", true)
        );
        assert!(parse_request("HEAD / HTTP/1.0\r\n\r\n").unwrap().close);
        assert!(parse_request("GET /\r\n\r\n").is_err());
        assert!(parse_request("GET / HTTP/2\r\n\r\n").is_err());
        assert!(parse_request("GET / HTTP/1.1\r\nbad\r\n\r\n").is_err());
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = std::env::temp_dir().join(format!("ustack-http-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a b.txt"), "x").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, "/sub/a%20b.txt?q"),
            Some(root.join("sub/a b.txt"))
        );
        assert_eq!(resolve(&root, "/"), Some(root.clone()));
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/sub/%2e%2e/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(&root, "/nope"), None);
        assert_eq!(resolve(&root, "http://x/"), None);
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink("/etc", root.join("out"));
            assert_eq!(resolve(&root, "/out/passwd"), None);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
