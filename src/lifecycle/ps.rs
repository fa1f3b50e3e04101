//! `ferrun ps`: the container's processes, as host pids or `ps` lines.

use super::common::live;
use crate::bail;
use crate::error::{Context, Result};
use crate::state::Store;

/// `ferrun ps`: the container's processes, as a JSON list of host pids or as the host's `ps`
/// output (`-ef` unless other arguments are given) cut to the container's lines.
pub fn ps(store: &Store, id: &str, format: &str, args: &[String]) -> Result<String> {
    let (_, _, c) = live(store, id, "list the processes of")?;
    let pids = c.pids();
    match format {
        "json" => Ok(serde_json::to_string(&pids).unwrap_or_default() + "\n"),
        "table" => {
            let args: Vec<String> = if args.is_empty() {
                vec!["-ef".into()]
            } else {
                args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .ctx(|| "run ps".into())?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let Some(col) = header.split_whitespace().position(|f| f == "PID") else {
                bail!("ps {}: no PID column in its output", args.join(" "));
            };
            let mut res = format!("{header}\n");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p: i32| pids.contains(&p)) {
                    res.push_str(l);
                    res.push('\n');
                }
            }
            Ok(res)
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
}
