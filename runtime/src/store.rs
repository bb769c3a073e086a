//! Persistent run history and run logs as JSON lines in the data directory.
//!
//! * `runs.jsonl`: one `started` and one `finished` record per run.
//! * `logs.jsonl`: step-level log records.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::redact::Redactor;

/// Run records file in the data directory.
pub const RUNS_FILE: &str = "runs.jsonl";
/// Step log file in the data directory.
pub const LOGS_FILE: &str = "logs.jsonl";

/// Why the run history is disabled.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created.
    #[error("cannot create {}: {error}", dir.display())]
    Create {
        /// The data directory.
        dir: PathBuf,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// The runs file cannot be opened for appending.
    #[error("cannot write {}: {error}", file.display())]
    Write {
        /// The runs file.
        file: PathBuf,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
}

/// The current UTC time in RFC 3339 with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Severity of a [`RunEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventLevel {
    /// Progress details.
    Debug,
    /// Normal progress (run started, step succeeded).
    Info,
    /// Something went wrong but the run goes on (a retried attempt).
    Warn,
    /// A step or run failed.
    Error,
}

impl EventLevel {
    /// The level of a log record's `level` field (`info`, `warn`, ...).
    pub fn parse(s: &str) -> EventLevel {
        match s {
            "debug" | "trace" => EventLevel::Debug,
            "warn" | "warning" => EventLevel::Warn,
            "error" => EventLevel::Error,
            _ => EventLevel::Info,
        }
    }
}

/// One thing that happened in a run, as written to the run log (already
/// redacted). Published to [`Store::subscribe`]rs whether or not the
/// history is writable.
#[derive(Debug, Clone)]
pub struct RunEvent {
    /// Severity.
    pub level: EventLevel,
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// The step, for step events.
    pub step: Option<String>,
    /// What happened.
    pub message: String,
    /// Extra fields (duration, status, ...).
    pub data: Value,
}

/// Run history and logs in the data directory (append-only JSON lines).
pub struct Store {
    dir: PathBuf,
    /// Set when the data directory is not writable (history disabled).
    error: Option<StoreError>,
    lock: Mutex<()>,
    redactor: Redactor,
    events: broadcast::Sender<RunEvent>,
    /// Workflow of each run in progress (for events).
    running: Mutex<HashMap<String, String>>,
}

