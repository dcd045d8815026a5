//! CPU time and memory of a server's process tree, from /proc.

use std::collections::HashMap;

/// CPU time and memory of a process and all its descendants.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeStat {
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    /// The system (kernel) part of `cpu_secs`: on loopback it includes the
    /// TCP work for the client's side of each packet the server sends.
    pub system_secs: f64,
    /// Sum of current resident set sizes, KiB.
    pub rss_kib: u64,
    /// Sum of peak resident set sizes (VmHWM), KiB.
    pub hwm_kib: u64,
    /// Processes counted.
    pub processes: usize,
}

/// The fields after the `(comm)` of /proc/PID/stat, split on whitespace
/// (index 0 is the state, field 3 of proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// `pid` and every descendant alive now.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(p)
                .and_then(|f| f.get(1).cloned())
                .and_then(|s| s.parse::<u32>().ok())
            {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    // Bounded: each pid is visited once and /proc lists finitely many.
    while i < out.len() && out.len() < 100_000 {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied().filter(|p| *p != pid));
        }
        i += 1;
    }
    out
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `VmRSS` and `VmHWM` of a process in KiB, from one read of its status
/// file (two reads could straddle its exit); `None` once it is gone.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Some((field("VmRSS:"), field("VmHWM:")))
}

/// CPU time and memory of `pid` and its descendants.
pub fn tree_stat(pid: u32) -> TreeStat {
    let ticks = clock_ticks();
    let mut s = TreeStat::default();
    for p in tree(pid) {
        let Some(f) = stat_fields(p) else { continue };
        // utime and stime are fields 14 and 15 of proc(5).
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let Some((rss, hwm)) = memory_kib(p) else {
            continue;
        };
        s.cpu_secs += (t(11) + t(12)) as f64 / ticks;
        s.system_secs += t(12) as f64 / ticks;
        s.rss_kib += rss;
        s.hwm_kib += hwm;
        s.processes += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_and_memory() {
        let s = tree_stat(std::process::id());
        assert!(s.processes >= 1);
        assert!(s.system_secs <= s.cpu_secs);
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
