//! `demotape review serve` in a real browser: Debian's chromium driven by playwright-core
//! (`tests/js/review_ui.mjs`) opens the queue, plays an episode, drags a boundary, sets the
//! outcome, accepts and moves on; the review history on disk and `demotape review show` must
//! say exactly that. Then what the server must refuse: a path outside its directory, and,
//! listening beyond loopback, a request without the token.

use demotape_e2e::{bin, demotape, node_dir, record_sim};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running server and its printed address.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(bin("demotape"))
        .args(["review", "serve"])
        .arg(dir)
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting demotape review serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("serving ")
        .unwrap_or_else(|| panic!("no address printed: {line:?}"))
        .to_string();
    Server { child, url }
}

/// A bare HTTP/1.1 GET: (status, body).
fn get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

#[test]
fn a_reviewer_plays_drags_sets_and_accepts_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    record_sim(dir.path(), "small", 31, 0, 3, 6.0);
    let (code, _, err) = demotape(&["annotate"], &[dir.path()]);
    assert_eq!(code, 0, "{err}");
    let server = serve(dir.path(), &["--author", "ana"]);

    let shots = std::env::var_os("DEMOTAPE_SCREENSHOTS");
    let mut node = Command::new("node");
    node.arg(node_dir().join("review_ui.mjs")).arg(&server.url);
    if let Some(s) = &shots {
        node.arg(s);
    }
    let out = node.output().expect("running node");
    assert!(
        out.status.success(),
        "review_ui.mjs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{r}");
    assert_eq!(r["queue_rows"], 3, "{r}");
    assert_eq!(r["page_errors"].as_array().unwrap().len(), 0, "{r}");
    assert!(r["cameras"].as_u64().unwrap() >= 3, "{r}");
    assert!(
        r["clock_after_play"].as_f64().unwrap() > 0.5,
        "playing moves the clock: {r}"
    );
    assert!(r["frame_after_play"].as_u64().unwrap() > 10, "{r}");
    let set = r["set_outcome"].as_str().unwrap();
    assert_eq!(r["outcome"], set);
    assert_eq!(r["source"], "(human)");
    assert_ne!(
        r["episode_1"], r["episode_2"],
        "accept opened the next episode"
    );
    assert_eq!(r["reviewed_first"], 3);
    // undo on the second episode: changed, then back
    assert_ne!(r["changed_2"], r["outcome_2_before"], "{r}");
    assert_eq!(r["outcome_2_after_undo"], r["outcome_2_before"], "{r}");
    assert_eq!(r["escape_status"], 403, "{r}");

    // what is on disk: the same history `review correct` writes
    let episode_1 = r["episode_1"].as_str().unwrap().trim_end_matches(".mcap");
    let sidecar = dir
        .path()
        .join("sim-robot")
        .join(format!("{episode_1}.annotations.json"));
    let review: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sidecar.with_file_name(format!("{episode_1}.review.json")))
            .unwrap(),
    )
    .unwrap();
    let h = review["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{review}");
    let moved = r["moved"].as_str().unwrap();
    assert!(h[0]["moves"][moved].is_number(), "{review}");
    assert_eq!(h[1]["outcome"], set);
    assert_eq!(h[2]["outcome"], set);
    assert_eq!(h[2]["reason"], "accepted");
    assert!(h.iter().all(|c| c["author"] == "ana"));
    let (code, show, err) = demotape(&["review", "show", "--json"], &[&sidecar]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show["effective"]["outcome"], set, "{show}");
    assert_eq!(show["effective"]["source"], "human");
    let auto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    let t_new = h[0]["moves"][moved].as_f64().unwrap();
    let phases = show["effective"]["phases"].as_array().unwrap();
    assert!(
        phases
            .iter()
            .any(|p| (p[1].as_f64().unwrap() - t_new).abs() < 1e-9),
        "the moved boundary is in the effective labels: {show}"
    );
    assert!(
        auto["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| (p["start_s"].as_f64().unwrap() - t_new).abs() > 1e-6),
        "and the automatic layer is untouched"
    );

    // the uncertainty order puts the reviewed episodes (the first two) last
    let (code, list, err) = demotape(
        &[
            "review",
            "list",
            "--all",
            "--order",
            "uncertainty",
            "--json",
        ],
        &[dir.path()],
    );
    assert_eq!(code, 0, "{err}");
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["reviewed"], 0, "{list}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r["reviewed"].as_u64().unwrap() > 0)
            && rows[1..]
                .iter()
                .any(|r| r["sidecar"].as_str().unwrap().contains(episode_1)),
        "{list}"
    );

    // path escapes, whatever the spelling
    for id in [
        "../../etc/passwd",
        "%2Fetc%2Fpasswd",
        "sim-robot/..%2F..%2Fx.annotations.json",
    ] {
        let (status, body) = get(&format!("{}api/episode?id={id}", server.url));
        assert!(status == 403 || status == 404, "{id}: {status} {body}");
    }
}

#[test]
fn beyond_loopback_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    record_sim(dir.path(), "small", 32, 0, 1, 3.0);
    let (code, _, err) = demotape(&["annotate"], &[dir.path()]);
    assert_eq!(code, 0, "{err}");
    let server = serve(dir.path(), &["--listen", "0.0.0.0"]);
    let (base, token) = server
        .url
        .split_once("?token=")
        .expect("a token is printed");
    assert_eq!(token.len(), 32, "{}", server.url);
    for path in ["", "api/queue", "app.js"] {
        let (status, body) = get(&format!("{base}{path}"));
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, _) = get(&format!("{base}api/queue?token=wrong"));
    assert_eq!(status, 401);
    let (status, body) = get(&format!("{base}api/queue?token={token}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("annotations.json"), "{body}");
}