impl Store {
    /// Opens (creating it if its parent exists) the data directory.
    pub fn open(dir: &Path) -> Store {
        // Create the directory itself but not missing parents (so a default
        // like /app/data is not conjured up outside the image).
        let created = match std::fs::create_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        };
        let error = match created {
            Err(error) => Some(StoreError::Create {
                dir: dir.to_path_buf(),
                error,
            }),
            Ok(()) => {
                let probe = dir.join(RUNS_FILE);
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&probe)
                    .err()
                    .map(|error| StoreError::Write { file: probe, error })
            }
        };
        if let Some(e) = &error {
            tracing::warn!("run history disabled: {e}");
        }
        Store {
            dir: dir.to_path_buf(),
            error,
            lock: Mutex::new(()),
            redactor: Redactor::default(),
            events: broadcast::channel(1024).0,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Hides the secrets of `redactor` in everything written from now on
    /// (files and events).
    pub fn with_redactor(mut self, redactor: Redactor) -> Store {
        self.redactor = redactor;
        self
    }

    /// The redactor applied to everything the store writes.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Receives every run event from now on (a receiver that lags loses
    /// the oldest events).
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    fn workflow_of(&self, run_id: &str) -> String {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run_id)
            .cloned()
            .unwrap_or_default()
    }

    fn publish(&self, event: RunEvent) {
        // No receivers is fine: nobody is listening.
        let _ = self.events.send(event);
    }

    /// Whether runs are recorded.
    pub fn writable(&self) -> bool {
        self.error.is_none()
    }

    /// Status for /health: directory, writable, and why not.
    pub fn status(&self) -> Value {
        let error = self.error.as_ref().map(ToString::to_string);
        json!({"dir": self.dir, "writable": self.writable(), "error": error})
    }

    fn append(&self, file: &str, v: &Value) {
        if self.error.is_some() {
            return;
        }
        let mut line = self.redactor.redact(&v.to_string()).into_owned();
        line.push('\n');
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            tracing::warn!("cannot append to {file}: {e}");
        }
    }

    /// Appends the `started` record of a run.
    pub fn run_started(&self, run_id: &str, workflow: &str, inputs: &Value, origin: &str) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.to_string(), workflow.to_string());
        self.append(
            RUNS_FILE,
            &json!({"event": "started", "run_id": run_id, "workflow": workflow, "inputs": inputs,
                     "origin": origin, "pid": std::process::id(), "at": now()}),
        );
        self.publish(RunEvent {
            level: EventLevel::Info,
            run_id: run_id.to_string(),
            workflow: workflow.to_string(),
            step: None,
            message: "run started".into(),
            data: json!({"origin": origin}),
        });
    }

    /// Appends the final record of a run (the run result object plus `event`).
    pub fn run_finished(&self, record: &Value) {
        let mut v = record.clone();
        if let Value::Object(m) = &mut v {
            m.insert("event".into(), Value::from("finished"));
            m.insert("at".into(), Value::from(now()));
        }
        self.append(RUNS_FILE, &v);
        let run_id = record["run_id"].as_str().unwrap_or_default().to_string();
        let workflow = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run_id)
            .or_else(|| record["workflow"].as_str().map(str::to_string))
            .unwrap_or_default();
        let status = record["status"].as_str().unwrap_or("finished");
        let mut message = format!("run {status}");
        if let Some(e) = record["error"].as_str() {
            message = format!("{message}: {}", self.redactor.redact(e));
        }
        self.publish(RunEvent {
            level: if status == "succeeded" {
                EventLevel::Info
            } else {
                EventLevel::Error
            },
            run_id,
            workflow,
            step: None,
            message,
            data: json!({"status": status, "duration_ms": record["duration_ms"]}),
        });
    }

    /// Appends a log record of a run (optionally of one step).
    pub fn log(&self, run_id: &str, level: &str, step: Option<&str>, message: &str, extra: Value) {
        let message = self.redactor.redact(message);
        self.append(
            LOGS_FILE,
            &json!({"at": now(), "run_id": run_id, "level": level, "step": step, "message": message, "data": extra}),
        );
        self.publish(RunEvent {
            level: EventLevel::parse(level),
            run_id: run_id.to_string(),
            workflow: self.workflow_of(run_id),
            step: step.map(str::to_string),
            message: message.into_owned(),
            data: extra,
        });
    }

    fn read_lines(&self, file: &str) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.dir.join(file)) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Folds `runs.jsonl` into one record per run, newest first.
    pub fn runs(&self, workflow: Option<&str>, limit: usize) -> Vec<Value> {
        let mut order: Vec<String> = Vec::new();
        let mut runs: BTreeMap<String, Value> = BTreeMap::new();
        for ev in self.read_lines(RUNS_FILE) {
            let Some(id) = ev.get("run_id").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            match ev.get("event").and_then(Value::as_str) {
                Some("started") => {
                    order.push(id.clone());
                    runs.insert(
                        id.clone(),
                        json!({"run_id": id, "workflow": ev["workflow"], "status": "running",
                               "inputs": ev["inputs"], "origin": ev["origin"], "started_at": ev["at"], "pid": ev["pid"]}),
                    );
                }
                Some("finished") => {
                    let entry = runs.entry(id.clone()).or_insert_with(|| {
                        order.push(id.clone());
                        json!({"run_id": id})
                    });
                    if let (Value::Object(dst), Value::Object(src)) = (entry, ev) {
                        for (k, v) in src {
                            if k != "event" && k != "at" {
                                dst.insert(k, v);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        order
            .iter()
            .rev()
            .filter_map(|id| runs.get(id))
            .filter(|r| workflow.is_none_or(|w| r["workflow"].as_str() == Some(w)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Log records of one run.
    pub fn logs(&self, run_id: &str) -> Vec<Value> {
        self.read_lines(LOGS_FILE)
            .into_iter()
            .filter(|l| l["run_id"].as_str() == Some(run_id))
            .collect()
    }

    /// Keeps the newest `limit` runs in `runs.jsonl` and their lines in
    /// `logs.jsonl` (rewritten atomically). Returns how many runs were dropped.
    pub fn compact(&self, limit: usize) -> usize {
        if !self.writable() || limit == 0 {
            return 0;
        }
        let runs = self.runs(None, usize::MAX);
        if runs.len() <= limit {
            return 0;
        }
        let keep: std::collections::HashSet<String> = runs
            .iter()
            .take(limit)
            .filter_map(|r| r["run_id"].as_str().map(str::to_string))
            .collect();
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        for file in [RUNS_FILE, LOGS_FILE] {
            let path = self.dir.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .and_then(|v| v["run_id"].as_str().map(|id| keep.contains(id)))
                        .unwrap_or(false)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let tmp = self.dir.join(format!(".{file}.tmp"));
            if let Err(e) = std::fs::write(&tmp, kept).and_then(|()| std::fs::rename(&tmp, &path)) {
                tracing::warn!("cannot compact {file}: {e}");
            }
        }
        let dropped = runs.len() - limit;
        tracing::info!(dropped, kept = limit, "run history compacted");
        dropped
    }

    /// Marks runs left `running` by a previous process (crash, SIGKILL) as
    /// interrupted. Runs of live processes other than this one are left alone.
    pub fn recover(&self) -> usize {
        if !self.writable() {
            return 0;
        }
        let me = std::process::id() as u64;
        let mut n = 0;
        for r in self.runs(None, usize::MAX) {
            if r["status"] != "running" {
                continue;
            }
            let pid = r["pid"].as_u64();
            let alive = pid.is_some_and(|p| p != me && Path::new(&format!("/proc/{p}")).exists());
            if alive {
                continue;
            }
            self.run_finished(&json!({
                "run_id": r["run_id"], "workflow": r["workflow"], "status": "interrupted",
                "error": "ael stopped before the run finished", "finished_at": now(),
            }));
            n += 1;
        }
        if n > 0 {
            tracing::warn!("marked {n} unfinished run(s) from a previous process as interrupted");
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_survives_reopen_and_recovers_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path());
        assert!(s.writable());
        s.run_started("r1", "wf", &json!({"a": 1}), "test");
        s.run_finished(
            &json!({"run_id": "r1", "workflow": "wf", "status": "succeeded", "output": 5}),
        );
        s.run_started("r2", "wf", &json!({}), "test");
        s.log("r1", "info", Some("step"), "hello", json!(null));
        drop(s);
        let s = Store::open(dir.path());
        let runs = s.runs(None, 10);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["run_id"], "r2");
        assert_eq!(runs[0]["status"], "running");
        assert_eq!(runs[1]["status"], "succeeded");
        assert_eq!(runs[1]["output"], 5);
        // r2 was started by this very process id, which is "not alive" from
        // the point of view of a restarted process with the same pid.
        assert_eq!(s.recover(), 1);
        assert_eq!(s.runs(None, 10)[0]["status"], "interrupted");
        assert_eq!(s.logs("r1").len(), 1);
        assert_eq!(s.runs(Some("other"), 10).len(), 0);
        // Compaction keeps the newest run and its logs only.
        s.log("r2", "info", None, "kept", json!(null));
        assert_eq!(s.compact(1), 1);
        let runs = s.runs(None, 10);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["run_id"], "r2");
        assert_eq!(runs[0]["status"], "interrupted");
        assert!(s.logs("r1").is_empty());
        assert_eq!(s.logs("r2").len(), 1);
        assert_eq!(s.compact(1), 0);
    }
}
