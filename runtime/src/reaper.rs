//! PID 1 duties: reap orphaned zombie processes re-parented to ael.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use crate::tools::ToolManager;

/// Zombie children of `parent` listed in /proc.
fn zombie_children(parent: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Format: pid (comm) state ppid ...; comm may contain spaces or ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if state == Some("Z") && ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Reaps zombies that are not tool-server children (those are waited for
/// by their owners). Returns how many were reaped.
pub fn reap_once(tools: Option<&ToolManager>) -> usize {
    let me = std::process::id();
    let own: HashSet<i32> = tools
        .map(|t| {
            t.statuses()
                .values()
                .filter_map(|s| s.pid.map(|p| p as i32))
                .collect()
        })
        .unwrap_or_default();
    let mut n = 0;
    for pid in zombie_children(me) {
        if own.contains(&pid) {
            continue;
        }
        if waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).is_ok() {
            tracing::debug!(pid, "reaped orphaned process");
            n += 1;
        }
    }
    n
}

/// Whether ael reaps orphans: when it is PID 1, or when `force` is set; with
/// `force` outside PID 1, ael becomes a child subreaper here, so orphaned
/// descendants (e.g. of tool servers) are re-parented to it.
///
/// Call it before any child is started: a process orphaned before ael is a
/// subreaper goes to the host's init instead.
#[must_use]
pub fn adopt_orphans(force: bool) -> bool {
    if std::process::id() == 1 {
        return true;
    }
    if !force {
        return false;
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    true
}

/// Runs the reaper on SIGCHLD and every 2 s, when [`adopt_orphans`] said so.
pub fn spawn(tools: Arc<ToolManager>, stop: CancellationToken, reaping: bool) {
    if !reaping {
        return;
    }
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut chld = signal(SignalKind::child()).ok();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = async { match chld.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {
                    // Let tokio reap its own children first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            reap_once(Some(&tools));
        }
    });
}
