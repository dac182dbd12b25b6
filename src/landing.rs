//! The landing page: a self-contained HTML table of every job (no external assets).

use std::fmt::Write as _;

use crate::parse;
use crate::state::Store;
use crate::status::Status;
use crate::telemetry::{REVISION, VERSION};

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans KR",sans-serif;margin:1.5rem;color:#1d2530;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}
.sub{color:#5b6775;margin-bottom:1rem}
nav a{margin-right:1rem}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001;margin-bottom:1.5rem}
th,td{padding:.4rem .6rem;border-bottom:1px solid #e4e7eb;text-align:left;font-size:.9rem;vertical-align:middle}
th{background:#eef1f4;font-weight:600}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.7rem;font-size:.8rem;font-weight:600;color:#fff}
.s-pending{background:#8792a2}.s-running{background:#2f6fde}.s-completed{background:#1f9d55}
.s-completed_with_warnings{background:#c98a00}.s-failed{background:#d2322d}.s-cancelled{background:#6b4fbb}.s-unknown{background:#444}
.bar{width:9rem;height:.8rem;background:#e4e7eb;border-radius:.4rem;overflow:hidden;display:inline-block;vertical-align:middle}
.bar span{display:block;height:100%;background:#2f6fde}
.pct{font-variant-numeric:tabular-nums;margin-left:.4rem}
.down{color:#d2322d;font-weight:600}.up{color:#1f9d55}
.msg{max-width:28rem;overflow-wrap:anywhere;color:#3b4654}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
"#;

/// Appends `text` escaped for HTML text and attribute values.
fn esc(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn time_cell(out: &mut String, unix: Option<f64>) {
    match unix.and_then(|t| chrono::DateTime::from_timestamp(t.floor() as i64, 0)) {
        Some(t) => {
            let _ = write!(
                out,
                "<td class=num>{}</td>",
                t.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        None => out.push_str("<td class=num>-</td>"),
    }
}

fn status_badge(out: &mut String, status: Status, raw: &str) {
    let _ = write!(out, "<span class=\"badge s-{0}\" title=\"", status.as_str());
    esc(out, raw);
    let _ = write!(out, "\">{}</span>", status.as_str());
}

/// Renders the page; called per request, not on the /metrics path.
pub fn page(store: &Store) -> String {
    let jobs = store.jobs();
    let targets = store.targets();
    let mut out = String::with_capacity(4096 + jobs.len() * 512);
    out.push_str("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>");
    out.push_str("<meta name=viewport content=\"width=device-width, initial-scale=1\">");
    out.push_str("<meta http-equiv=refresh content=10><title>backup-exporter</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>");
    let _ = write!(
        out,
        "<h1>backup-exporter</h1><div class=sub>version {VERSION} (revision {REVISION}) · {} jobs · {} targets · this page reloads every 10 s</div>",
        jobs.len(),
        targets.len()
    );
    out.push_str("<nav><a href=\"/metrics\">Metrics</a><a href=\"/-/healthy\">Health</a><a href=\"/-/ready\">Readiness</a></nav>");

    out.push_str("<h2>Jobs</h2><table><thead><tr><th>System</th><th>Upstream</th><th>Server</th><th>Job</th><th>Volume</th><th>Operation</th><th>Status</th><th>Progress</th><th>Elapsed</th><th>Start</th><th>End</th><th>Last success</th><th>Message</th></tr></thead><tbody>");
    if jobs.is_empty() {
        out.push_str(
            "<tr><td colspan=13>No jobs yet: the first polls may still be running.</td></tr>",
        );
    }
    for job in &jobs {
        let r = &job.record;
        let k = &r.key;
        out.push_str("<tr>");
        for cell in [
            k.system.as_str(),
            &*k.upstream,
            &k.server,
            &k.job_name,
            &k.volume,
            &k.operation,
        ] {
            out.push_str("<td>");
            esc(&mut out, cell);
            out.push_str("</td>");
        }
        out.push_str("<td>");
        status_badge(&mut out, r.status, &r.raw_status);
        if !job.target_up {
            out.push_str(" <span class=down title=\"the last poll failed; these are the last known values\">stale</span>");
        }
        out.push_str("</td><td class=num>");
        match r.progress {
            Some(p) => {
                let pct = (p * 100.0).clamp(0.0, 100.0);
                let _ = write!(out, "<span class=bar><span style=\"width:{pct:.1}%\"></span></span><span class=pct>{pct:.0}%</span>");
            }
            None => out.push('-'),
        }
        out.push_str("</td><td class=num>");
        match r.elapsed_seconds {
            Some(e) => esc(&mut out, &parse::format_duration(e.floor())),
            None => out.push('-'),
        }
        out.push_str("</td>");
        time_cell(&mut out, r.start_time);
        time_cell(&mut out, r.end_time);
        time_cell(&mut out, job.last_success);
        out.push_str("<td class=msg>");
        esc(&mut out, r.message.as_deref().unwrap_or("-"));
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Targets</h2><table><thead><tr><th>Upstream</th><th>Kind</th><th>Target</th><th>State</th><th>Last success</th></tr></thead><tbody>");
    for t in &targets {
        out.push_str("<tr><td>");
        esc(&mut out, &t.target.upstream);
        let _ = write!(out, "</td><td>{}</td><td>", t.target.kind.as_str());
        esc(&mut out, &t.target.target);
        out.push_str("</td><td>");
        out.push_str(match (t.polled, t.up) {
            (false, _) => "waiting for first poll",
            (true, true) => "<span class=up>up</span>",
            (true, false) => "<span class=down>down</span>",
        });
        out.push_str("</td>");
        time_cell(&mut out, t.last_success);
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        let mut s = String::new();
        esc(&mut s, "<script>alert('x') & \"y\"</script>");
        assert_eq!(
            s,
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
