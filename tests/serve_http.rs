//! `gpu-nn serve` driven with real requests over TCP: a page folder made for the test (with a
//! symlink out of it, a test folder and node_modules beside the page's own files) and four data
//! files. Only the page's own files and the data are served, under no spelling of a path but
//! their own (Windows' forms included); a wrong `Host` is refused; every answer says nosniff;
//! a bare `GET`, a POST and an oversized header get 400, 405 and 431; a slow client does not
//! hold up a fast one and is cut off; hundreds of silent connections are closed and the server
//! still answers. Each test waits on what it reads, never on a sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
mod common;

/// A running `gpu-nn serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    secret: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's folder and the data files, in a temporary directory.
fn site(dir: &Path) -> (PathBuf, PathBuf, String) {
    let web = dir.join("web");
    for d in ["pkg", "test", "node_modules/x"] {
        std::fs::create_dir_all(web.join(d)).unwrap();
    }
    std::fs::write(web.join("index.html"), "<!doctype html><title>gpu-nn</title>").unwrap();
    std::fs::write(web.join("app.js"), "export {};").unwrap();
    std::fs::write(web.join("pkg/gpu_nn_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(web.join("test/browser-check.mjs"), "test").unwrap();
    std::fs::write(web.join("node_modules/x/index.js"), "module").unwrap();
    std::fs::write(web.join(".gitignore"), "pkg").unwrap();
    let secret = "the-secret-outside-the-page".to_string();
    std::fs::write(dir.join("secret.txt"), &secret).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("secret.txt"), web.join("link.js")).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in gpu_nn::data::sources::FILES {
        std::fs::write(data.join(format!("{f}.gz")), format!("bytes of {f}")).unwrap();
    }
    (web, data, secret)
}

/// Starts the server on a free port and waits for the line saying where it listens.
fn start(extra: &[&str]) -> Server {
    start_with_files(None, extra)
}

/// `start`, with at most `files` open file handles (`ulimit -n`) where given.
fn start_with_files(files: Option<u32>, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (web, data, secret) = site(dir.path());
    let mut args = vec!["serve", "--port", "0", "--web", web.to_str().unwrap(), "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut command = common::command(&args);
    if let Some(n) = files {
        let bin = command.get_program().to_owned();
        command = std::process::Command::new("sh");
        command.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(bin).args(&args).env("GPU_NN_OFFLINE", "1");
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    Server { child, addr, _dir: dir, secret }
}

/// One raw request; the whole answer (the server closes after it: `Connection: close`).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // the server may refuse and close before it has read everything (an oversized header)
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", addr.port()).as_bytes())
}

fn status(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.split("\r\n\r\n").next()?.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

#[test]
fn the_page_and_the_data_are_served_and_nothing_else() {
    let s = start(&[]);
    let page = get(s.addr, "/");
    assert_eq!(status(&page), 200, "{page}");
    assert!(page.ends_with("<!doctype html><title>gpu-nn</title>"), "{page}");
    assert!(header(&page, "content-type").unwrap().starts_with("text/html"), "{page}");
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"), "{page}");
    let wasm = get(s.addr, "/pkg/gpu_nn_bg.wasm");
    assert_eq!((status(&wasm), header(&wasm, "content-type")), (200, Some("application/wasm")), "{wasm}");
    let labels = get(s.addr, "/data/train-labels-idx1-ubyte");
    assert!(status(&labels) == 200 && labels.ends_with("bytes of train-labels-idx1-ubyte"), "{labels}");
    assert_eq!(status(&get(s.addr, "/data/t10k-images-idx3-ubyte.gz")), 200);
    let head = raw(s.addr, format!("HEAD /app.js HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", s.addr.port()).as_bytes());
    assert_eq!((status(&head), header(&head, "content-length")), (200, Some("10")), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "a HEAD answer has no body: {head}");

    for path in [
        "/../secret.txt",
        "/pkg/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/link.js",
        "/test/browser-check.mjs",
        "/node_modules/x/index.js",
        "/.gitignore",
        "/data/passwd",
        "/data/../../secret.txt",
        "//etc/passwd",
        "/C:/Windows/win.ini",
        "/c:secret.txt",
        "/C:%5Csecret.txt",
        "/a\\..\\..\\secret.txt",
        "/%5C%5Chost%5Cshare%5Csecret.txt",
        "/\\\\host\\share\\secret.txt",
        "/index.html%00.js",
        "/app.js::$DATA",
    ] {
        let a = get(s.addr, path);
        let code = status(&a);
        assert!(code == 404 || code == 400, "{path}: {a}");
        assert!(!a.contains(&s.secret), "{path} reached the secret: {a}");
    }
}

#[test]
fn wrong_hosts_methods_and_malformed_requests_are_refused() {
    let s = start(&[]);
    let port = s.addr.port();
    // a page of another origin, DNS-rebound to 127.0.0.1, sends its own name
    let rebound = raw(s.addr, format!("GET / HTTP/1.1\r\nHost: attacker.example:{port}\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(status(&rebound), 421, "{rebound}");
    assert!(!rebound.contains("<title>gpu-nn"), "{rebound}");
    let other_port = raw(s.addr, format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", port.wrapping_add(1)).as_bytes());
    assert_eq!(status(&other_port), 421, "{other_port}");
    assert_eq!(status(&raw(s.addr, format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n").as_bytes())), 200);
    assert_eq!(status(&raw(s.addr, b"GET / HTTP/1.0\r\n\r\n")), 400, "no Host at all");
    let post = raw(s.addr, format!("POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!((status(&post), header(&post, "allow")), (405, Some("GET, HEAD")), "{post}");
    assert_eq!(status(&raw(s.addr, b"GET\r\n\r\n")), 400, "a bare GET");
    // a 64 KiB header: refused, and the server goes on
    let big = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: {}\r\n\r\n", "a".repeat(64 << 10));
    let a = raw(s.addr, big.as_bytes());
    assert!(a.is_empty() || status(&a) == 431, "{}", &a[..a.len().min(200)]);
    assert_eq!(status(&get(s.addr, "/")), 200);
}

/// A client that sends its request a byte at a time does not hold up a fast one, and is cut
/// off after the idle timeout.
#[test]
fn a_slow_client_beside_a_fast_one() {
    let s = start(&["--idle-timeout", "1"]);
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(b"GET / HT").unwrap();
    let fast = get(s.addr, "/");
    assert_eq!(status(&fast), 200, "{fast}");
    // the slow one keeps dribbling; the server closes it (a read sees the end) within a few
    // idle timeouts, well before its request would be complete
    slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        assert!(started.elapsed() < Duration::from_secs(20), "the slow client was never cut off");
        if slow.write_all(b"T").is_err() {
            break true;
        }
        match slow.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => break !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => break true,
        }
    };
    assert!(closed, "the slow client got an answer");
}

/// Hundreds of connections that never send a byte: the server closes every one after its idle
/// timeout, holds a bounded number of threads meanwhile, and answers a real request.
#[test]
fn hundreds_of_silent_connections() {
    let s = start(&["--idle-timeout", "1", "--max-connections", "64"]);
    let silent: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let threads = std::fs::read_to_string(format!("/proc/{}/status", s.child.id()))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok()));
    if let Some(n) = threads {
        assert!(n <= 32, "{n} threads for 300 connections");
    }
    let a = get(s.addr, "/");
    assert_eq!(status(&a), 200, "{a}");
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 16];
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a silent connection was answered instead of closed");
    }
}

/// CPU seconds a process has used (Linux: /proc/PID/stat, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Out of file handles (`ulimit -n 48`, 120 silent connections): the server backs off instead
/// of spinning on `accept`, and answers once the silent ones are closed.
#[cfg(target_os = "linux")]
#[test]
fn out_of_file_handles_it_waits_and_then_answers() {
    let s = start_with_files(Some(48), &["--idle-timeout", "1"]);
    let pid = s.child.id();
    let before = cpu_seconds(pid);
    let silent: Vec<TcpStream> = (0..120).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let a = get(s.addr, "/");
    assert_eq!(status(&a), 200, "{a}");
    let spent = cpu_seconds(pid) - before;
    assert!(spent < 0.5, "the server spent {spent:.2} CPU seconds while out of file handles: it spins");
    drop(silent);
}

/// A folder of runs for `serve --runs`: one run (`alpha`, two of its three epochs written and
/// its lock held by `lock` while it "trains"), one whose metrics.csv is over the size the
/// dashboard reads, and what must never be listed or reached: a hidden folder, a symlink to a
/// run outside, a file beside the run's that is not one of its pictures.
fn runs_folder(dir: &Path) -> PathBuf {
    let runs = dir.join("runs");
    let alpha = runs.join("alpha");
    std::fs::create_dir_all(&alpha).unwrap();
    std::fs::write(alpha.join("config.json"), r#"{"training": {"epochs": 3}}"#).unwrap();
    std::fs::write(
        alpha.join("metrics.csv"),
        "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,samples_per_sec,step,lr\n\
         1,0.5,0.8,,,0.4,0.85,1.5,1000.0,100,0.1\n\
         2,0.25,0.9,,,0.2,0.925,1.5,1000.0,200,0.1\n",
    )
    .unwrap();
    std::fs::write(alpha.join("confusion.csv"), "true_class,pred_a,pred_b\na,5,1\nb,2,7\n").unwrap();
    std::fs::write(alpha.join("curves.png"), "PNG-of-alpha").unwrap();
    std::fs::write(alpha.join("notes.txt"), "the-secret-beside-a-run").unwrap();
    let big = runs.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("config.json"), "{}").unwrap();
    std::fs::write(big.join("metrics.csv"), vec![b'1'; 17 << 20]).unwrap();
    for hidden in [runs.join(".hidden"), dir.join("elsewhere")] {
        std::fs::create_dir_all(&hidden).unwrap();
        std::fs::write(hidden.join("config.json"), "{}").unwrap();
        std::fs::write(hidden.join("curves.png"), "the-secret-of-another-run").unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("elsewhere"), runs.join("outside")).unwrap();
    runs
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            out.extend(snapshot(&e.path()));
        } else {
            out.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

fn json_body(answer: &str) -> serde_json::Value {
    assert_eq!(status(answer), 200, "{answer}");
    assert_eq!(header(answer, "content-type"), Some("application/json"), "{answer}");
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// `serve --runs DIR`: the dashboard's API lists the runs under DIR and answers with their
/// files' contents; ids and picture names the scan did not find, however spelt, get 404 and
/// nothing of what lies beside or outside; a held run lock reads as training; a file over the
/// size limit makes its run unreadable, not the server; nothing under DIR is written.
#[test]
fn the_dashboard_reads_the_runs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (web, data, _) = site(dir.path());
    let runs = runs_folder(dir.path());
    let before = snapshot(&runs);
    let args = ["serve", "--port", "0", "--web", web.to_str().unwrap(), "--data", data.to_str().unwrap(), "--runs", runs.to_str().unwrap()];
    let mut child = common::command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: SocketAddr = line.split_whitespace().nth(1).unwrap().trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let s = Server { child, addr, _dir: dir, secret: String::new() };

    let list = json_body(&get(s.addr, "/api/runs"));
    let ids: Vec<&str> = list["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alpha", "big"], "{list}");
    let alpha = &list["runs"][0];
    assert_eq!((alpha["status"].as_str(), alpha["epochs"].as_u64(), alpha["epochs_done"].as_u64()), (Some("stopped"), Some(3), Some(2)), "{alpha}");
    assert_eq!(alpha["best_test_acc"], 0.925);
    assert_eq!(list["runs"][1]["status"], "unreadable", "{list}");
    assert!(list["runs"][1]["error"].as_str().unwrap().contains("larger than"), "{list}");

    let run = json_body(&get(s.addr, "/api/run?id=alpha"));
    assert_eq!(run["metrics"][1]["test_acc"], 0.925, "{run}");
    assert_eq!(run["metrics"][1]["step"], 200, "{run}");
    assert!(run["metrics"][0]["val_acc"].is_null(), "{run}");
    assert_eq!(run["confusion"], serde_json::json!({"labels": ["a", "b"], "matrix": [[5, 1], [2, 7]]}));
    assert_eq!(run["pictures"], serde_json::json!(["curves.png"]));
    let picture = get(s.addr, "/api/picture?id=alpha&name=curves.png");
    assert!(status(&picture) == 200 && picture.ends_with("PNG-of-alpha"), "{picture}");

    // a run's lock held by a process: it is training
    let lock = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(runs.join("alpha/.gpu-nn.lock")).unwrap();
    lock.lock().unwrap();
    assert_eq!(json_body(&get(s.addr, "/api/run?id=alpha"))["status"], "training");
    lock.unlock().unwrap();
    assert_eq!(json_body(&get(s.addr, "/api/run?id=alpha"))["status"], "stopped");
    drop(lock);
    std::fs::remove_file(runs.join("alpha/.gpu-nn.lock")).unwrap();

    for path in [
        "/api/run?id=../elsewhere",
        "/api/run?id=..%2Felsewhere",
        "/api/run?id=outside",
        "/api/run?id=.hidden",
        "/api/run?id=alpha/..",
        "/api/run?id=%2Fetc",
        "/api/run?id=ALPHA",
        "/api/run?id=alpha%00",
        "/api/run",
        "/api/picture?id=alpha&name=notes.txt",
        "/api/picture?id=alpha&name=config.json",
        "/api/picture?id=alpha&name=..%2F.hidden%2Fcurves.png",
        "/api/picture?id=outside&name=curves.png",
        "/api/picture?id=.hidden&name=curves.png",
        "/api/picture?id=alpha&name=%2Fetc%2Fpasswd",
        "/api/picture?id=alpha&name=curves.png%00",
        "/api/sweep?id=alpha",
        "/api/nothing",
        "/api/../secret.txt",
    ] {
        let a = get(s.addr, path);
        let code = status(&a);
        assert!(code == 404 || code == 400, "{path}: {a}");
        assert!(!a.contains("the-secret"), "{path} reached what lies beside or outside the runs: {a}");
    }
    let port = s.addr.port();
    let post = raw(s.addr, format!("POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(status(&post), 405, "{post}");
    let rebound = raw(s.addr, format!("GET /api/runs HTTP/1.1\r\nHost: attacker.example:{port}\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(status(&rebound), 421, "{rebound}");
    assert_eq!(snapshot(&runs), before, "the server wrote under --runs");
}

/// Without `--runs` the dashboard's API is not there.
#[test]
fn without_runs_there_is_no_dashboard() {
    let s = start(&[]);
    let a = get(s.addr, "/api/runs");
    assert_eq!(status(&a), 404, "{a}");
}
