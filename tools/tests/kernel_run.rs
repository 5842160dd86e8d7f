//! `ustack run` and the C ABI against the Linux kernel, each inside a network
//! namespace the test creates (a TAP `tap0`, kernel 10.77.0.1/24, stack 10.77.0.2/24).
//!
//! Unmodified programs run under `ustack run` (LD_PRELOAD of `libustack_preload.so`,
//! which the tests build with cargo first): the seeds' C examples (compiled here with
//! the system `cc`, both plain and linked to `ustack.h`), curl, and Python's
//! http.server (which binds `::`). The kernel's side of each conversation is Rust on
//! kernel sockets, on a thread inside the namespace; every exchange checks the data
//! and the program's exit status.
//!
//! Without privileges they print a loud SKIPPED banner; under
//! `USTACK_REQUIRE_NETNS=1` they fail instead (the harness's rules). A missing `cc`,
//! `curl` or `python3` skips (or fails) the same way.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ustack_socket::kernel_peer::{http_get, HttpFileServer};
use ustack_socket::netns::{Netns, NsThread};

const BIN: &str = env!("CARGO_BIN_EXE_ustack");
const KERNEL_IP: &str = "10.77.0.1";
const STACK_IP: &str = "10.77.0.2";
const STACK_CIDR: &str = "10.77.0.2/24";

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("kernel test")
        .to_owned()
}

/// Privileges and tools, or skip/fail by the harness's rules.
fn can_run(tools: &[&str]) -> bool {
    let test = test_name();
    ustack_tests::netns_available(&test)
        && tools.iter().all(|t| ustack_tests::tool_available(&test, t))
}

/// `libustack_preload.so` next to the `ustack` binary, built once per test process
/// (cargo does nothing when it is fresh).
fn preload_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(BIN).parent().expect("binary directory");
        let target = dir.parent().expect("target directory");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "ustack-preload", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target);
        // The profile the ustack binary was built with, so the library shares its
        // compiled dependencies (and their optimisation level).
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        } else {
            cmd.args(["--profile", "test"]);
        }
        let status = cmd.status().expect("run cargo build -p ustack-preload");
        assert!(status.success(), "cargo build -p ustack-preload failed");
        let lib = dir.join("libustack_preload.so");
        assert!(lib.is_file(), "{} missing after the build", lib.display());
        lib
    })
    .clone()
}

/// A namespace with `tap0` (kernel 10.77.0.1/24).
fn namespace() -> Netns {
    let ns = Netns::new("ustack-run").expect("create namespace");
    ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
    ns
}

/// `ustack --tap tap0 --ip 10.77.0.2/24 FLAGS... run -- PROGRAM...` inside `ns`.
fn ustack_run(ns: &Netns, flags: &[&str], program: &[&str]) -> Command {
    let mut full = vec![BIN, "--tap", "tap0", "--ip", STACK_CIDR];
    full.extend_from_slice(flags);
    full.extend_from_slice(&["run", "--"]);
    full.extend_from_slice(program);
    let mut cmd = ns.command(&full);
    cmd.env("USTACK_PRELOAD_LIB", preload_lib());
    cmd
}

/// A program linked to `ustack.h`, run inside `ns` with the stack's environment.
fn linked(ns: &Netns, program: &[&str]) -> Command {
    let mut cmd = ns.command(program);
    cmd.env("USTACK_TAP", "tap0").env("USTACK_IP", STACK_CIDR);
    cmd
}

/// A running program whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            what: what.to_owned(),
        }
    }

    /// Waits for a stdout line containing `text`.
    fn wait_line(&mut self, text: &str, limit: Duration) {
        let end = Instant::now() + limit;
        if self.seen.iter().any(|l| l.contains(text)) {
            return;
        }
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(text);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "{}: no line with {text:?} in {limit:?}; saw {:?}",
            self.what, self.seen
        );
    }

    /// Waits for the exit; returns (exit code, all stdout, stderr).
    fn finish(mut self, limit: Duration) -> (i32, String, String) {
        let mut child = self.child.take().expect("finished once");
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "{} still running after {limit:?}; stdout {:?}; stderr:\n{err}",
                    self.what, self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        // The reader thread ends at EOF; collect what it still holds.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let code = status.code().unwrap_or(-1);
        (code, self.seen.join("\n"), err)
    }

    /// Asserts a zero exit and returns stdout.
    fn success(self, limit: Duration) -> String {
        let what = self.what.clone();
        let (code, out, err) = self.finish(limit);
        assert_eq!(
            code, 0,
            "{what} exit status; stdout:\n{out}\nstderr:\n{err}"
        );
        out
    }

    fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ustack-run-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles `source` (relative to the repository) with `cc`, plain or linked to the
/// library through `ustack.h`; returns the executable.
fn compile(dir: &TempDir, source: &str, api: bool) -> String {
    let src = repo().join(source);
    let stem = Path::new(source)
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    let out = dir.s(&format!("{stem}{}", if api { "_api" } else { "" }));
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-O1", "-pthread", "-o", &out]).arg(&src);
    if api {
        let lib = preload_lib();
        let libdir = lib.parent().expect("lib dir");
        cmd.arg("-DUSTACK_API")
            .arg(format!("-I{}", repo().join("preload/include").display()))
            .arg(format!("-L{}", libdir.display()))
            .arg("-lustack_preload")
            .arg(format!("-Wl,-rpath,{}", libdir.display()));
    }
    let o = cmd.output().expect("run cc");
    assert!(
        o.status.success(),
        "cc {source}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs `f` as the kernel's side on a thread inside `ns`.
fn peer<T: Send + 'static>(
    ns: &Netns,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> NsThread<T> {
    ns.spawn_in(what, f)
        .unwrap_or_else(|e| panic!("kernel peer `{what}`: {e}"))
}

fn join<T>(p: NsThread<T>, limit: Duration) -> T {
    let what = p.what().to_owned();
    p.join_timeout(limit)
        .unwrap_or_else(|_| panic!("kernel peer `{what}` still running after {limit:?}"))
}

/// Binds a kernel TCP listener inside `ns` (before the program needs it).
fn kernel_listener(ns: &Netns, port: u16) -> TcpListener {
    ns.run_in(move || TcpListener::bind((KERNEL_IP, port)).expect("kernel listen"))
        .expect("enter namespace")
}

/// A kernel TCP echo server for `conns` connections, one after the other.
fn kernel_echo(ns: &Netns, port: u16, conns: usize) -> NsThread<u64> {
    let l = kernel_listener(ns, port);
    peer(ns, "tcp echo", move || {
        let mut total = 0;
        for _ in 0..conns {
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(30))).ok();
            let mut buf = vec![0u8; 65536];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        total += n as u64;
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        }
        total
    })
}

