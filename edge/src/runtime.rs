//! The node's tokio runtime, shaped by the CPUs the process may use.

use tokio::runtime::{Builder, Handle, Runtime, RuntimeFlavor};

/// Which scheduler a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One thread runs every task: the process may use one CPU, where a
    /// work-stealing scheduler has no one to steal from and only adds
    /// its bookkeeping (2.7% of a 1 KiB cache hit's instructions).
    CurrentThread,
    /// One worker per CPU, stealing work from each other.
    MultiThread,
}

impl Flavor {
    /// The scheduler for a process allowed `cpus` CPUs (its affinity mask
    /// or CPU quota, as `std::thread::available_parallelism` reads them).
    pub fn for_cpus(cpus: usize) -> Flavor {
        if cpus <= 1 {
            Flavor::CurrentThread
        } else {
            Flavor::MultiThread
        }
    }

    /// The scheduler for this process.
    pub fn for_this_process() -> Flavor {
        Flavor::for_cpus(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Builds the runtime for `flavor`, with I/O and timers enabled.
pub fn build(flavor: Flavor) -> std::io::Result<Runtime> {
    let mut builder = match flavor {
        Flavor::CurrentThread => Builder::new_current_thread(),
        Flavor::MultiThread => Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// The runtime for this process: [`build`] for
/// [`Flavor::for_this_process`]. What `edge` and `edge-bare` run on.
pub fn for_this_process() -> std::io::Result<Runtime> {
    build(Flavor::for_this_process())
}

/// The running runtime's scheduler and number of workers, for
/// `/_edge/stats` (so an operator can see which one a node picked).
pub fn describe() -> serde_json::Value {
    let handle = Handle::current();
    let scheduler = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => "current_thread",
        RuntimeFlavor::MultiThread => "multi_thread",
        _ => "other",
    };
    serde_json::json!({
        "scheduler": scheduler,
        "workers": handle.metrics().num_workers(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cpu_gets_the_single_threaded_scheduler() {
        assert_eq!(Flavor::for_cpus(0), Flavor::CurrentThread);
        assert_eq!(Flavor::for_cpus(1), Flavor::CurrentThread);
        assert_eq!(Flavor::for_cpus(2), Flavor::MultiThread);
        assert_eq!(Flavor::for_cpus(64), Flavor::MultiThread);
    }

    #[test]
    fn both_runtimes_run_tasks_and_timers() {
        for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
            let runtime = build(flavor).expect("runtime");
            let answer = runtime.block_on(async {
                let task = tokio::spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    42
                });
                task.await.expect("task")
            });
            assert_eq!(answer, 42, "{flavor:?}");
            let described = runtime.block_on(async { describe() });
            let expected = match flavor {
                Flavor::CurrentThread => "current_thread",
                Flavor::MultiThread => "multi_thread",
            };
            assert_eq!(described["scheduler"], expected);
        }
    }
}
