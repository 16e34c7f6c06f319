//! Reports: the server's CPU and memory from /proc, latency percentiles, the error tally,
//! and one run's output as indented human lines or one `--json` object.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use crate::phase::Measured;
use crate::Args;

/// Kernel clock ticks per second in /proc/PID/stat (USER_HZ: 100 on mainstream Linux).
const CLK_TCK: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime of every thread, seconds.
    pub cpu_s: f64,
    /// Resident memory now (VmRSS), KiB.
    pub rss_kb: u64,
    /// Peak resident memory since the process started (VmHWM), KiB.
    pub hwm_kb: u64,
    /// Threads of the process now.
    pub threads: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status; None when the process is gone (or not Linux).
pub fn proc_sample(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name come fields 3 (state) onwards; utime and stime
    // are fields 14 and 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        let line = status.lines().find_map(|l| l.strip_prefix(key));
        line.and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_s: (tick(11)? + tick(12)?) as f64 / CLK_TCK,
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        threads: field("Threads:"),
    })
}

/// The whole machine's CPU time so far from /proc/stat, in ticks: `(stolen, all)`, where
/// stolen is time this virtual machine's CPUs were ready to run but the host ran something
/// else. None where there is no /proc/stat.
pub type MachineTicks = Option<(u64, u64)>;

/// Reads [`MachineTicks`] now.
pub fn machine_ticks() -> MachineTicks {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// Stolen time between readings as a percentage of all CPU time: sums the differences of
/// consecutive `(before, after)` pairs; None when any reading is missing or no time passed.
pub fn stolen_percent(spans: &[(MachineTicks, MachineTicks)]) -> Option<f64> {
    let (mut stolen, mut all) = (0, 0);
    for span in spans {
        let ((s0, a0), (s1, a1)) = (span.0?, span.1?);
        stolen += s1.saturating_sub(s0);
        all += a1.saturating_sub(a0);
    }
    (all > 0).then(|| stolen as f64 * 100.0 / all as f64)
}

/// One reading of every process in `pids`, summed (CPU, memory, threads); None when any of
/// them is gone, or when `pids` is empty.
pub fn proc_total(pids: &[u32]) -> Option<ProcSample> {
    let mut total: Option<ProcSample> = None;
    for &pid in pids {
        let s = proc_sample(Some(pid))?;
        let t = total.get_or_insert_with(ProcSample::default);
        t.cpu_s += s.cpu_s;
        t.rss_kb += s.rss_kb;
        t.hwm_kb += s.hwm_kb;
        t.threads += s.threads;
    }
    total
}

/// A report value: printed as JSON with `--json`, as indented lines otherwise.
pub enum J {
    /// A number, rounded to 4 decimals in JSON (`null` when not finite).
    Num(f64),
    /// A count.
    Int(u64),
    /// Text.
    Str(String),
    /// Named values in order.
    Obj(Vec<(&'static str, J)>),
    /// Values in order (per server, say).
    Arr(Vec<J>),
}

impl fmt::Display for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            J::Num(x) if x.is_finite() => write!(f, "{}", (x * 1e4).round() / 1e4),
            J::Num(_) => f.write_str("null"),
            J::Int(n) => write!(f, "{n}"),
            J::Str(s) => write!(f, "{s:?}"), // Rust's escapes are JSON's for printable text
            J::Obj(kv) => {
                f.write_str("{")?;
                for (i, (k, v)) in kv.iter().enumerate() {
                    write!(f, "{}\"{k}\":{v}", if i > 0 { "," } else { "" })?;
                }
                f.write_str("}")
            }
            J::Arr(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    write!(f, "{}{v}", if i > 0 { "," } else { "" })?;
                }
                f.write_str("]")
            }
        }
    }
}

impl J {
    /// A number, or "not measured" when it could not be read (no /proc, say).
    pub fn measured(value: Option<f64>) -> J {
        value.map_or_else(|| J::Str("not measured".into()), J::Num)
    }