/// A kernel UDP echo server answering `count` datagrams.
fn kernel_udp_echo(ns: &Netns, port: u16, count: usize) -> NsThread<usize> {
    let u = ns
        .run_in(move || UdpSocket::bind((KERNEL_IP, port)).expect("udp bind"))
        .expect("enter namespace");
    peer(ns, "udp echo", move || {
        u.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while n < count {
            let Ok((len, from)) = u.recv_from(&mut buf) else {
                break;
            };
            let _ = u.send_to(&buf[..len], from);
            n += 1;
        }
        n
    })
}

/// Connects from the kernel to the stack, retrying while the program starts.
fn connect_retry(to: SocketAddr) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => return s,
            Err(e) if Instant::now() > end => panic!("connect {to}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `len` pseudo-random bytes to `path`; returns their SHA-256.
fn random_file(path: &Path, len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("write test file");
    sha256(&data)
}

fn stack_addr(port: u16) -> SocketAddr {
    format!("{STACK_IP}:{port}").parse().expect("addr")
}

const LIMIT: Duration = Duration::from_secs(60);

/// Every C example, built plain (`api` false, run under `ustack run`) or linked to
/// `ustack.h` (run with the USTACK_* environment), against kernel peers.
fn c_examples(api: bool) {
    if !can_run(&["cc"]) {
        return;
    }
    let tmp = TempDir::new(if api { "capi" } else { "crun" });
    let exe = |name: &str| compile(&tmp, &format!("examples/c/{name}.c"), api);
    let ns = namespace();
    let run = |args: &[&str]| {
        if api {
            linked(&ns, args)
        } else {
            ustack_run(&ns, &[], args)
        }
    };

    // TCP server on 8080: the kernel sends 1 MB and reads it back.
    let server = exe("tcp_server");
    let mut p = Proc::spawn(run(&[&server, "8080", "1"]), "tcp_server");
    p.wait_line("listening on 8080", LIMIT);
    let data = pattern(1_000_000);
    let sent = data.clone();
    let back = join(
        peer(&ns, "tcp_server client", move || {
            let mut s = connect_retry(stack_addr(8080));
            let w = s.try_clone().expect("clone");
            let writer = std::thread::spawn(move || {
                let mut w = w;
                w.write_all(&sent).expect("send");
                w.shutdown(std::net::Shutdown::Write).expect("shutdown");
            });
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read echo");
            writer.join().expect("writer");
            got
        }),
        LIMIT,
    );
    assert!(
        back == data,
        "tcp_server echoed {} bytes, not the 1 MB sent",
        back.len()
    );
    let out = p.success(LIMIT);
    assert!(out.contains("echoed 1000000 bytes"), "{out}");
    assert!(out.contains(&format!("client {KERNEL_IP}:")), "{out}");

    // TCP client: 1 MB through a kernel echo server.
    let echo = kernel_echo(&ns, 7000, 1);
    let out = Proc::spawn(
        run(&[&exe("tcp_client"), KERNEL_IP, "7000", "1000000"]),
        "tcp_client",
    )
    .success(LIMIT);
    assert!(out.contains("ok 1000000 bytes echoed"), "{out}");
    assert_eq!(join(echo, LIMIT), 1_000_000);

    // select() chat: two kernel clients, a line each way.
    let mut p = Proc::spawn(run(&[&exe("select_chat"), "8081", "2"]), "select_chat");
    p.wait_line("listening on 8081", LIMIT);
    let mut a = ns.run_in(|| connect_retry(stack_addr(8081))).expect("ns");
    p.wait_line("joined 1", LIMIT);
    let b = ns.run_in(|| connect_retry(stack_addr(8081))).expect("ns");
    p.wait_line("joined 2", LIMIT);
    // Both sockets were made inside the namespace; using them from here is fine.
    a.write_all(b"hello from a\n").expect("a writes");
    let mut b = b;
    b.set_read_timeout(Some(Duration::from_secs(10))).ok();
    a.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut line = [0u8; 13];
    b.read_exact(&mut line).expect("b reads a's line");
    assert_eq!(&line, b"hello from a\n");
    b.write_all(b"hi from b...\n").expect("b writes");
    a.read_exact(&mut line).expect("a reads b's line");
    assert_eq!(&line, b"hi from b...\n");
    drop(a);
    drop(b);
    let out = p.success(LIMIT);
    assert!(out.contains("relayed 2 lines"), "{out}");

    // UDP receiver: three datagrams from the kernel, each acknowledged.
    let mut p = Proc::spawn(run(&[&exe("udp_recv"), "9000", "3"]), "udp_recv");
    p.wait_line("bound 9000", LIMIT);
    let acks = join(
        peer(&ns, "udp sender", || {
            let u = UdpSocket::bind((KERNEL_IP, 0)).expect("bind");
            u.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut acks = Vec::new();
            for i in 0..3 {
                u.send_to(format!("datagram {i}").as_bytes(), stack_addr(9000))
                    .expect("send");
                let mut buf = [0u8; 64];
                let (n, _) = u.recv_from(&mut buf).expect("ack");
                acks.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            acks
        }),
        LIMIT,
    );
    assert_eq!(acks, ["ack datagram 0", "ack datagram 1", "ack datagram 2"]);
    let out = p.success(LIMIT);
    assert!(
        out.contains(&format!("from {KERNEL_IP}:")) && out.contains(": datagram 2"),
        "{out}"
    );

    // UDP sender: five datagrams to a kernel receiver.
    let u = ns
        .run_in(|| UdpSocket::bind((KERNEL_IP, 9001)).expect("bind"))
        .expect("ns");
    let got = peer(&ns, "udp receiver", move || {
        u.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 5 {
            let Ok((n, from)) = u.recv_from(&mut buf) else {
                break;
            };
            assert_eq!(from.ip().to_string(), STACK_IP);
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    });
    let out =
        Proc::spawn(run(&[&exe("udp_send"), KERNEL_IP, "9001", "5"]), "udp_send").success(LIMIT);
    assert!(out.contains("sent 5"), "{out}");
    let got = join(got, LIMIT);
    let want: Vec<String> = (0..5).map(|i| format!("datagram {i}")).collect();
    assert_eq!(got, want);

    // Non-blocking connect: one accepted (and echoed), one refused.
    let echo = kernel_echo(&ns, 7002, 1);
    let out = Proc::spawn(
        run(&[&exe("nonblock_connect"), KERNEL_IP, "7002", "7003"]),
        "nonblock_connect",
    )
    .success(LIMIT);
    assert!(out.contains("connect: EINPROGRESS"), "{out}");
    assert!(
        out.contains("port 7002: connected") && out.contains("echo ok"),
        "{out}"
    );
    assert!(out.contains("port 7003: Connection refused"), "{out}");
    assert_eq!(join(echo, LIMIT), 6);

    // AF_UNIX socketpair stays on the kernel.
    let out = Proc::spawn(run(&[&exe("unix_socketpair")]), "unix_socketpair").success(LIMIT);
    assert!(out.contains("socketpair ok"), "{out}");

    // epoll over a ustack socket, a pipe and an AF_UNIX socket, LT then ET.
    let epoll = exe("epoll_mix");
    for (i, mode) in ["lt", "et"].into_iter().enumerate() {
        let port = 7010 + i as u16;
        let echo = kernel_udp_echo(&ns, port, 3);
        let out = Proc::spawn(
            run(&[&epoll, KERNEL_IP, &port.to_string(), mode]),
            "epoll_mix",
        )
        .success(LIMIT);
        for what in ["pipe: ok", "unix: ok", "udp: ok", "oneshot: ok"] {
            assert!(out.contains(what), "{mode}: {out}");
        }
        assert_eq!(join(echo, LIMIT), 2, "datagrams the kernel echoed ({mode})");
    }
    report(&format!("{}: every C example passed", test_name()));
}

#[test]
fn c_examples_under_ustack_run() {
    c_examples(false);
}

#[test]
fn c_examples_linked_to_ustack_h() {
    c_examples(true);
}

/// fork, dup/dup2/FD_CLOEXEC, fd reuse and EINTR (test programs in tools/tests/c).
#[test]
fn fork_and_descriptor_semantics() {
    if !can_run(&["cc"]) {
        return;
    }
    let tmp = TempDir::new("fds");
    let ns = namespace();
    let fork = compile(&tmp, "tools/tests/c/fork_child.c", false);
    let echo = kernel_echo(&ns, 7000, 1);
    let out = Proc::spawn(
        ustack_run(&ns, &[], &[&fork, KERNEL_IP, "7000"]),
        "fork_child",
    )
    .success(LIMIT);
    assert!(
        out.contains("child: EBADF on the inherited socket"),
        "{out}"
    );
    assert!(out.contains("parent: connection intact"), "{out}");
    assert_eq!(join(echo, LIMIT), 11);

    let fds = compile(&tmp, "tools/tests/c/descriptors.c", false);
    let echo = kernel_echo(&ns, 7001, 1);
    let echo2 = kernel_echo(&ns, 7002, 1);
    let out = Proc::spawn(
        ustack_run(&ns, &[], &[&fds, KERNEL_IP, "7001", "7002"]),
        "descriptors",
    )
    .success(LIMIT);
    for what in [
        "dup: ok",
        "dup2/cloexec: ok",
        "reuse: ok",
        "eintr: ok",
        "sa_restart: ok",
    ] {
        assert!(out.contains(what), "{out}");
    }
    assert_eq!(join(echo, LIMIT), 17);
    assert_eq!(join(echo2, LIMIT), 5);

    // A wait the library does not see (raw syscalls) still sees readability.
    let raw = compile(&tmp, "tools/tests/c/raw_epoll.c", false);
    let echo = kernel_udp_echo(&ns, 7003, 1);
    let out = Proc::spawn(
        ustack_run(&ns, &[], &[&raw, KERNEL_IP, "7003"]),
        "raw_epoll",
    )
    .success(LIMIT);
    assert!(out.contains("raw epoll: ok"), "{out}");
    assert_eq!(join(echo, LIMIT), 1);

    // IP_TTL and IP_TOS reach the IP header the kernel reads.
    let ipopt = compile(&tmp, "tools/tests/c/ip_options.c", false);
    let u = ns
        .run_in(|| UdpSocket::bind((KERNEL_IP, 7004)).expect("udp bind"))
        .expect("enter namespace");
    let reporter = peer(&ns, "ttl reporter", move || {
        u.set_read_timeout(Some(Duration::from_secs(30))).ok();
        ustack_tests::peer::set_int_option(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1);
        ustack_tests::peer::set_int_option(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
        let (_, from, ttl, tos) = ustack_tests::peer::recv_with_ttl_tos(&u);
        let answer = format!(
            "ttl={} tos={}",
            ttl.unwrap_or(-1),
            tos.map_or(-1, i32::from)
        );
        u.send_to(answer.as_bytes(), from).expect("answer");
        answer
    });
    let out = Proc::spawn(
        ustack_run(&ns, &[], &[&ipopt, KERNEL_IP, "7004"]),
        "ip_options",
    )
    .success(LIMIT);
    assert!(out.contains("getsockopt: ttl 9 tos 40"), "{out}");
    assert!(out.contains("kernel saw: ttl=9 tos=40"), "{out}");
    assert_eq!(join(reporter, LIMIT), "ttl=9 tos=40");
}

/// Serves `len` random bytes as /big.bin from a kernel HTTP server in `ns`; returns
/// the server, the directory and the SHA-256.
fn kernel_http(ns: &Netns, tag: &str, len: usize) -> (HttpFileServer, TempDir, String) {
    let dir = TempDir::new(tag);
    let sha = random_file(&dir.path("big.bin"), len, 0x5eed);
    let root = dir.0.clone();
    let server = ns
        .run_in(move || HttpFileServer::start(format!("{KERNEL_IP}:80").parse().unwrap(), &root))
        .expect("ns")
        .expect("kernel http server");
    (server, dir, sha)
}

fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).expect("read output"))
}

#[test]
fn curl_fetches_100_mb_from_the_kernel() {
    if !can_run(&["curl"]) {
        return;
    }
    let ns = namespace();
    let len = 100 * 1024 * 1024;
    let (_server, dir, sha) = kernel_http(&ns, "curl", len);
    let out = dir.s("out.bin");
    let url = format!("http://{KERNEL_IP}/big.bin");
    let start = Instant::now();
    Proc::spawn(
        ustack_run(&ns, &[], &["curl", "-sS", "-o", &out, &url]),
        "curl",
    )
    .success(Duration::from_secs(600));
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(std::fs::metadata(&out).expect("output").len(), len as u64);
    assert_eq!(
        sha256_file(Path::new(&out)),
        sha,
        "SHA-256 of what curl saved"
    );
    report(&format!(
        "curl under ustack run: {len} bytes in {secs:.2} s = {:.0} Mbit/s, SHA-256 equal",
        len as f64 * 8.0 / secs / 1e6
    ));
}

#[test]
fn curl_with_loss_is_byte_exact_and_the_capture_shows_the_drops() {
    if !can_run(&["curl"]) {
        return;
    }
    let ns = namespace();
    let len = 10 * 1024 * 1024;
    let (_server, dir, sha) = kernel_http(&ns, "loss", len);
    let out = dir.s("out.bin");
    let pcap = dir.s("x.pcapng");
    let url = format!("http://{KERNEL_IP}/big.bin");
    let flags = ["--loss", "0.05", "--seed", "7", "--pcap", &pcap];
    Proc::spawn(
        ustack_run(&ns, &flags, &["curl", "-sS", "-o", &out, &url]),
        "curl --loss",
    )
    .success(Duration::from_secs(600));
    assert_eq!(sha256_file(Path::new(&out)), sha, "SHA-256 with 5% loss");
    let dump = Command::new(BIN)
        .args(["dump", &pcap])
        .output()
        .expect("ustack dump");
    assert!(
        dump.status.success(),
        "ustack dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = String::from_utf8_lossy(&dump.stdout);
    let drops = text.lines().filter(|l| l.contains("dropped")).count();
    assert!(
        drops > 0,
        "ustack dump shows no dropped frame; first lines:\n{}",
        text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    report(&format!("curl --loss 0.05 --seed 7: {len} bytes byte-exact; ustack dump shows {drops} dropped frames"));
}

#[test]
fn python_http_server_on_ipv6_any_serves_the_kernel() {
    if !can_run(&["python3"]) {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("pyhttp");
    let len = 100 * 1024 * 1024;
    let sha = random_file(&dir.path("f.bin"), len, 0xfeed);
    // `--bind ::`: an AF_INET6 socket with IPV6_V6ONLY off (http.server's
    // DualStackServer), reached by the kernel's IPv4 client through a v4-mapped address.
    // (Without --bind it picks getaddrinfo's first passive address, which is 0.0.0.0
    // in a namespace without IPv6 addresses.)
    let mut p = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                "--bind",
                "::",
                "8000",
                "-d",
                &dir.s(""),
            ],
        ),
        "python3 -m http.server",
    );
    p.wait_line("Serving HTTP on :: port 8000", LIMIT);
    let start = Instant::now();
    let (resp, body) = join(
        peer(&ns, "http client", || {
            let mut body = Vec::new();
            let r = http_get(stack_addr(8000), "/f.bin", &mut body).expect("GET /f.bin");
            (r, body)
        }),
        Duration::from_secs(300),
    );
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(body.len(), len);
    assert_eq!(sha256(&body), sha, "SHA-256 of what http.server sent");
    p.kill();
    report(&format!(
        "python3 http.server under ustack run: {len} bytes in {secs:.2} s = {:.0} Mbit/s",
        len as f64 * 8.0 / secs / 1e6
    ));
}

/// Native AF_INET6 through the preload library: python's http.server on `::` (an
/// AF_INET6 socket, IPV6_V6ONLY off) under `ustack run --ip ... --ip fd00:77::2/64`
/// serves a kernel client over IPv6 (its peer a native IPv6 address) and one over
/// IPv4 (through a v4-mapped address), byte-exact.
#[test]
fn python_http_server_on_ipv6_any_serves_kernel_clients_over_ipv6_and_ipv4() {
    if !can_run(&["python3"]) {
        return;
    }
    let ns = Netns::new("ustack-run6").expect("create namespace");
    // `Netns` turns IPv6 off; on before the TAP exists, so that it inherits `default`.
    ns.run_in(|| {
        for which in ["all", "default"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                .expect("enable IPv6 in the namespace");
        }
    })
    .expect("enter namespace");
    ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
    ns.ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "tap0", "nodad"])
        .expect("ip -6 addr add");
    let dir = TempDir::new("pyhttp6");
    let len = 10 * 1024 * 1024;
    let sha = random_file(&dir.path("f.bin"), len, 0xf6);
    let mut p = Proc::spawn(
        ustack_run(
            &ns,
            &["--ip", "fd00:77::2/64"],
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                "--bind",
                "::",
                "8000",
                "-d",
                &dir.s(""),
            ],
        ),
        "python3 -m http.server (IPv6)",
    );
    p.wait_line("Serving HTTP on :: port 8000", LIMIT);
    let stack6: SocketAddr = "[fd00:77::2]:8000".parse().expect("addr");
    for (to, family) in [(stack6, "IPv6"), (stack_addr(8000), "IPv4")] {
        let (resp, body) = join(
            peer(&ns, "http client", move || {
                let mut body = Vec::new();
                let r = http_get(to, "/f.bin", &mut body).expect("GET /f.bin");
                (r, body)
            }),
            Duration::from_secs(300),
        );
        assert_eq!(resp.status, 200, "{family}: {}", resp.head);
        assert_eq!(body.len(), len, "{family}");
        assert_eq!(
            sha256(&body),
            sha,
            "{family}: SHA-256 of what http.server sent"
        );
    }
    p.kill();
    drop(p);
    // The other way: python's urllib, started with its stack (our address still
    // tentative), fetches from the kernel's server over IPv6.
    let root = dir.path("");
    let _server = ns
        .run_in(move || HttpFileServer::start("[fd00:77::1]:8001".parse().unwrap(), &root))
        .expect("enter namespace")
        .expect("kernel HTTP server");
    let script = "import urllib.request, hashlib\n\
                  d = urllib.request.urlopen('http://[fd00:77::1]:8001/f.bin', timeout=60).read()\n\
                  print(len(d), hashlib.sha256(d).hexdigest())";
    let mut c = Proc::spawn(
        ustack_run(&ns, &["--ip", "fd00:77::2/64"], &["python3", "-c", script]),
        "python3 urllib (IPv6)",
    );
    c.wait_line(&format!("{len} {sha}"), LIMIT);
}

