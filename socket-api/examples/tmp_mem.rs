use std::io::Write;
use ustack_socket::{NetStack, TcpListener, TcpStream};
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status").unwrap().lines()
        .find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
}
fn main() {
    let (a, b) = NetStack::builder().ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 4096).unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:80").unwrap();
    b.listen(l.fd(), 1024).unwrap();
    let n = 3000;
    // churn first, like the conn-rate figure before the concurrent one
    let t = std::time::Instant::now();
    let l2 = l.try_clone().unwrap();
    let srv = std::thread::spawn(move || {
        for _ in 0..2000 {
            let (mut s, _) = l2.accept().unwrap();
            s.write_all(b"hello\n").unwrap();
        }
    });
    for _ in 0..2000 {
        let mut c = TcpStream::connect(&a, ("10.0.0.2", 80)).unwrap();
        let mut buf = [0u8; 6];
        use std::io::Read;
        c.read_exact(&mut buf).unwrap();
    }
    srv.join().unwrap();
    eprintln!("churn {:?} a {:?} b {:?}", t.elapsed(), a.driver_stats(), b.driver_stats());
    let a2 = a.clone();
    let r0 = rss();
    let client = std::thread::spawn(move || {
        let mut v = Vec::new();
        for _ in 0..n { v.push(TcpStream::connect(&a2, ("10.0.0.2", 80)).unwrap()); }
        v
    });
    let mut held = Vec::new();
    for _ in 0..n {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"+").unwrap();
        held.push(s);
    }
    let r1 = rss();
    let _c = client.join().unwrap();
    eprintln!("MEM per conn {} KiB", (r1 - r0) as f64 / n as f64);
}