    /// Human lines: an object of plain values on one line, deeper objects indented.
    pub fn lines(kv: &[(&'static str, J)], depth: usize, out: &mut Vec<String>) {
        let plain = |v: &J| match v {
            J::Num(x) if x.abs() >= 100.0 => format!("{x:.0}"),
            J::Num(x) => format!("{x:.3}"),
            J::Str(s) => s.clone(),
            v => v.to_string(),
        };
        for (k, v) in kv {
            let pad = "  ".repeat(depth);
            match v {
                J::Obj(inner) if inner.iter().any(|(_, v)| matches!(v, J::Obj(_))) => {
                    out.push(format!("{pad}{k}:"));
                    J::lines(inner, depth + 1, out);
                }
                J::Obj(inner) => {
                    let items: Vec<String> = inner
                        .iter()
                        .map(|(k, v)| format!("{k} {}", plain(v)))
                        .collect();
                    out.push(format!("{pad}{k}: {}", items.join(", ")));
                }
                J::Arr(items) => {
                    out.push(format!("{pad}{k}:"));
                    for (i, v) in items.iter().enumerate() {
                        let item = match v {
                            J::Obj(inner) => inner
                                .iter()
                                .map(|(k, v)| format!("{k} {}", plain(v)))
                                .collect::<Vec<_>>()
                                .join(", "),
                            v => plain(v),
                        };
                        out.push(format!("{pad}  [{i}] {item}"));
                    }
                }
                v => out.push(format!("{pad}{k}: {}", plain(v))),
            }
        }
    }
}

/// Latency samples in nanoseconds → percentiles in microseconds.
pub fn latency(samples: &mut [u64]) -> J {
    samples.sort_unstable();
    let pick = |p: f64| {
        let i = ((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |&ns| ns as f64 / 1e3)
    };
    let mean = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64 / 1e3;
    let names = [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p999", 0.999),
        ("max", 1.0),
    ];
    let mut kv: Vec<_> = names.iter().map(|&(k, p)| (k, J::Num(pick(p)))).collect();
    kv.push(("mean", J::Num(mean)));
    J::Obj(kv)
}

/// The phase's outcome and timing, and the server's CPU and memory per unit of work (with
/// several `--server-pid`s: their total, then each server's own as `servers`, with the
/// units each one's clients saw when `local` gives them).
pub fn phase_report(m: &Measured, units: u64, local: Option<&[u64]>) -> Vec<(&'static str, J)> {
    let mut kv = vec![
        ("outcome", J::Str(m.outcome.into())),
        ("setup_s", J::Num(m.setup_s)),
        ("wall_s", J::Num(m.wall_s)),
        ("generator_cpu_s", J::Num(m.generator_cpu_s)),
    ];
    if let (Some(b), Some(e)) = (m.before, m.after) {
        let cpu = e.cpu_s - b.cpu_s;
        kv.push((
            "server",
            J::Obj(vec![
                ("cpu_s", J::Num(cpu)),
                ("cpu_us_per_unit", J::Num(cpu * 1e6 / units.max(1) as f64)),
                ("cpu_util", J::Num(cpu / m.wall_s.max(1e-9))),
                ("rss_before_kb", J::Int(b.rss_kb)),
                ("rss_end_kb", J::Int(e.rss_kb)),
                ("rss_peak_kb", J::Int(e.hwm_kb)),
                ("rss_max_sampled_kb", J::Int(m.rss_max_kb)),
                ("threads", J::Int(e.threads)),
            ]),
        ));
    }
    if m.per_server.len() > 1 {
        let each = m.per_server.iter().enumerate().map(|(i, (pid, b, e))| {
            let mut o = vec![("pid", J::Int(u64::from(*pid)))];
            if let (Some(b), Some(e)) = (b, e) {
                let cpu = e.cpu_s - b.cpu_s;
                o.extend([
                    ("cpu_s", J::Num(cpu)),
                    ("cpu_us_per_unit", J::Num(cpu * 1e6 / units.max(1) as f64)),
                    ("cpu_util", J::Num(cpu / m.wall_s.max(1e-9))),
                ]);
                if let Some(&n) = local.and_then(|l| l.get(i)) {
                    o.extend([
                        ("local_units", J::Int(n)),
                        ("cpu_us_per_local_unit", J::Num(cpu * 1e6 / n.max(1) as f64)),
                    ]);
                }
                o.push(("rss_peak_kb", J::Int(e.hwm_kb)));
            }
            J::Obj(o)
        });
        kv.push(("servers", J::Arr(each.collect())));
    }
    kv
}

/// Prints one run: JSON on stdout with `--json` (the human lines then go to stderr).
pub fn emit(a: &Args, title: String, mut kv: Vec<(&'static str, J)>) {
    let mut lines = vec![title];
    J::lines(&kv, 1, &mut lines);
    for l in &lines {
        if a.json {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
    if a.json {
        kv.insert(
            0,
            (
                "scenario",
                J::Str(format!("{:?}", a.scenario).to_lowercase()),
            ),
        );
        kv.push(("label", J::Str(a.label.clone())));
        println!("{}", J::Obj(kv));
    }
}

/// Errors seen, grouped by text with digits folded to `#`.
#[derive(Default)]
pub struct Errors(RefCell<BTreeMap<String, u64>>);

impl Errors {
    /// Counts one error: `what` failed with `e`.
    pub fn note(&self, what: &str, e: impl fmt::Display) {
        let text = format!("{what}: {e}");
        let key = text
            .chars()
            .take(120)
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *self.0.borrow_mut().entry(key).or_insert(0) += 1;
    }

    /// All errors as one text: `N× text; …`, or `none`.
    pub fn json(&self) -> J {
        let all = self.0.borrow();
        let text: Vec<String> = all.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        J::Str(if text.is_empty() {
            "none".into()
        } else {
            text.join("; ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stolen_time_sums_every_span_and_needs_every_reading() {
        let spans = [
            (Some((10, 1_000)), Some((20, 2_000))),
            (Some((20, 2_000)), Some((50, 3_000))),
        ];
        assert_eq!(stolen_percent(&spans), Some(2.0));
        assert_eq!(stolen_percent(&[(Some((0, 0)), None)]), None);
        assert_eq!(stolen_percent(&[(Some((5, 7)), Some((5, 7)))]), None);
        #[cfg(target_os = "linux")]
        {
            let (stolen, all) = machine_ticks().expect("/proc/stat on Linux");
            assert!(stolen <= all && all > 0, "{stolen} of {all}");
        }
    }
}