#[test]
fn wget_fetches_from_the_kernel() {
    if !can_run(&["wget"]) {
        return;
    }
    let ns = namespace();
    let len = 100 * 1024 * 1024;
    let (_server, dir, sha) = kernel_http(&ns, "wget", len);
    let out = dir.s("out.bin");
    let url = format!("http://{KERNEL_IP}/big.bin");
    let start = Instant::now();
    Proc::spawn(
        ustack_run(&ns, &[], &["wget", "-q", "-O", &out, &url]),
        "wget",
    )
    .success(Duration::from_secs(600));
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        sha256_file(Path::new(&out)),
        sha,
        "SHA-256 of what wget saved"
    );
    report(&format!(
        "wget under ustack run: {len} bytes in {secs:.2} s = {:.0} Mbit/s, SHA-256 equal",
        len as f64 * 8.0 / secs / 1e6
    ));
}

/// An asyncio (epoll) TCP echo server, used by 100 kernel clients at once.
const ASYNCIO_ECHO: &str = "
import asyncio, sys
async def handle(r, w):
    while True:
        d = await r.read(65536)
        if not d:
            break
        w.write(d)
        await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(handle, '0.0.0.0', int(sys.argv[1]))
    print('serving', flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
";

#[test]
fn python_asyncio_echo_serves_100_kernel_clients_at_once() {
    if !can_run(&["python3"]) {
        return;
    }
    let ns = namespace();
    let mut p = Proc::spawn(
        ustack_run(&ns, &[], &["python3", "-u", "-c", ASYNCIO_ECHO, "7007"]),
        "asyncio echo",
    );
    p.wait_line("serving", LIMIT);
    let results = join(
        peer(&ns, "100 echo clients", || {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
            let threads: Vec<_> = (0..100u32)
                .map(|i| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let mut s = connect_retry(stack_addr(7007));
                        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
                        // Every client is connected before any sends.
                        barrier.wait();
                        let data: Vec<u8> = (0..20_000u32).map(|k| (k * 31 + i) as u8).collect();
                        s.write_all(&data).expect("send");
                        let mut back = vec![0u8; data.len()];
                        s.read_exact(&mut back).expect("echo");
                        back == data
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap_or(false))
                .filter(|ok| *ok)
                .count()
        }),
        Duration::from_secs(120),
    );
    assert_eq!(results, 100, "clients whose 20 kB came back intact");
    p.kill();
}

#[test]
fn nginx_serves_20_concurrent_kernel_clients() {
    if !can_run(&["nginx"]) {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("nginx");
    let len = 100 * 1024 * 1024;
    let sha = random_file(&dir.path("f.bin"), len, 0x9e);
    let conf = dir.path("nginx.conf");
    let d = dir.s("");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr warn;\n\
             pid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n sendfile on;\n tcp_nopush on;\n\
             client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             server {{ listen 8080; root {d}; }}\n}}\n"
        ),
    )
    .expect("nginx.conf");
    let _p = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &["nginx", "-c", &conf.to_string_lossy(), "-e", "stderr"],
        ),
        "nginx",
    );
    let start = Instant::now();
    let sums = join(
        peer(&ns, "20 http clients", || {
            let threads: Vec<_> = (0..20)
                .map(|_| {
                    std::thread::spawn(|| {
                        let end = Instant::now() + Duration::from_secs(10);
                        loop {
                            let mut h = Sha256::new();
                            match http_get(stack_addr(8080), "/f.bin", &mut h) {
                                Ok(r) if r.status == 200 => {
                                    return (
                                        r.body_len,
                                        h.finalize()
                                            .iter()
                                            .map(|b| format!("{b:02x}"))
                                            .collect::<String>(),
                                    )
                                }
                                Ok(r) => panic!("status {}", r.status),
                                // nginx may still be starting.
                                Err(_) if Instant::now() < end => {
                                    std::thread::sleep(Duration::from_millis(100))
                                }
                                Err(e) => panic!("GET: {e}"),
                            }
                        }
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("client"))
                .collect::<Vec<_>>()
        }),
        Duration::from_secs(600),
    );
    let secs = start.elapsed().as_secs_f64();
    for (n, s) in &sums {
        assert_eq!(*n, len as u64);
        assert_eq!(s, &sha, "SHA-256 of a body nginx sent");
    }
    report(&format!(
        "nginx under ustack run: 20 x {len} bytes in {secs:.2} s = {:.0} Mbit/s total, every SHA-256 equal",
        20.0 * len as f64 * 8.0 / secs / 1e6
    ));
}

#[test]
fn redis_server_under_ustack_run_and_redis_cli_against_the_kernel() {
    if !can_run(&["redis-server", "redis-benchmark", "redis-cli"]) {
        return;
    }
    let ns = namespace();
    let mut p = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &[
                "redis-server",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
        ),
        "redis-server",
    );
    p.wait_line("Ready to accept connections", LIMIT);
    let out = ns
        .command(&[
            "redis-benchmark",
            "-h",
            STACK_IP,
            "-q",
            "-n",
            "100000",
            "-t",
            "set,get",
        ])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "redis-benchmark: {text}");
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("requests per second"))
        .collect();
    assert_eq!(summary.len(), 2, "SET and GET summaries: {text}");
    report(&format!(
        "redis-benchmark -n 100000 against redis-server under ustack run: {}",
        summary.join("; ")
    ));
    p.kill();

    // redis-cli on the stack, redis-server on the kernel.
    let mut server = Proc::spawn(
        ns.command(&[
            "redis-server",
            "--bind",
            KERNEL_IP,
            "--port",
            "6380",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]),
        "kernel redis-server",
    );
    server.wait_line("Ready to accept connections", LIMIT);
    let set = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &[
                "redis-cli",
                "-h",
                KERNEL_IP,
                "-p",
                "6380",
                "set",
                "k",
                "ustack",
            ],
        ),
        "redis-cli set",
    )
    .success(LIMIT);
    assert_eq!(set.trim(), "OK");
    let get = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &["redis-cli", "-h", KERNEL_IP, "-p", "6380", "get", "k"],
        ),
        "redis-cli get",
    )
    .success(LIMIT);
    assert_eq!(get.trim(), "ustack");
}

