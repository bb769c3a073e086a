//! End-to-end tests of the `ael` binary that need no other program: ael is
//! configured with *itself* (`ael serve --transport stdio`) as a tool server,
//! which exercises the MCP client, the workflow engine and the MCP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const AEL: &str = env!("CARGO_BIN_EXE_ael");

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Outer config: a tool server `self` that is `ael serve --transport stdio`
/// with the inner config (no tool servers).
fn setup(dir: &Path) -> std::path::PathBuf {
    let wf = dir.join("wf");
    std::fs::create_dir_all(&wf).unwrap();
    write(
        &wf.join("meta.yaml"),
        r#"name: meta
description: Ask ael (as a tool server) about its workflows
inputs:
  name: {type: string, default: meta}
steps:
  - id: list
    tool: self.workflows_list
  - id: describe
    tool: self.workflow_describe
    if: length(steps.list.output.workflows) > 0
    with:
      name: ${{ inputs.name }}
  - id: missing
    tool: self.workflow_describe
    with: {name: does-not-exist}
    continue_on_error: true
output:
  count: ${{ length(steps.list.output.workflows) }}
  first_step: ${{ steps.describe.output.steps[0].id }}
  missing_status: ${{ steps.missing.status }}
  missing_error: ${{ steps.missing.error }}
  text: "found ${{ length(steps.list.output.workflows) }} workflow(s)"
"#,
    );
    let inner = dir.join("inner.yaml");
    write(
        &inner,
        &format!(
            "workflows_dir: {}\ndata_dir: {}\n",
            wf.display(),
            dir.join("inner-data").display()
        ),
    );
    let outer = dir.join("outer.yaml");
    write(
        &outer,
        &format!(
            "workflows_dir: {wf}\ndata_dir: {data}\nhttp:\n  host: 127.0.0.1\n  shutdown_grace_ms: 500\ntool_servers:\n  self:\n    command: {AEL}\n    args: [serve, --transport, stdio]\n    env: {{AEL_CONFIG_PATH: {inner}, AEL_LOG_LEVEL: warn}}\n    required: true\n",
            wf = wf.display(),
            data = dir.join("data").display(),
            inner = inner.display()
        ),
    );
    outer
}

#[test]
fn cli_run_uses_ael_itself_as_stdio_tool_server() {
    let dir = tempfile::tempdir().unwrap();
    let outer = setup(dir.path());
    let out = Command::new(AEL)
        .args([
            "--config",
            outer.to_str().unwrap(),
            "workflows",
            "run",
            "meta",
            "--json",
        ])
        .env_remove("AEL_CONFIG_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["output"]["count"], 1);
    assert_eq!(rec["output"]["first_step"], "list");
    assert_eq!(rec["output"]["missing_status"], "failed");
    assert!(
        rec["output"]["missing_error"]
            .as_str()
            .unwrap()
            .contains("does-not-exist")
    );
    assert_eq!(rec["output"]["text"], "found 1 workflow(s)");
    // The run is in the persistent history.
    let runs = std::fs::read_to_string(dir.path().join("data").join("runs.jsonl")).unwrap();
    assert_eq!(runs.lines().count(), 2);
    assert!(runs.contains("\"status\":\"succeeded\""));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).ok()?))
}

#[test]
fn serve_http_health_reports_tool_server_and_stops_children_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let outer = setup(dir.path());
    let port = free_port();
    let t0 = Instant::now();
    let mut child = Command::new(AEL)
        .args(["--config", outer.to_str().unwrap(), "serve"])
        .env("AEL_HTTP_PORT", port.to_string())
        .env_remove("AEL_CONFIG_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // /health answers quickly, before the tool server is necessarily up.
    let first = loop {
        if let Some(r) = get(port, "/health") {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no /health");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(first.1["version"].is_string());
    // Then the required `self` server connects and /health turns 200.
    let body = loop {
        let (status, body) = get(port, "/health").unwrap();
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503);
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "tool server never connected: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let native = &body["tool_servers"]["self"];
    assert_eq!(native["state"], "connected");
    assert!(
        native["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "workflow_run")
    );
    let child_pid = native["pid"].as_i64().unwrap() as i32;
    assert!(Path::new(&format!("/proc/{child_pid}")).exists());

    let t1 = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{:?}", log.join().unwrap());
    assert!(
        t1.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t1.elapsed()
    );
    // The tool server child has been stopped and reaped.
    let stat = std::fs::read_to_string(format!("/proc/{child_pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty(), "tool server still present: {stat}");
    let lines = log.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM received")),
        "{lines:?}"
    );
}

#[test]
fn stdio_server_exits_on_sigterm_before_and_after_initialize() {
    let dir = tempfile::tempdir().unwrap();
    let outer = setup(dir.path());
    for initialize in [false, true] {
        let mut child = Command::new(AEL)
            .args([
                "--config",
                outer.to_str().unwrap(),
                "serve",
                "--transport",
                "stdio",
            ])
            .env_remove("AEL_CONFIG_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        if initialize {
            writeln!(
                stdin,
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
            )
            .unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["result"]["serverInfo"]["name"], "ael");
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        let t = Instant::now();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "initialize={initialize}: {status:?}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        drop(stdin);
    }
}
