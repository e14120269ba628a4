//! The driver's behaviour, independent of the wire: tasks as rkt pods, prepared and made ready
//! in this process by stage0 from typed specs (what `rkt prepare` and `rkt run-prepared` do),
//! supervised, stopped, inspected, entered and measured.
//!
//! A task's pod is supervised by `rkt-stage1`, the one process a task start runs: it is
//! started in a session of its own with the task's log FIFOs as its stdout and stderr, so it
//! outlives this plugin. Everything needed to find it again (the pod UUID and the supervisor's PID) is
//! in the task handle's driver state, and the exit status of a pod that ended while no plugin
//! was running is read back from rkt (`rkt status`), which records each app's exit code.

mod error;
pub mod exec_stream;
pub mod fingerprint;
pub mod image_gc;
mod options;
pub mod rkt;
pub mod start;
pub mod starting;
pub mod stats;
mod task;

pub(crate) use error::invalid;
pub use error::{Error, FileError, InvalidTask};
pub use task::{ExitInfo, NetworkInfo, Task, TaskState};

use rkt::Rkt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// A task event for Nomad's TaskEvents stream.
#[derive(Debug, Clone)]
pub struct Event {
    pub task_id: String,
    pub alloc_id: String,
    pub task_name: String,
    pub timestamp: SystemTime,
    pub message: String,
    pub annotations: BTreeMap<String, String>,
}

/// What Nomad keeps for us in the task handle (`driver_state`), as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriverState {
    pub uuid: String,
    /// The pod supervisor (`rkt-stage1`).
    pub pid: i32,
    /// Unix nanoseconds.
    pub started_at: i64,
    pub task_name: String,
    pub alloc_id: String,
}

/// Version of [`DriverState`] in the task handle.
pub const STATE_VERSION: i32 = 1;

/// A started task: its handle state and, on a contained network, its address and ports.
pub struct Started {
    pub state: Vec<u8>,
    pub network: Option<NetworkInfo>,
}

/// A command's result inside a task.
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

pub struct Driver {
    pub rkt: Rkt,
    pub cgroup_root: PathBuf,
    /// What the plugin's configuration allows jobs, and adds to them.
    plugin: Mutex<start::Plugin>,
    /// The plugin's `auth {}` and `pull_activity_timeout`, for fetches.
    pulls: Mutex<crate::config::PullConfig>,
    /// Why the plugin's configuration cannot be used, if it cannot.
    config_error: Mutex<Option<String>>,
    /// Removes the images no task uses any more.
    pub image_gc: Arc<image_gc::ImageGc>,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    /// Held while pods of unfinished starts are removed: a StartTask waits for the sweep
    /// that configuring began, rather than taking the other's locked records for starts in
    /// flight and starting its pod beside an orphan still being removed.
    orphan_sweep: tokio::sync::Mutex<()>,
    /// The records of starts that returned, kept (locked) until a later call for the task
    /// shows that Nomad has its handle: a plugin killed between StartTask's return and its
    /// answer reaching Nomad leaves the record for the next plugin's sweep, as one killed
    /// during the start does (see [`starting`]).
    handed: Mutex<HashMap<String, starting::Record>>,
    events: broadcast::Sender<Event>,
}

impl Driver {
    pub fn new(rkt: Rkt) -> Arc<Driver> {
        Arc::new(Driver {
            image_gc: image_gc::ImageGc::new(rkt.clone()),
            rkt,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            plugin: Mutex::new(start::Plugin::default()),
            pulls: Mutex::new(crate::config::PullConfig::default()),
            config_error: Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
            orphan_sweep: tokio::sync::Mutex::new(()),
            handed: Mutex::new(HashMap::new()),
        })
    }