/// The receiver's Mbit/s from `iperf3 -J` output.
fn iperf_mbits(json: &str) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("iperf3 -J: {e}: {json}"));
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("sum_received")
        / 1e6
}

#[test]
fn iperf3_both_ways() {
    if !can_run(&["iperf3"]) {
        return;
    }
    let ns = namespace();
    // ustack client -> kernel server.
    let mut server = Proc::spawn(
        ns.command(&[
            "iperf3",
            "--forceflush",
            "-s",
            "-1",
            "-B",
            KERNEL_IP,
            "-p",
            "5201",
        ]),
        "kernel iperf3 -s",
    );
    server.wait_line("Server listening", LIMIT);
    let out = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &["iperf3", "-J", "-c", KERNEL_IP, "-p", "5201", "-t", "3"],
        ),
        "iperf3 -c on ustack",
    )
    .success(LIMIT);
    let up = iperf_mbits(&out);
    server.finish(LIMIT);
    // kernel client -> ustack server.
    let mut server = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &["iperf3", "--forceflush", "-s", "-1", "-p", "5202"],
        ),
        "iperf3 -s on ustack",
    );
    server.wait_line("Server listening", LIMIT);
    let out = ns
        .command(&["iperf3", "-J", "-c", STACK_IP, "-p", "5202", "-t", "3"])
        .output()
        .expect("kernel iperf3 -c");
    assert!(
        out.status.success(),
        "kernel iperf3 -c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let down = iperf_mbits(&String::from_utf8_lossy(&out.stdout));
    let _ = server.success(LIMIT);
    assert!(up > 0.0 && down > 0.0);
    report(&format!("iperf3 3 s: ustack client -> kernel {up:.0} Mbit/s; kernel client -> ustack server {down:.0} Mbit/s"));
}

