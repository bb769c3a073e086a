//! The default images run as containers under podman.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{PODMAN_RUN_LIMITS, default_images, free_port, http_get, json, ok, podman, poll, run};

fn images() -> &'static Path {
    default_images("podman")
}

fn oci_ref(image: &str) -> String {
    format!("oci:{}:latest", images().join(image).display())
}

/// Stops and removes a container when dropped (by its ID, never by name).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(podman().args(["rm", "-f", "-t", "0", &self.0]));
    }
}

#[test]
fn ael_serves_health_on_a_mapped_port_and_stops_promptly_on_sigterm() {
    let port = free_port();
    let id = ok(podman().args(["run", "-d"]).args(PODMAN_RUN_LIMITS).args([
        "-p",
        &format!("127.0.0.1:{port}:8082"),
        &oci_ref("ael"),
    ]))
    .trim()
    .to_string();
    let container = Container(id);
    let health = poll(Duration::from_secs(20), || {
        match http_get(port, "/health") {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    });
    let logs =
        || String::from_utf8_lossy(&run(podman().args(["logs", &container.0])).stderr).into_owned();
    let body =
        health.unwrap_or_else(|| panic!("no 200 from /health within 20 s; logs:\n{}", logs()));
    assert!(body.contains("\"status\""), "health body: {body}");
    assert!(body.contains("0.1.0") || body.contains("version"), "{body}");

    // The image's health check command works inside the container (no curl needed).
    let probe = run(podman().args(["exec", &container.0, "ael", "health"]));
    assert!(probe.status.success(), "ael health failed: {probe:?}");

    // It runs as the non-root user.
    let top = json(&ok(podman().args(["inspect", &container.0])));
    assert_eq!(top[0]["Config"]["User"], "10001:10001");

    // SIGTERM ends it cleanly: well before the 10 s kill, and with exit code 0.
    let t = Instant::now();
    ok(podman().args(["stop", "-t", "10", &container.0]));
    let took = t.elapsed();
    let state = json(&ok(podman().args(["inspect", &container.0])));
    assert_eq!(
        state[0]["State"]["ExitCode"],
        0,
        "exit code after SIGTERM (137 means it was killed); logs:\n{}",
        logs()
    );
    assert!(
        took < Duration::from_secs(5),
        "podman stop took {took:?}: SIGTERM was not handled"
    );
    eprintln!("podman stop took {took:?}");
}

#[test]
fn ael_lists_the_example_workflows() {
    let out = ok(podman()
        .args(["run", "--rm"])
        .args(PODMAN_RUN_LIMITS)
        .args([&oci_ref("ael"), "workflows", "list"]));
    let names = common::example_workflow_names();
    assert!(names.len() >= 2);
    for n in &names {
        assert!(
            out.contains(n.as_str()),
            "workflow {n} missing from:\n{out}"
        );
    }
}

#[test]
fn native_tools_runs_under_podman() {
    let out = ok(podman()
        .args(["run", "--rm"])
        .args(PODMAN_RUN_LIMITS)
        .args([&oci_ref("native-tools"), "--version"]));
    assert!(out.starts_with("native-tools "), "{out}");
    let out = ok(podman()
        .args(["run", "--rm"])
        .args(PODMAN_RUN_LIMITS)
        .args(["--entrypoint", "ael", &oci_ref("ael"), "--version"]));
    assert!(out.starts_with("ael "), "{out}");
}
