//! Node processes of the lab: spawned from the sibling binaries, reporting
//! their listeners on stdout, and never outliving the lab.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A node the lab started.
pub struct NodeProcess {
    /// Display name, e.g. `edge-eu-west-1`.
    pub name: String,
    /// The child.
    pub child: Child,
    /// Listener name to address, as the node printed them.
    pub listeners: Vec<(String, SocketAddr)>,
}

impl NodeProcess {
    /// Starts `program args...` and waits until it prints a `listening NAME
    /// ADDR` line for each of `expect`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        expect: &[&str],
    ) -> anyhow::Result<NodeProcess> {
        NodeProcess::spawn_with_env(name, program, args, &[], expect)
    }

    /// Like [`NodeProcess::spawn`], with extra environment variables for the
    /// child (they override the inherited ones, `RUST_LOG` included). Use
    /// this for secrets such as the purge token, which must not appear on
    /// the command line.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        expect: &[&str],
    ) -> anyhow::Result<NodeProcess> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if std::env::var_os("RUST_LOG").is_none() {
            // Node logs share the lab's terminal: warnings only by default.
            command.env("RUST_LOG", "warn");
        }
        command.envs(envs.iter().map(|(k, v)| (k, v)));
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut listeners = Vec::new();
        while !expect
            .iter()
            .all(|n| listeners.iter().any(|(l, _): &(String, SocketAddr)| l == n))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                bail!("{name} did not report its listeners {expect:?} within 30s");
            };
            let mut parts = line.split_whitespace();
            if let (Some("listening"), Some(l), Some(addr)) =
                (parts.next(), parts.next(), parts.next())
            {
                if let Ok(addr) = addr.parse() {
                    listeners.push((l.to_string(), addr));
                }
            }
        }
        Ok(NodeProcess {
            name: name.to_string(),
            child,
            listeners,
        })
    }

    /// The address of a listener.
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, a)| *a)
    }

    /// Sends SIGTERM, unless the process has already been reaped.
    pub fn terminate(&mut self) {
        terminate_child(&mut self.child);
    }

    /// Asks the node to stop (SIGTERM), then kills it after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        stop_child(&mut self.child, grace);
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes the child get SIGTERM when the lab process dies, so no node is
/// left orphaned even if the lab is killed with SIGKILL.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

/// Finds a sibling binary (`edge`, `origin`) next to the running one. Under
/// `cargo run`, builds it first with the same profile, so the lab never runs
/// a stale node.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    package_binary(name, name)
}

/// Like [`sibling_binary`], for a binary `name` of workspace package
/// `package` (e.g. the benchmark's `edge-bare` in `edge`).
pub fn package_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the edgecache binary")?;
    let dir = exe
        .parent()
        .context("binary has no directory")?
        .to_path_buf();
    if let (Ok(cargo), Ok(manifest)) = (std::env::var("CARGO"), std::env::var("CARGO_MANIFEST_DIR"))
    {
        let profile = if dir.ends_with("release") {
            "release"
        } else {
            "dev"
        };
        // The first run compiles the node (a few minutes); later runs only
        // check that it is up to date. Cargo's progress goes to stderr.
        eprintln!("edgecache: making sure `{name}` is built (cargo build -p {package})");
        let status = Command::new(cargo)
            .args(["build", "--profile", profile, "-p", package, "--bin", name])
            .current_dir(manifest)
            .status()
            .with_context(|| format!("building {name}"))?;
        if !status.success() {
            bail!("cargo build of {name} failed");
        }
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace`",
            path.display()
        );
    }
    Ok(path)
}

/// Sends SIGTERM to a child, unless it has already been reaped.
pub fn terminate_child(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) with a pid we own (not yet reaped) and a valid
        // signal number.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// Asks a child to stop (SIGTERM), waits up to `grace`, then kills it.
pub fn stop_child(child: &mut Child, grace: Duration) {
    #[cfg(unix)]
    {
        terminate_child(child);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