/// Answers every A query with 10.77.0.53 (one record, name compressed), `count` times.
fn dns_responder(u: UdpSocket, count: usize) -> usize {
    u.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut answered = 0;
    let mut q = [0u8; 512];
    while answered < count {
        let Ok((n, from)) = u.recv_from(&mut q) else {
            break;
        };
        if n < 12 {
            continue;
        }
        // The question: labels up to the root, then QTYPE and QCLASS.
        let mut i = 12;
        while i < n && q[i] != 0 {
            i += 1 + q[i] as usize;
        }
        let end = i + 5;
        if end > n {
            continue;
        }
        let mut r = Vec::with_capacity(end + 16);
        r.extend_from_slice(&q[..2]);
        r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend_from_slice(&q[12..end]);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 53]);
        let _ = u.send_to(&r, from);
        answered += 1;
    }
    answered
}

#[test]
fn dig_asks_a_kernel_dns_responder() {
    if !can_run(&["dig"]) {
        return;
    }
    let ns = namespace();
    let u = ns
        .run_in(|| UdpSocket::bind((KERNEL_IP, 53)).expect("bind 53"))
        .expect("ns");
    let responder = peer(&ns, "dns responder", move || dns_responder(u, 1));
    let out = Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &[
                "dig",
                "+tries=1",
                "+time=5",
                "+short",
                &format!("@{KERNEL_IP}"),
                "host.ustack.test",
                "A",
            ],
        ),
        "dig",
    )
    .success(LIMIT);
    assert_eq!(out.trim(), "10.77.0.53", "dig's answer");
    assert_eq!(join(responder, LIMIT), 1);
}

