//! `--profile`: where a `run`, `create` or `exec` spends its time. The runtime marks the end of
//! each of its phases and the start of each host step; the container process stamps each of its
//! steps on the page it shares with the parent (no syscall, no allocation); the report is the
//! plan's listing with a duration on every step, and the phases, which add up to the whole run
//! from ferrun's first instruction (before its re-exec) to its last. Off, it costs nothing.

use ferrun_executor::now_ns;
use ferrun_plans::Plan;
use std::sync::Mutex;

/// Where the first ferrun process started, kept across the re-exec.
pub const T0_ENV: &str = "FERRUN_PROFILE_T0";

struct Profile {
    json: bool,
    t0: u64,
    /// Phase names with the time each ended.
    marks: Vec<(&'static str, u64)>,
    /// Host steps: (listing number, text, start).
    host: Vec<(usize, String, u64)>,
    /// Container steps: (listing number, text, start, end).
    container: Vec<(usize, String, u64, u64)>,
}

static PROFILE: Mutex<Option<Profile>> = Mutex::new(None);

fn with(f: impl FnOnce(&mut Profile)) {
    if let Ok(mut g) = PROFILE.lock()
        && let Some(p) = g.as_mut()
    {
        f(p);
    }
}

/// Turns profiling on; `t0` is when the first ferrun process started.
pub fn start(json: bool, t0: u64) {
    if let Ok(mut g) = PROFILE.lock() {
        *g = Some(Profile {
            json,
            t0,
            marks: Vec::new(),
            host: Vec::new(),
            container: Vec::new(),
        });
    }
}

pub fn enabled() -> bool {
    PROFILE.lock().is_ok_and(|g| g.is_some())
}

/// The phase under way ends now, under `name`.
pub fn mark(name: &'static str) {
    with(|p| p.marks.push((name, now_ns())));
}

/// Host step `number` of the listing starts now.
pub fn host_step(number: usize, text: String) {
    with(|p| p.host.push((number, short(&text), now_ns())));
}

/// The container steps' start stamps (0 where a step was not reached) and the time the last one
/// reached ended (its report, or the end of `execve`).
pub fn container(plan: &Plan, stamps: &[u64], end: u64) {
    with(|p| {
        let reached: Vec<(usize, u64)> = stamps
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 0)
            .map(|(i, s)| (i, *s))
            .collect();
        for (k, (i, start)) in reached.iter().enumerate() {
            let stop = reached.get(k + 1).map_or(end, |(_, s)| *s);
            let text = plan
                .steps
                .get(*i)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let text = short(&text);
            p.container
                .push((plan.step_number(*i), text, *start, stop.max(*start)));
        }
    });
}

/// A listing line cut to the report's column.
fn short(text: &str) -> String {
    if text.chars().count() <= 80 {
        return text.to_string();
    }
    let mut s: String = text.chars().take(79).collect();
    s.push('…');
    s
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The report (text or JSON), once the command is over; `None` when not profiling.
pub fn report() -> Option<String> {
    let end = now_ns();
    let g = PROFILE.lock().ok()?;
    let p = g.as_ref()?;
    let mut phases = Vec::new();
    let mut from = p.t0;
    for (name, at) in &p.marks {
        phases.push((*name, at.saturating_sub(from)));
        from = *at;
    }
    phases.push(("teardown", end.saturating_sub(from)));
    let total = end.saturating_sub(p.t0);
    // A host step lasts until the next one starts, or until the phase it is in ends.
    let host: Vec<(usize, &str, u64)> = p
        .host
        .iter()
        .enumerate()
        .map(|(k, (n, text, start))| {
            let next = p.host.get(k + 1).map(|h| h.2);
            let phase_end = p.marks.iter().map(|m| m.1).find(|t| t >= start);
            let stop = match (next, phase_end) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => end,
            };
            (*n, text.as_str(), stop.saturating_sub(*start))
        })
        .collect();
    if p.json {
        let steps: Vec<serde_json::Value> = host
            .iter()
            .map(|(n, t, d)| serde_json::json!({"step": n, "where": "host", "text": t, "ms": ms(*d)}))
            .chain(p.container.iter().map(|(n, t, s, e)| {
                serde_json::json!({"step": n, "where": "container", "text": t, "ms": ms(e - s)})
            }))
            .collect();
        let phases: Vec<serde_json::Value> = phases
            .iter()
            .map(|(name, d)| serde_json::json!({"phase": name, "ms": ms(*d)}))
            .collect();
        let doc = serde_json::json!({"phases": phases, "steps": steps, "total_ms": ms(total)});
        return Some(format!("{doc}\n"));
    }
    let mut out = String::from("profile (ms):\n");
    for (n, t, d) in &host {
        out.push_str(&format!("  {n:3}  {t:<80} {:8.3}\n", ms(*d)));
    }
    for (n, t, s, e) in &p.container {
        out.push_str(&format!("  {n:3}  {t:<80} {:8.3}\n", ms(e - s)));
    }
    out.push_str("phases:\n");
    for (name, d) in &phases {
        out.push_str(&format!("       {name:<80} {:8.3}\n", ms(*d)));
    }
    out.push_str(&format!("       {:<80} {:8.3}\n", "total", ms(total)));
    Some(out)
}