    /// Applies the plugin's configuration (SetConfig). Only the long-lived instance (the one
    /// Nomad gives its own configuration to) collects images: Nomad also starts a plugin
    /// briefly to validate the configuration.
    pub fn configure(self: &Arc<Self>, config: &crate::config::PluginConfig, long_lived: bool) {
        self.set_plugin(start::Plugin {
            allowed: start::Allowed {
                volumes: config.volumes_enabled,
                privileged: config.allow_privileged,
                pids_limit: config.pids_limit,
            },
            allow_caps: config.allow_caps.clone(),
            extra_labels: config.extra_labels.clone(),
        });
        *self.pulls.lock().expect("pulls") = config.pulls.clone();
        *self.config_error.lock().expect("config error") = None;
        if long_lived {
            // Nomad's own instance: pods of starts a killed plugin left go now, not at the
            // next StartTask.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let d = self.clone();
                rt.spawn(async move { d.remove_orphans(None).await });
            }
            self.image_gc.configure(config.gc.clone());
        }
    }

    /// A configuration that cannot be used: the fingerprint reports the driver unhealthy
    /// with `why`, and tasks are refused with it, until a good one comes.
    pub fn set_config_error(&self, why: String) {
        *self.config_error.lock().expect("config error") = Some(why);
    }

    pub fn config_error(&self) -> Option<String> {
        self.config_error.lock().expect("config error").clone()
    }

    pub fn set_plugin(&self, plugin: start::Plugin) {
        *self.plugin.lock().expect("plugin") = plugin;
    }

    pub fn plugin(&self) -> start::Plugin {
        self.plugin.lock().expect("plugin").clone()
    }

    pub(crate) fn pulls(&self) -> crate::config::PullConfig {
        self.pulls.lock().expect("pulls").clone()
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub async fn fingerprint(&self) -> fingerprint::Fingerprint {
        let root = rustix::process::geteuid().is_root();
        let version = if root {
            self.rkt.version().await
        } else {
            Ok(String::new())
        };
        fingerprint::fingerprint(root, version, self.plugin().allowed.volumes, self.problem())
    }

    /// Configuration that would fail every task: the plugin's own, or rkt's `registries.d`
    /// (read again at each fingerprint, so a fix shows within one period).
    fn problem(&self) -> Option<String> {
        if let Some(e) = self.config_error() {
            return Some(format!("invalid plugin configuration: {e}"));
        }
        let c = self.rkt.stage0_config();
        image::registries::Registries::load(&c.config_dirs())
            .err()
            .map(|e| format!("invalid rkt configuration: {e}"))
    }

    fn task(&self, id: &str) -> Result<Arc<Task>, Error> {
        // Nomad names the task: it has the handle, and the start's record can go.
        self.handed.lock().expect("handed records").remove(id);
        self.tasks
            .lock()
            .expect("task map")
            .get(id)
            .cloned()
            .ok_or_else(Error::not_found)
    }

    pub(crate) fn emit(&self, spec: &start::Spec, message: String) {
        let _ = self.events.send(Event {
            task_id: spec.id.clone(),
            alloc_id: spec.alloc_id.clone(),
            task_name: spec.name.clone(),
            timestamp: SystemTime::now(),
            message,
            annotations: BTreeMap::new(),
        });
    }

    /// StartTask: trust, prepare, launch the supervisor, and (contained networks) find the
    /// pod's address and ports.
    pub async fn start(
        self: &Arc<Self>,
        opts: start::Options,
        spec: start::Spec,
    ) -> Result<Started, Error> {
        if self.tasks.lock().expect("task map").contains_key(&spec.id) {
            return Err(Error::fatal(format!(
                "taskConfig with ID '{}' already started",
                spec.id
            )));
        }
        if let Some(why) = self.config_error() {
            return Err(Error::fatal(format!(
                "the rkt driver's plugin configuration is invalid: {why}"
            )));
        }
        let launch = start::launch(&opts, &spec, &self.plugin())?;
        // A pod left by an earlier plugin killed in the middle of a start would otherwise run
        // beside this one (Nomad never got its handle): remove such pods first.
        self.remove_orphans(Some(&spec.id)).await;
        let record = starting::Record::begin(&self.starting_dir(), &spec.id).map_err(|e| {
            Error::fatal(format!(
                "recording the start in {}: {e}",
                self.starting_dir().display()
            ))
        })?;
        // No image is collected while a task starts: its pod names its image only once
        // prepared.
        let starting = self.image_gc.starting().await;
        let task = task::launch(self, &opts, &spec, launch, &record).await?;
        drop(starting);
        let state = DriverState {
            uuid: task.uuid.clone(),
            pid: task.pid,
            started_at: nanos(task.started_at),
            task_name: spec.name.clone(),
            alloc_id: spec.alloc_id.clone(),
        };
        let network = task.network.clone();
        self.tasks
            .lock()
            .expect("task map")
            .insert(spec.id.clone(), task);
        // If the plugin dies before Nomad next names the task, the record says the start
        // returned (best effort: without the mark the record reads as a start cut short).
        let mut record = record;
        let _ = record.mark_done(&spec.id);
        self.handed
            .lock()
            .expect("handed records")
            .insert(spec.id.clone(), record);
        Ok(Started {
            state: serde_json::to_vec(&state).expect("serializable"),
            network,
        })
    }

    fn starting_dir(&self) -> PathBuf {
        starting::dir(&self.rkt.data_dir().join("nomad-driver-rkt"))
    }

    /// Stops and removes the pods of starts that a dead plugin left unfinished (see
    /// [`starting`]): Nomad has no handle for them and has started, or will start, the task
    /// anew.
    pub async fn remove_orphans(&self, starting: Option<&str>) {
        let _sweep = self.orphan_sweep.lock().await;
        let orphans = starting::orphans(&self.starting_dir());
        for o in orphans {
            // A start that had returned is an orphan only once Nomad starts its task again
            // (until then RecoverTask may claim it).
            if o.done && !starting.is_some_and(|id| starting::same_task(&o.task, id)) {
                o.keep();
                continue;
            }
            if let Some(uuid) = &o.pod {
                crate::log::warn(
                    "removing the pod of a start a killed plugin left unfinished (Nomad never got its handle)",
                    &[("pod", uuid), ("task_id", &o.task)],
                );
                if let Err(e) = self.stop_and_remove(uuid).await {
                    crate::log::warn(
                        "could not remove the pod of an unfinished start",
                        &[("pod", uuid), ("error", &e.to_string())],
                    );
                    continue; // the record stays, for the next sweep
                }
            }
        }
    }

    /// Stops and removes a pod whose start a dead plugin left. Its supervisor may still be
    /// starting (prepared, about to run) or be dying from the stop, and `rkt rm` refuses a
    /// pod in either state, so stop and rm are retried together for up to ten seconds.
    async fn stop_and_remove(&self, uuid: &str) -> stage0::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let _ = self.rkt.stop(uuid, true).await;
            match self.rkt.rm(uuid).await {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// RecoverTask: finds the pod again from the handle's state.
    pub async fn recover(self: &Arc<Self>, id: &str, state: &[u8]) -> Result<(), Error> {
        if self.tasks.lock().expect("task map").contains_key(id) {
            return Ok(());
        }
        let s: DriverState = serde_json::from_slice(state).map_err(|e| {
            Error::fatal(format!(
                "failed to decode taskConfig state from handle: {e}"
            ))
        })?;
        let task = task::recover(self, id, &s).await?;
        // Nomad had the handle after all: the start a dead plugin left recorded is not an
        // orphan.
        starting::claim(&self.starting_dir(), id);
        // Its images are the driver's to collect once the task is gone (a plugin that did
        // not collect images may have started it).
        self.track_images(&s.uuid).await;
        self.tasks
            .lock()
            .expect("task map")
            .insert(id.to_string(), task);
        Ok(())
    }

    /// Records the images of pod `uuid` as used by a task, for the image collector.
    pub(crate) async fn track_images(&self, uuid: &str) {
        let (gc, config, pod) = (
            self.image_gc.clone(),
            self.rkt.stage0_config(),
            uuid.to_string(),
        );
        // Files and a lock another plugin process may hold for a moment: off the runtime.
        let tracked = tokio::task::spawn_blocking(move || {
            stage0::lifecycle::images_of(&config, &pod).and_then(|ids| gc.track(&ids))
        })
        .await
        .unwrap_or_else(|e| Err(stage0::Error::failed(e.to_string())));
        if let Err(e) = tracked {
            crate::log::warn(
                "recording the images of a pod for collection",
                &[("pod", uuid), ("error", &e.to_string())],
            );
        }
    }

    /// WaitTask: the exit, whenever it comes; any number of callers.
    pub async fn wait(&self, id: &str) -> Result<ExitInfo, Error> {
        let t = self.task(id)?;
        Ok(t.wait().await)
    }

    /// StopTask: the signal (SIGINT by default, as Nomad's executor), `timeout` to exit, then
    /// the whole pod killed. Returns once the task has exited.
    pub async fn stop(&self, id: &str, timeout: Duration, signal: &str) -> Result<(), Error> {
        let t = self.task(id)?;
        t.stop(&self.rkt, timeout, signal).await
    }

    /// DestroyTask: kills a running task when forced, removes the pod (`rkt rm`), forgets it.
    pub async fn destroy(&self, id: &str, force: bool) -> Result<(), Error> {
        let t = match self.task(id) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        if t.exit().is_none() {
            if !force {
                return Err(Error::fatal("cannot destroy running task"));
            }
            t.stop(&self.rkt, Duration::ZERO, "SIGKILL").await?;
        }
        self.rkt.rm(&t.uuid).await?;
        self.tasks.lock().expect("task map").remove(id);
        Ok(())
    }

    pub fn inspect(&self, id: &str) -> Result<TaskState, Error> {
        Ok(self.task(id)?.state())
    }

    /// SignalTask: to the pod's supervisor, which forwards it to the app. An unknown name is
    /// logged and sent as SIGINT, as the original driver did.
    pub fn signal(&self, id: &str, name: &str) -> Result<(), Error> {
        let t = self.task(id)?;
        t.signal(&self.rkt, task::signal_number(name).unwrap_or(libc::SIGINT))
    }

    /// ExecTask: `rkt enter <uuid> CMD…`, confined like the app; `timeout` zero means none.
    pub async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        if cmd.is_empty() {
            return Err(Error::fatal("error cmd must have at least one value"));
        }
        let t = self.task(id)?;
        let mut c = self.rkt.enter_command(&t.uuid, cmd);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let run = c.output();
        let out = if timeout.is_zero() {
            run.await
        } else {
            tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| Error::fatal(format!("exec timed out after {timeout:?}")))?
        }
        .map_err(|e| Error::fatal(format!("rkt enter: {e}")))?;
        Ok(ExecOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.status.code().unwrap_or(2),
        })
    }

    /// The `rkt enter` command for a task, for streaming exec to wire up itself.
    pub fn exec_command(&self, id: &str, cmd: &[String]) -> Result<tokio::process::Command, Error> {
        if cmd.is_empty() {
            return Err(Error::fatal("error cmd must have at least one value"));
        }
        let t = self.task(id)?;
        Ok(self.rkt.enter_command(&t.uuid, cmd))
    }

    /// The pod's cgroup counters now (for TaskStats), from where its plan says its cgroups
    /// are.
    pub fn counters(&self, id: &str) -> Result<stats::Counters, Error> {
        let t = self.task(id)?;
        let pods =
            pod::Pods::open(&self.rkt.data_dir()).map_err(|e| Error::fatal(e.to_string()))?;
        let pod = pods
            .find(&t.uuid)
            .map_err(|e| Error::fatal(e.to_string()))?;
        let rel = layout::cgroup::of_pod(&pod.path).ok_or_else(|| {
            Error::fatal(format!("pod {} records no cgroup (it has not run)", t.uuid))
        })?;
        Ok(stats::read(&self.cgroup_root, &rel)?)
    }

    /// Whether the task has exited (TaskStats ends its stream then).
    pub fn exited(&self, id: &str) -> Result<bool, Error> {
        Ok(self.task(id)?.exit().is_some())
    }
}

pub(crate) fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Whether Nomad's signal name is one this driver knows.
pub fn signal_known(name: &str) -> bool {
    task::signal_number(name).is_some()
}