/// Programs the loader would not load the library into are refused with one line and
/// exit status 1, before anything runs (no namespace needed: nothing is opened).
#[test]
fn run_refuses_static_and_setuid_programs() {
    let tmp = TempDir::new("refuse");
    let run = |program: &str| {
        Command::new(BIN)
            .args(["--tap", "tap0", "--ip", STACK_CIDR, "run", "--", program])
            .env("USTACK_PRELOAD_LIB", "/nonexistent-is-not-reached")
            .output()
            .expect("run ustack")
    };
    // A static-pie binary on Debian; the ELF check is unit-tested in `cmd::run` too.
    if Path::new("/sbin/ldconfig").exists() {
        let o = run("/sbin/ldconfig");
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("statically linked"), "{err}");
    }
    let suid = tmp.path("suid-true");
    std::fs::copy("/bin/true", &suid).expect("copy /bin/true");
    let mut perm = std::fs::metadata(&suid).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o4755);
    std::fs::set_permissions(&suid, perm).expect("chmod u+s");
    let o = run(&suid.to_string_lossy());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("set-user-ID"), "{err}");
}

#[test]
fn trace_and_stats_reach_the_program() {
    if !can_run(&["curl"]) {
        return;
    }
    let ns = namespace();
    let (_server, dir, sha) = kernel_http(&ns, "trace", 1024 * 1024);
    let out = dir.s("out.bin");
    let trace_file = dir.s("tcp.jsonl");
    let url = format!("http://{KERNEL_IP}/big.bin");
    let flags = ["--trace", "--stats", "--trace-file", &trace_file];
    let (code, _, err) = Proc::spawn(
        ustack_run(&ns, &flags, &["curl", "-sS", "-o", &out, &url]),
        "curl --trace --stats",
    )
    .finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha256_file(Path::new(&out)), sha);
    assert!(
        err.contains("SYN-SENT -> ESTABLISHED"),
        "no trace line on stderr:\n{err}"
    );
    assert!(
        err.contains("interface counters") && err.contains("tcp.rx_segments"),
        "no stats report:\n{err}"
    );
    // The program's stack is a host loop like every command's: its counters are there.
    assert!(
        err.contains("\nhost loop: ") && err.contains(" driver rounds, "),
        "no host loop line in the report:\n{err}"
    );
    let lines = std::fs::read_to_string(&trace_file).expect("trace file");
    assert!(
        lines.lines().count() > 1 && lines.contains(r#""event":"state""#),
        "{lines}"
    );
}

