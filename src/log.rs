//! Logging in runc's shape: `--log FILE` gets one line per message, `--log-format json` makes it
//! `{"level":…,"msg":…,"time":…}` (podman shows `msg`), and errors also go to stderr.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    path: Option<String>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn init(path: Option<String>, format: Format, debug: bool) {
    let _ = LOGGER.set(Logger {
        path,
        format,
        debug,
    });
}

fn write(level: &str, msg: &str) {
    let Some(l) = LOGGER.get() else { return };
    let Some(path) = &l.path else { return };
    let line = match l.format {
        Format::Json => format!(
            "{}\n",
            serde_json::json!({"level": level, "msg": msg, "time": rfc3339_now()})
        ),
        Format::Text => format!("time=\"{}\" level={level} msg={msg:?}\n", rfc3339_now()),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// An error: to the log file and to stderr, cut short if a value made it huge.
pub fn error(msg: &str) {
    let msg = &ferrun_plans::clip(msg, 4096);
    write("error", msg);
    eprintln!("ferrun: {msg}");
}

/// A warning: to the log file and to stderr, cut short if a value made it huge.
pub fn warn(msg: &str) {
    let msg = &ferrun_plans::clip(msg, 4096);
    write("warning", msg);
    eprintln!("ferrun: warning: {msg}");
}

/// Debug detail, only with `--debug`.
pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        write("debug", msg);
        eprintln!("ferrun: debug: {msg}");
    }
}

/// Now, as `2026-11-29T02:47:19.123456789Z`.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_795_920_439, 5),
            "2026-11-29T02:47:19.000000005Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
