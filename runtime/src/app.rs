//! Shared runtime state.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::config::Config;
use crate::workflow::WorkflowSet;

pub struct App {
    pub config: Config,
    pub workflows: RwLock<Arc<WorkflowSet>>,
    pub started: Instant,
}

impl App {
    pub fn new(config: Config) -> Arc<App> {
        let servers = server_names(&config);
        let set = WorkflowSet::load(&config.workflows_dir, Some(&servers));
        for e in &set.errors {
            tracing::warn!(error = %e.error, "workflow not loaded");
        }
        Arc::new(App {
            config,
            workflows: RwLock::new(Arc::new(set)),
            started: Instant::now(),
        })
    }

    pub fn workflows(&self) -> Arc<WorkflowSet> {
        self.workflows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_workflows(&self, set: WorkflowSet) {
        *self.workflows.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

/// Names of enabled tool servers.
pub fn server_names(config: &Config) -> Vec<String> {
    config
        .tool_servers
        .iter()
        .filter(|(_, s)| s.enabled)
        .map(|(n, _)| n.clone())
        .collect()
}