/// A shell under `ustack run` never takes the link (it opens no socket); the program it
/// execs does. A second program while the first holds the TAP gets one stderr line and
/// EBUSY on its sockets.
#[test]
fn exec_attaches_lazily_and_a_busy_link_fails_clearly() {
    if !can_run(&["curl", "cc"]) {
        return;
    }
    let ns = namespace();
    let (_server, dir, sha) = kernel_http(&ns, "exec", 1024 * 1024);
    let out = dir.s("out.bin");
    let url = format!("http://{KERNEL_IP}/big.bin");
    let script = format!("curl -sS -o {out} {url} && echo fetched");
    let got =
        Proc::spawn(ustack_run(&ns, &[], &["sh", "-c", &script]), "sh -c curl").success(LIMIT);
    assert!(got.contains("fetched"), "{got}");
    assert_eq!(sha256_file(Path::new(&out)), sha);

    // `--netns NAME` enters the namespace before the exec (started from outside it).
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--netns",
        ns.name(),
        "--tap",
        "tap0",
        "--ip",
        STACK_CIDR,
        "run",
        "--",
    ])
    .args(["curl", "-sS", "-o", &out, &url])
    .env("USTACK_PRELOAD_LIB", preload_lib());
    Proc::spawn(cmd, "ustack --netns run curl").success(LIMIT);
    assert_eq!(sha256_file(Path::new(&out)), sha, "fetched with --netns");

    // tcp_server holds the TAP while it waits for a client.
    let server = compile(&dir, "examples/c/tcp_server.c", false);
    let mut holder = Proc::spawn(ustack_run(&ns, &[], &[&server, "8080", "1"]), "tcp_server");
    holder.wait_line("listening on 8080", LIMIT);
    let (code, _, err) = Proc::spawn(
        ustack_run(&ns, &[], &["curl", "-sS", "-o", &out, &url]),
        "second curl",
    )
    .finish(LIMIT);
    assert_ne!(code, 0, "curl cannot have reached the server: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ustack preload:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line from the library: {err}");
    assert!(
        lines[0].contains("cannot attach to TAP tap0") && lines[0].contains("errno 16"),
        "{err}"
    );
    holder.kill();
}

/// The stack has no loopback: a socket bound or connected to 127.0.0.0/8 (or `::1`)
/// before any other use moves to the kernel under the same number, options included.
#[test]
fn loopback_goes_to_the_kernel() {
    if !can_run(&["curl", "python3"]) {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("loop");
    let sha = random_file(&dir.path("f.bin"), 1024 * 1024, 0x10);
    let root = dir.0.clone();
    let _server = ns
        .run_in(move || HttpFileServer::start("127.0.0.1:8088".parse().unwrap(), &root))
        .expect("ns")
        .expect("kernel http server on loopback");
    let out = dir.s("out.bin");
    Proc::spawn(
        ustack_run(
            &ns,
            &[],
            &["curl", "-sS", "-o", &out, "http://127.0.0.1:8088/f.bin"],
        ),
        "curl to 127.0.0.1",
    )
    .success(LIMIT);
    assert_eq!(sha256_file(Path::new(&out)), sha);
    // A server on 127.0.0.1 and a client of it in one program under ustack run, with
    // an option set before bind; and an ordinary socket on the stack next to them.
    let script = "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0)); s.listen()
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
c.sendall(b'over lo'); print(a.recv(16).decode())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 0))
print('stack', u.getsockname()[0])
";
    let got = Proc::spawn(
        ustack_run(&ns, &[], &["python3", "-c", script]),
        "python loopback",
    )
    .success(LIMIT);
    assert!(
        got.contains("over lo") && got.contains("stack 0.0.0.0"),
        "{got}"
    );
}

/// `--raw IFACE`: the library's stack on an AF_PACKET socket (a veth end without an
/// address) instead of a TAP.
#[test]
fn run_on_an_af_packet_link() {
    if !can_run(&["curl"]) {
        return;
    }
    let ns = Netns::new("ustack-run-raw").expect("create namespace");
    ns.add_veth("veth0", "10.77.1.1/24", "veth1")
        .expect("veth pair");
    let dir = TempDir::new("raw");
    let sha = random_file(&dir.path("f.bin"), 10 * 1024 * 1024, 0x7a);
    let root = dir.0.clone();
    let _server = ns
        .run_in(move || HttpFileServer::start("10.77.1.1:80".parse().unwrap(), &root))
        .expect("ns")
        .expect("kernel http server");
    let out = dir.s("out.bin");
    let mut cmd = ns.command(&[BIN, "--raw", "veth1", "--ip", "10.77.1.2/24", "run", "--"]);
    cmd.args(["curl", "-sS", "-o", &out, "http://10.77.1.1/f.bin"])
        .env("USTACK_PRELOAD_LIB", preload_lib());
    Proc::spawn(cmd, "curl on AF_PACKET").success(LIMIT);
    assert_eq!(sha256_file(Path::new(&out)), sha);
}

/// A thread-per-connection echo server (blocking calls on several threads at once)
/// under `ustack run`, with 8 kernel clients sending 1 MB each at the same time.
#[test]
fn threads_block_independently() {
    if !can_run(&["cc"]) {
        return;
    }
    let ns = namespace();
    let tmp = TempDir::new("threads");
    let exe = compile(&tmp, "tools/tests/c/threads.c", false);
    let mut p = Proc::spawn(ustack_run(&ns, &[], &[&exe, "8090", "8"]), "threads");
    p.wait_line("listening", LIMIT);
    let ok = join(
        peer(&ns, "8 clients", || {
            let threads: Vec<_> = (0..8u8)
                .map(|i| {
                    std::thread::spawn(move || {
                        let mut s = connect_retry(stack_addr(8090));
                        let data: Vec<u8> = (0..1_000_000u32).map(|k| (k as u8) ^ i).collect();
                        let w = s.try_clone().expect("clone");
                        let sent = data.clone();
                        let writer = std::thread::spawn(move || {
                            let mut w = w;
                            w.write_all(&sent).expect("send");
                            w.shutdown(std::net::Shutdown::Write).expect("shutdown");
                        });
                        let mut back = Vec::new();
                        s.read_to_end(&mut back).expect("read");
                        writer.join().expect("writer");
                        back == data
                    })
                })
                .collect();
            threads
                .into_iter()
                .filter_map(|t| t.join().ok())
                .filter(|b| *b)
                .count()
        }),
        Duration::from_secs(120),
    );
    assert_eq!(ok, 8, "clients whose 1 MB came back intact");
    let out = p.success(LIMIT);
    assert!(out.contains("threads echoed 8000000 bytes"), "{out}");
}

/// A blocking Python server under `ustack run` with `USTACK_BUSY_POLL`: new sockets
/// start with that SO_BUSY_POLL, setsockopt/getsockopt(SO_BUSY_POLL) go to the stack,
/// and its busy-polling accepts and reads serve a kernel client request after request.
const BUSY_POLL_RR: &str = "
import socket, sys
SO_BUSY_POLL = 46
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', int(sys.argv[1])))
l.listen(8)
first = l.getsockopt(socket.SOL_SOCKET, SO_BUSY_POLL)
l.setsockopt(socket.SOL_SOCKET, SO_BUSY_POLL, 200)
print('busy', first, l.getsockopt(socket.SOL_SOCKET, SO_BUSY_POLL), flush=True)
try:
    l.setsockopt(socket.SOL_SOCKET, SO_BUSY_POLL, -1)
    print('negative accepted', flush=True)
except OSError as e:
    print('negative', e.errno, flush=True)
c, _ = l.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print('accepted', c.getsockopt(socket.SOL_SOCKET, SO_BUSY_POLL), flush=True)
n = 0
while True:
    d = c.recv(64)
    if not d:
        break
    c.sendall(bytes(x for b in d for x in (b, 255 - b)))
    n += len(d)
print('served', n, flush=True)
";

#[test]
fn busy_poll_under_ustack_run_serves_request_response() {
    if !can_run(&["python3"]) {
        return;
    }
    const N: u32 = 500;
    let ns = namespace();
    let mut cmd = ustack_run(&ns, &[], &["python3", "-u", "-c", BUSY_POLL_RR, "7010"]);
    cmd.env("USTACK_BUSY_POLL", "50");
    let mut p = Proc::spawn(cmd, "busy-polling python server");
    p.wait_line("busy 50 200", LIMIT);
    p.wait_line(&format!("negative {}", libc::EINVAL), LIMIT);
    let ok = join(
        peer(&ns, "request/response client", || {
            let mut s = connect_retry(stack_addr(7010));
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(Duration::from_secs(60))).ok();
            let mut two = [0u8; 2];
            (0..N)
                .filter(|&i| {
                    let b = i as u8;
                    s.write_all(&[b]).is_ok()
                        && s.read_exact(&mut two).is_ok()
                        && two == [b, 255 - b]
                })
                .count() as u32
        }),
        Duration::from_secs(120),
    );
    assert_eq!(ok, N, "replies that came back right");
    let out = p.success(LIMIT);
    assert!(
        out.contains("accepted 200"),
        "inherited by the accepted socket: {out}"
    );
    assert!(out.contains(&format!("served {N}")), "{out}");
}
