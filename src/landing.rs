//! The landing page, built for triage: failed jobs first, counts per status that filter the
//! table, the targets whose polls fail, relative times; beside the failures what the
//! discovering upstreams list: servers without a backup job and disconnected agents
//! ("Unprotected"), repositories and licences ("Capacity"), from the inventory book's
//! summaries (made once per listing, bounded). Self-contained (inline CSS and JS, no external
//! assets) and rendered per request from the store's views; it reads without JavaScript.
//!
//! Auto-refresh: a script reloads the page every 10 s, but not while someone types in the
//! filter (4 s after the last key), selects text or has the tab hidden; the filters live in
//! `location.hash` (`#status=failed&q=db`), which a reload keeps. Without JavaScript a
//! `<noscript>` meta refresh does the reloading.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{Datelike, Timelike};

use crate::clock;
use crate::exposition::{JobView, TargetView};
use crate::inventory::{Bounded, Listing, Summary};
use crate::shard::Shard;
use crate::status::Status;
use crate::telemetry::{REVISION, VERSION};

/// Statuses in the order a person triaging wants them: what needs action first. Every
/// status once (a test checks it against `Status::ALL`).
const TRIAGE_ORDER: [Status; Status::ALL.len()] = [
    Status::Failed,
    Status::Unknown,
    Status::Running,
    Status::Pending,
    Status::Cancelled,
    Status::CompletedWithWarnings,
    Status::Completed,
];

/// The position of `status` in [`TRIAGE_ORDER`].
fn triage_rank(status: Status) -> usize {
    TRIAGE_ORDER
        .iter()
        .position(|s| *s == status)
        .unwrap_or(TRIAGE_ORDER.len())
}

/// The job table's columns: header (also the label of a card line) and width. The last
/// column takes what is left.
const JOB_COLUMNS: [(&str, &str); 13] = [
    ("Status", "8%"),
    ("System", "5%"),
    ("Upstream", "7.5%"),
    ("Server", "8.5%"),
    ("Job", "10.5%"),
    ("Volume", "5.5%"),
    ("Operation", "7%"),
    ("Progress", "7%"),
    ("Elapsed", "6.5%"),
    ("Start", "5.5%"),
    ("End", "5.5%"),
    ("Last success", "6%"),
    ("Reason / last message", ""),
];

const FAILING_COLUMNS: [(&str, &str); 7] = [
    ("System", "6%"),
    ("Upstream", "14%"),
    ("Kind", "10%"),
    ("Target", "26%"),
    ("Reason", "14%"),
    ("Since", "15%"),
    ("Last success", ""),
];

const TARGET_COLUMNS: [(&str, &str); 6] = [
    ("System", "6%"),
    ("Upstream", "16%"),
    ("Kind", "11%"),
    ("Target", "33%"),
    ("State", "16%"),
    ("Last success", ""),
];

const REPOSITORY_COLUMNS: [(&str, &str); 4] = [
    ("Upstream", "22%"),
    ("Repository", "28%"),
    ("Used / size", "28%"),
    ("Free", ""),
];

const LICENCE_COLUMNS: [(&str, &str); 4] = [
    ("Upstream", "22%"),
    ("Licence", "28%"),
    ("Expires", "28%"),
    ("Copies used", ""),
];

/// A repository with less free space than this share of its size is flagged.
const LOW_FREE_RATIO: f64 = 0.10;
/// A licence expiring within this many seconds (30 days) is flagged.
const EXPIRY_WARNING_SECONDS: f64 = 30.0 * 86_400.0;

/// Says so when no upstream discovers: the boxes are empty for want of a listing, not
/// because all is well.
const NO_LISTING: &str = "no upstream lists its servers: set discover: true";

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans KR",sans-serif;margin:1rem 1.5rem;color:#1d2530;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}
h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
.sub{color:#5b6775;margin-bottom:.4rem;overflow-wrap:anywhere}
.links a{margin-right:1rem}
.alarm{color:#b3261e;font-weight:600}
.tools{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;padding:.5rem 0;background:#f7f8fa}
.cnt{display:inline-flex;align-items:center;gap:.35rem;padding:.2rem .65rem;border:1px solid #cfd5dc;border-radius:1rem;background:#fff;color:#1d2530;text-decoration:none;font-size:.85rem;white-space:nowrap}
.cnt b{font-variant-numeric:tabular-nums}
.cnt.zero{opacity:.5}
.cnt.hot{background:#d2322d;border-color:#d2322d;color:#fff}
.cnt.hot .dot{background:#fff}
.cnt.on{outline:2px solid #1d2530;outline-offset:1px}
.dot{display:inline-block;width:.6rem;height:.6rem;border-radius:50%}
#q{flex:1 1 14rem;min-width:0;max-width:28rem;padding:.3rem .6rem;border:1px solid #cfd5dc;border-radius:.4rem;font:inherit;font-size:.9rem}
#shown{color:#5b6775;font-size:.85rem}
table{border-collapse:collapse;width:100%;table-layout:fixed;background:#fff;box-shadow:0 1px 2px #0001;margin-bottom:1.5rem}
th,td{padding:.35rem .45rem;border-bottom:1px solid #e4e7eb;text-align:left;font-size:.85rem;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f4;font-weight:600;font-size:.78rem}
tr[hidden]{display:none!important}
tr.f td{background:#fdf0ef}
tr.f td:first-child{box-shadow:inset 3px 0 #d2322d}
.failing{background:#fff;border-left:4px solid #d2322d;padding:.1rem .8rem .1rem;margin:.8rem 0 1rem;box-shadow:0 1px 2px #0001}
.failing h2{color:#b3261e;margin-top:.6rem}
.failing table{box-shadow:none;margin-bottom:.6rem}
.badge{display:inline-block;max-width:100%;padding:.1rem .5rem;border-radius:.7rem;font-size:.78rem;font-weight:600;color:#fff}
.s-pending{background:#8792a2}.s-running{background:#2f6fde}.s-completed{background:#1f9d55}
.s-completed_with_warnings{background:#c98a00}.s-failed{background:#d2322d}.s-cancelled{background:#6b4fbb}.s-unknown{background:#444}
.prog{display:flex;align-items:center;gap:.3rem}
.pbar{flex:1 1 auto;max-width:6rem;height:.7rem;background:#e4e7eb;border-radius:.35rem;overflow:hidden}
.pbar span{display:block;height:100%;background:#2f6fde}
.pct{flex:none}
.num{font-variant-numeric:tabular-nums}
.down{color:#d2322d;font-weight:600}.up{color:#1f9d55}
.why{color:#9b1c17}
.code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f6d5d3;border-radius:.25rem;padding:0 .25rem;margin-right:.3rem}
.muted{color:#5b6775}
.boxes{display:flex;flex-wrap:wrap;gap:0 1rem;margin:.8rem 0 1rem}
.box{flex:1 1 24rem;min-width:0;background:#fff;border-left:4px solid #1f9d55;padding:.1rem .8rem .4rem;box-shadow:0 1px 2px #0001;margin-bottom:.6rem}
.box.warn{border-left-color:#d2322d}
.box.none{border-left-color:#8792a2}
.box h2{margin-top:.6rem}
.box.warn h2{color:#b3261e}
.box h3{font-size:.9rem;margin:.6rem 0 .2rem;overflow-wrap:anywhere}
.box p{margin:.2rem 0;font-size:.85rem;overflow-wrap:anywhere}
.box table{box-shadow:none;margin-bottom:.4rem}
.names{margin:.1rem 0 .4rem;padding-left:1.2rem;font-size:.85rem;overflow-wrap:anywhere}
@media (min-width:700px){.tools{position:sticky;top:0;z-index:1}}
@media (max-width:699.98px){
body{margin:.75rem}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:auto}
table.cards{background:none;box-shadow:none}
table.cards thead,table.cards colgroup{display:none}
table.cards tr{background:#fff;margin-bottom:.6rem;border:1px solid #e4e7eb;border-radius:.4rem;padding:.3rem 0;box-shadow:0 1px 2px #0001}
table.cards td{border:0;padding:.15rem .6rem .15rem 7.4rem;position:relative;min-height:1.4rem}
table.cards td::before{position:absolute;left:.6rem;width:6.4rem;color:#5b6775;font-weight:600}
table.cards td:empty{display:none}
table.cards tr.empty td{padding-left:.6rem}
table.cards tr.empty td::before{content:none}
table.cards tr.f{background:#fdf0ef;border-color:#d2322d;border-left-width:4px}
table.cards tr.f td{background:none;box-shadow:none}
.failing{padding:.1rem .5rem}
.failing table.cards tr{border-color:#f0c4c1}
.box{padding:.1rem .5rem .4rem}
}
"#;

/// Relative times, the filters and the reload.
const SCRIPT: &str = r#"
(()=>{
const d=document,b=d.body,q=d.getElementById('q'),shown=d.getElementById('shown');
const rows=[...d.querySelectorAll('#jobs tbody tr[data-s]')],cnts=[...d.querySelectorAll('.cnt[data-status]')],stamps=[...d.querySelectorAll('[data-ts]')];
const loaded=Date.now(),skew=(+b.dataset.now||Date.now()/1000)*1000-Date.now();
let st='',texts=null,typed=0,timer=0;
const span=a=>a<60?Math.floor(a)+' s':a<3600?Math.floor(a/60)+' min':a<172800?Math.floor(a/3600)+' h':Math.floor(a/86400)+' d';
const rel=ts=>{const s=(Date.now()+skew)/1000-ts,a=Math.abs(s);return a<10?'just now':s>0?span(a)+' ago':'in '+span(a)};
const times=()=>{for(const t of stamps){const x=rel(+t.dataset.ts);if(t.textContent!==x)t.textContent=x}};
const read=()=>{const p=new URLSearchParams(location.hash.slice(1));st=p.get('status')||'';q.value=p.get('q')||''};
const save=()=>{const p=new URLSearchParams();if(st)p.set('status',st);if(q.value)p.set('q',q.value);const h=p.toString();history.replaceState(null,'',h?'#'+h:location.pathname+location.search)};
const apply=()=>{
const words=q.value.toLowerCase().split(/\s+/).filter(Boolean);
if(words.length&&!texts)texts=rows.map(r=>r.textContent.toLowerCase());
let n=0;
rows.forEach((r,i)=>{const ok=(!st||r.dataset.s===st)&&words.every(w=>texts[i].includes(w));r.hidden=!ok;if(ok)n++});
for(const a of cnts)a.classList.toggle('on',a.dataset.status===st);
shown.textContent=st||words.length?n+' of '+rows.length+' shown':'';
};
for(const a of cnts)a.addEventListener('click',e=>{e.preventDefault();st=a.dataset.status===st?'':a.dataset.status;save();apply()});
q.addEventListener('input',()=>{typed=Date.now();clearTimeout(timer);timer=setTimeout(()=>{save();apply()},150)});
addEventListener('hashchange',()=>{read();apply()});
read();apply();times();setInterval(times,5000);
const ss=f=>{try{return f(sessionStorage)}catch(e){}};
if(ss(s=>s.getItem('landing-focus'))){ss(s=>s.removeItem('landing-focus'));q.focus();q.setSelectionRange(q.value.length,q.value.length)}
setInterval(()=>{const t=Date.now();if(t-loaded<10000||d.hidden||t-typed<4000||String(getSelection()))return;if(d.activeElement===q)ss(s=>s.setItem('landing-focus','1'));location.reload()},1000);
})();
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

/// A status word that may break after its underscores (`completed_with_warnings`).
fn status_word(out: &mut String, status: Status) {
    for (i, part) in status.as_str().split('_').enumerate() {
        if i > 0 {
            out.push_str("_<wbr>");
        }
        out.push_str(part);
    }
}

/// `seconds` as a short span: "45 s", "3 min", "5 h", "2 d" (whole units, rounded down).
fn write_span(out: &mut String, seconds: f64) {
    let s = seconds.floor() as u64;
    let _ = match s {
        0..60 => write!(out, "{s} s"),
        60..3_600 => write!(out, "{} min", s / 60),
        3_600..172_800 => write!(out, "{} h", s / 3_600),
        _ => write!(out, "{} d", s / 86_400),
    };
}

/// `ts` relative to `now`: "just now", "3 min ago", "in 2 h". The page's script computes
/// the same text in the browser; this is what a reader without JavaScript sees.
fn write_relative(out: &mut String, ts: f64, now: f64) {
    let delta = now - ts;
    if delta.abs() < 10.0 {
        out.push_str("just now");
    } else if delta > 0.0 {
        write_span(out, delta);
        out.push_str(" ago");
    } else {
        out.push_str("in ");
        write_span(out, -delta);
    }
}

/// A point in time: relative text, the exact UTC time on hover, `data-ts` for the script.
/// "-" when absent or out of range.
fn write_time(out: &mut String, unix: Option<f64>, now: f64) {
    let Some(ts) = unix.filter(|t| t.is_finite()) else {
        out.push('-');
        return;
    };
    let secs = ts.floor() as i64;
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        out.push('-');
        return;
    };
    let _ = write!(
        out,
        "<span data-ts={secs} title=\"{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC\">",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    write_relative(out, ts, now);
    out.push_str("</span>");
}

/// A duration as the exposition's inputs write it: `HH:MM:SS`, `D.HH:MM:SS` past a day.
fn write_duration(out: &mut String, seconds: f64) {
    if !seconds.is_finite() || seconds < 0.0 {
        out.push('-');
        return;
    }
    let total = seconds.floor() as u64;
    let (days, rem) = (total / 86_400, total % 86_400);
    if days > 0 {
        let _ = write!(out, "{days}.");
    }
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    );
}

/// `<table>` with its column widths and header row; `class` names the table for the card
/// labels in [`write_card_labels`].
fn table_head(out: &mut String, id: &str, class: &str, columns: &[(&str, &str)]) {
    let _ = write!(out, "<table id={id} class=\"{class} cards\"><colgroup>");
    for (_, width) in columns {
        if width.is_empty() {
            out.push_str("<col>");
        } else {
            let _ = write!(out, "<col style=\"width:{width}\">");
        }
    }
    out.push_str("</colgroup><thead><tr>");
    for (name, _) in columns {
        let _ = write!(out, "<th scope=col>{name}</th>");
    }
    out.push_str("</tr></thead><tbody>");
}

/// Under 700 px each row is a card of "label: value" lines; the labels are the headers.
fn write_card_labels(out: &mut String, class: &str, columns: &[(&str, &str)]) {
    for (i, (name, _)) in columns.iter().enumerate() {
        let _ = write!(
            out,
            "table.{class} td:nth-child({})::before{{content:\"{name}\"}}",
            i + 1
        );
    }
}

fn td(out: &mut String, text: &str) {
    out.push_str("<td>");
    esc(out, text);
    out.push_str("</td>");
}

/// Where the page links to and whom it speaks for.
struct Context<'a> {
    /// This replica's shard: with more than one, the page says which shard it speaks for
    /// (its jobs and targets are this replica's only).
    shard: Shard,
    /// Where the exposition is served (`--web.telemetry-path`), for the page's link.
    telemetry_path: &'a str,
}

/// Renders the page from the store's views; called per request, not on the /metrics path.
pub fn page(
    mut jobs: Vec<JobView>,
    targets: &[TargetView],
    inventory: &[Arc<Summary>],
    shard: Shard,
    telemetry_path: &str,
) -> String {
    let cx = Context {
        shard,
        telemetry_path,
    };
    render(&mut jobs, targets, inventory, &cx, clock::unix_now())
}

fn render(
    jobs: &mut [JobView],
    targets: &[TargetView],
    inventory: &[Arc<Summary>],
    cx: &Context<'_>,
    now: f64,
) -> String {
    jobs.sort_unstable_by(|a, b| {
        let (ka, kb) = (&a.record.key, &b.record.key);
        triage_rank(a.record.status)
            .cmp(&triage_rank(b.record.status))
            .then_with(|| ka.upstream.cmp(&kb.upstream))
            .then_with(|| ka.server.cmp(&kb.server))
            .then_with(|| ka.job_name.cmp(&kb.job_name))
            .then_with(|| ka.cmp(kb))
    });
    let mut counts = [0usize; TRIAGE_ORDER.len()];
    for job in jobs.iter() {
        if let Some(n) = counts.get_mut(triage_rank(job.record.status)) {
            *n += 1;
        }
    }
    let failing = targets.iter().filter(|t| t.failure.is_some()).count();

    let mut out = String::with_capacity(16 * 1024 + jobs.len() * 700 + targets.len() * 400);
    out.push_str("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>");
    out.push_str("<meta name=viewport content=\"width=device-width, initial-scale=1\">");
    out.push_str("<noscript><meta http-equiv=refresh content=10></noscript>");
    out.push_str("<title>backup-exporter</title><style>");
    out.push_str(STYLE);
    out.push_str("@media (max-width:699.98px){");
    write_card_labels(&mut out, "jobs", &JOB_COLUMNS);
    write_card_labels(&mut out, "tfail", &FAILING_COLUMNS);
    write_card_labels(&mut out, "targets", &TARGET_COLUMNS);
    write_card_labels(&mut out, "repos", &REPOSITORY_COLUMNS);
    write_card_labels(&mut out, "lics", &LICENCE_COLUMNS);
    out.push_str("}</style></head>");
    let _ = write!(out, "<body data-now={}>", now.floor());

    let _ = write!(
        out,
        "<h1>backup-exporter</h1><div class=sub>version {VERSION} (revision {REVISION}) · {} jobs · {} targets",
        jobs.len(),
        targets.len()
    );
    if failing > 0 {
        let _ = write!(out, " · <span class=alarm>{failing} failing</span>");
    }
    if cx.shard.is_sharded() {
        let _ = write!(
            out,
            " · shard {} of {} (this replica's targets only)",
            cx.shard.index, cx.shard.total
        );
    }
    out.push_str(" · rendered ");
    write_time(&mut out, Some(now), now);
    out.push_str(" · reloads every 10 s, not while you type in the filter</div>");
    out.push_str("<nav class=links><a href=\"");
    esc(&mut out, cx.telemetry_path);
    out.push_str(
        "\">Metrics</a><a href=\"/-/healthy\">Health</a><a href=\"/-/ready\">Readiness</a></nav>",
    );

    // Counts per status, each a filter of the job table, and the text filter.
    out.push_str("<div class=tools role=group aria-label=\"filter jobs\">");
    let _ = write!(
        out,
        "<a class=cnt href=\"#\" data-status=\"\" data-n={0}>all <b>{0}</b></a>",
        jobs.len()
    );
    for (status, n) in TRIAGE_ORDER.into_iter().zip(counts) {
        let s = status.as_str();
        let class = match (status, n) {
            (_, 0) => " zero",
            (Status::Failed, _) => " hot",
            _ => "",
        };
        let _ = write!(
            out,
            "<a class=\"cnt{class}\" href=\"#status={s}\" data-status={s} data-n={n}><i class=\"dot s-{s}\"></i>{s} <b>{n}</b></a>"
        );
    }
    out.push_str("<input type=search id=q placeholder=\"filter: server, job, reason…\" aria-label=\"filter jobs by any text\" autocomplete=off><span id=shown></span></div>");

    if failing > 0 {
        let _ = write!(
            out,
            "<section class=failing><h2>Targets failing: {failing}</h2>"
        );
        table_head(&mut out, "failing", "tfail", &FAILING_COLUMNS);
        for t in targets {
            let Some((outcome, since)) = t.failure else {
                continue;
            };
            out.push_str("<tr class=f>");
            td(&mut out, t.target.system.as_str());
            td(&mut out, &t.target.upstream);
            td(&mut out, t.target.kind.as_str());
            td(&mut out, &t.target.target);
            let _ = write!(
                out,
                "<td class=why><b>{}</b></td><td>since ",
                outcome.as_str()
            );
            write_time(&mut out, Some(since), now);
            out.push_str("</td><td>");
            match t.last_success {
                Some(_) => write_time(&mut out, t.last_success, now),
                None => out.push_str("never"),
            }
            out.push_str("</td></tr>");
        }
        out.push_str("</tbody></table></section>");
    }

    out.push_str("<div class=boxes>");
    unprotected_box(&mut out, inventory);
    capacity_box(&mut out, inventory, now);
    out.push_str("</div>");

    out.push_str("<h2>Jobs</h2>");
    table_head(&mut out, "jobs", "jobs", &JOB_COLUMNS);
    if jobs.is_empty() {
        let _ = write!(
            out,
            "<tr class=empty><td colspan={}>No jobs yet: the first polls may still be running.</td></tr>",
            JOB_COLUMNS.len()
        );
    }
    for job in jobs.iter() {
        job_row(&mut out, job, now);
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Targets</h2>");
    table_head(&mut out, "targets", "targets", &TARGET_COLUMNS);
    for t in targets {
        out.push_str("<tr>");
        td(&mut out, t.target.system.as_str());
        td(&mut out, &t.target.upstream);
        td(&mut out, t.target.kind.as_str());
        td(&mut out, &t.target.target);
        out.push_str("<td>");
        match (t.polled, t.up, t.failure) {
            (false, _, _) => out.push_str("waiting for first poll"),
            (true, true, _) => out.push_str("<span class=up>up</span>"),
            (true, false, Some((outcome, _))) => {
                let _ = write!(out, "<span class=down>down</span> {}", outcome.as_str());
            }
            (true, false, None) => out.push_str("<span class=down>down</span>"),
        }
        out.push_str("</td><td>");
        write_time(&mut out, t.last_success, now);
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table><script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>\n");
    out
}

/// `bytes` in binary units: "512 B", "1.5 GiB".
fn write_bytes(out: &mut String, bytes: Option<f64>) {
    let Some(mut value) = bytes.filter(|b| b.is_finite() && *b >= 0.0) else {
        out.push('-');
        return;
    };
    let mut unit = "B";
    for next in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    let _ = if unit == "B" {
        write!(out, "{value:.0} B")
    } else {
        write!(out, "{value:.1} {unit}")
    };
}

/// An upstream's heading in a box: its name and system.
fn upstream_heading(out: &mut String, s: &Summary) {
    out.push_str("<h3>");
    esc(out, &s.upstream);
    out.push_str(" <span class=muted>(");
    esc(out, &s.system);
    out.push_str(")</span></h3>");
}

/// Why an upstream that discovers has nothing to show here yet; `None` once listed.
fn not_listed(s: &Summary) -> Option<&'static str> {
    match s.listing {
        Listing::Listed => None,
        Listing::Pending => Some("its first listing has not finished yet"),
        Listing::Elsewhere => {
            Some("its inventory is exported by the replica of the shard that owns the upstream")
        }
    }
}

/// "what: N of M" and the names, the first [`crate::inventory::MAX_SUMMARY_ITEMS`] of them.
fn name_list(out: &mut String, what: &str, names: &Bounded<String>, of: usize) {
    let _ = write!(
        out,
        "<p><span class=alarm>{what}: {} of {of}</span></p><ul class=names>",
        names.total
    );
    for name in &names.shown {
        out.push_str("<li>");
        esc(out, name);
        out.push_str("</li>");
    }
    if names.total > names.shown.len() {
        let _ = write!(
            out,
            "<li class=muted>and {} more</li>",
            names.total - names.shown.len()
        );
    }
    out.push_str("</ul>");
}

/// Servers without a backup job and disconnected agents, per discovering upstream.
fn unprotected_box(out: &mut String, inventory: &[Arc<Summary>]) {
    let count: usize = inventory
        .iter()
        .filter(|s| s.listing == Listing::Listed)
        .map(|s| s.unprotected.total + s.disconnected.total)
        .sum();
    let class = match (inventory.is_empty(), count) {
        (true, _) => "none",
        (false, 0) => "ok",
        _ => "warn",
    };
    let _ = write!(
        out,
        "<section class=\"box {class}\" id=unprotected><h2>Unprotected: {count}</h2>"
    );
    if inventory.is_empty() {
        let _ = write!(out, "<p class=muted>{NO_LISTING}</p>");
    }
    for s in inventory {
        upstream_heading(out, s);
        if let Some(why) = not_listed(s) {
            let _ = write!(out, "<p class=muted>{why}</p>");
            continue;
        }
        if s.unprotected.total > 0 {
            name_list(
                out,
                "servers without a backup job",
                &s.unprotected,
                s.servers,
            );
        }
        if s.disconnected.total > 0 {
            name_list(out, "agents disconnected", &s.disconnected, s.agents);
        }
        if s.unprotected.total == 0 && s.disconnected.total == 0 {
            let _ = write!(
                out,
                "<p class=up>{} servers, each with a backup job; {} agents, all connected</p>",
                s.servers, s.agents
            );
        }
    }
    out.push_str("</section>");
}

/// Repositories (used, size, free; flagged under 10 % free) and licences (expiry, flagged
/// within 30 days; copies, flagged when all are used) of every discovering upstream.
fn capacity_box(out: &mut String, inventory: &[Arc<Summary>], now: f64) {
    let low = |r: &crate::inventory::Repository| r.free_ratio().is_some_and(|f| f < LOW_FREE_RATIO);
    let expiring =
        |l: &crate::inventory::Licence| l.expiry.is_some_and(|e| e - now < EXPIRY_WARNING_SECONDS);
    let full = |l: &crate::inventory::Licence| match (l.used, l.total) {
        (Some(used), Some(total)) => total > 0.0 && used >= total,
        _ => false,
    };
    let flagged: usize = inventory
        .iter()
        .filter(|s| s.listing == Listing::Listed)
        .map(|s| {
            s.repositories.shown.iter().filter(|r| low(r)).count()
                + s.licences
                    .shown
                    .iter()
                    .filter(|l| expiring(l) || full(l))
                    .count()
        })
        .sum();
    let class = match (inventory.is_empty(), flagged) {
        (true, _) => "none",
        (false, 0) => "ok",
        _ => "warn",
    };
    let _ = write!(
        out,
        "<section class=\"box {class}\" id=capacity><h2>Capacity"
    );
    if flagged > 0 {
        let _ = write!(out, ": {flagged} flagged");
    }
    out.push_str("</h2>");
    if inventory.is_empty() {
        let _ = write!(out, "<p class=muted>{NO_LISTING}</p>");
    }
    for s in inventory {
        if let Some(why) = not_listed(s) {
            upstream_heading(out, s);
            let _ = write!(out, "<p class=muted>{why}</p>");
        }
    }
    let listed = || inventory.iter().filter(|s| s.listing == Listing::Listed);
    if listed().any(|s| s.repositories.total > 0) {
        table_head(out, "repositories", "repos", &REPOSITORY_COLUMNS);
        for s in listed() {
            for r in &s.repositories.shown {
                out.push_str(if low(r) { "<tr class=f>" } else { "<tr>" });
                td(out, &s.upstream);
                out.push_str("<td>");
                esc(out, &r.name);
                let place: Vec<&str> = [r.center.as_str(), r.kind.as_str()]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect();
                if !place.is_empty() {
                    out.push_str(" <span class=muted>");
                    esc(out, &place.join(" · "));
                    out.push_str("</span>");
                }
                out.push_str("</td><td class=num>");
                write_bytes(out, r.used);
                out.push_str(" / ");
                write_bytes(out, r.size);
                out.push_str(if low(r) {
                    "</td><td class=why>"
                } else {
                    "</td><td class=num>"
                });
                write_bytes(out, r.free);
                if let Some(ratio) = r.free_ratio() {
                    let _ = write!(out, " ({:.0}%)", ratio * 100.0);
                }
                if low(r) {
                    out.push_str(" <b>under 10% free</b>");
                }
                out.push_str("</td></tr>");
            }
            more_row(
                out,
                &s.repositories,
                REPOSITORY_COLUMNS.len(),
                "repositories",
            );
        }
        out.push_str("</tbody></table>");
    }
    if listed().any(|s| s.licences.total > 0) {
        table_head(out, "licences", "lics", &LICENCE_COLUMNS);
        for s in listed() {
            for l in &s.licences.shown {
                let flag = expiring(l) || full(l);
                out.push_str(if flag { "<tr class=f>" } else { "<tr>" });
                td(out, &s.upstream);
                td(out, &l.name);
                out.push_str(if expiring(l) {
                    "<td class=why>"
                } else {
                    "<td>"
                });
                write_expiry(out, l.expiry, now);
                out.push_str(if full(l) {
                    "</td><td class=why>"
                } else {
                    "</td><td class=num>"
                });
                match (l.used, l.total) {
                    (Some(used), Some(total)) => {
                        let _ = write!(out, "{used:.0} / {total:.0}");
                    }
                    (Some(used), None) => {
                        let _ = write!(out, "{used:.0} / -");
                    }
                    (None, Some(total)) => {
                        let _ = write!(out, "- / {total:.0}");
                    }
                    (None, None) => out.push('-'),
                }
                if full(l) {
                    out.push_str(" <b>all used</b>");
                }
                out.push_str("</td></tr>");
            }
            more_row(out, &s.licences, LICENCE_COLUMNS.len(), "licences");
        }
        out.push_str("</tbody></table>");
    }
    if listed().next().is_some()
        && !listed().any(|s| s.repositories.total > 0 || s.licences.total > 0)
    {
        out.push_str("<p class=muted>no discovering upstream lists repositories or licences</p>");
    }
    out.push_str("</section>");
}

/// The row saying how many items past the shown ones a list has.
fn more_row<T>(out: &mut String, list: &Bounded<T>, columns: usize, what: &str) {
    if list.total > list.shown.len() {
        let _ = write!(
            out,
            "<tr class=empty><td colspan={columns} class=muted>and {} more {what}</td></tr>",
            list.total - list.shown.len()
        );
    }
}

/// The expiry date (UTC) and the whole days left: "2026-12-20 (17 days left)", "expired".
fn write_expiry(out: &mut String, expiry: Option<f64>, now: f64) {
    let Some(t) = expiry
        .filter(|e| e.is_finite())
        .and_then(|e| chrono::DateTime::from_timestamp(e.floor() as i64, 0))
    else {
        out.push('-');
        return;
    };
    let _ = write!(out, "{:04}-{:02}-{:02} ", t.year(), t.month(), t.day());
    let left = (t.timestamp() as f64 - now) / 86_400.0;
    let _ = if left < 0.0 {
        write!(out, "(expired {} days ago)", (-left).floor())
    } else {
        write!(out, "({} days left)", left.floor())
    };
}

fn job_row(out: &mut String, job: &JobView, now: f64) {
    let r = &job.record;
    let k = &r.key;
    let s = r.status.as_str();
    let failed = r.status == Status::Failed;
    let _ = write!(
        out,
        "<tr data-s={s}{}><td><span class=\"badge s-{s}\" title=\"",
        if failed { " class=f" } else { "" }
    );
    esc(out, &r.raw_status);
    out.push_str("\">");
    status_word(out, r.status);
    out.push_str("</span>");
    if !job.target_up {
        out.push_str(" <span class=down title=\"the last poll of its target failed; these are the last known values\">stale</span>");
    }
    out.push_str("</td>");
    td(out, k.system.as_str());
    td(out, &k.upstream);
    td(out, &k.server);
    td(out, &k.job_name);
    td(out, &k.volume);
    td(out, &k.operation);
    out.push_str("<td class=num>");
    match r.progress {
        Some(p) => {
            let pct = (p * 100.0).clamp(0.0, 100.0);
            let _ = write!(out, "<span class=prog><span class=pbar><span style=\"width:{pct:.1}%\"></span></span><span class=pct>{pct:.0}%</span></span>");
        }
        None => out.push('-'),
    }
    out.push_str("</td><td class=num>");
    match r.elapsed_seconds {
        Some(e) => write_duration(out, e),
        None => out.push('-'),
    }
    out.push_str("</td><td>");
    write_time(out, r.start_time, now);
    out.push_str("</td><td>");
    write_time(out, r.end_time, now);
    out.push_str("</td><td>");
    write_time(out, job.last_success, now);
    out.push_str("</td>");
    let failure = r
        .failure
        .as_ref()
        .filter(|f| failed && !(f.reason.is_empty() && f.code.is_empty()));
    match failure {
        Some(f) => {
            out.push_str("<td class=why>");
            if !f.code.is_empty() {
                out.push_str("<span class=code>");
                esc(out, &f.code);
                out.push_str("</span>");
            }
            // A code alone says little: the last message goes with it.
            let text = match (f.reason.as_str(), r.message.as_deref()) {
                ("", Some(m)) => m,
                (reason, _) => reason,
            };
            esc(out, text);
        }
        None => {
            out.push_str(if failed { "<td class=why>" } else { "<td>" });
            esc(out, r.message.as_deref().unwrap_or("-"));
        }
    }
    out.push_str("</td></tr>");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Failure, JobKey, JobRecord, TargetId, TargetKind};
    use crate::outcome::Outcome;
    use crate::systems::zdm;

    const NOW: f64 = 1_736_935_200.0;

    /// One shard, the exposition at its default path.
    const CX: Context<'static> = Context {
        shard: Shard { index: 0, total: 1 },
        telemetry_path: "/metrics",
    };

    #[test]
    fn html_is_escaped() {
        let mut s = String::new();
        esc(&mut s, "<script>alert('x') & \"y\"</script>");
        assert_eq!(
            s,
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    fn target(kind: TargetKind, id: &str) -> TargetId {
        TargetId {
            system: zdm::SYSTEM,
            upstream: Arc::from("zdm"),
            kind,
            target: Arc::from(id),
        }
    }

    fn job(upstream: &str, server: &str, name: &str, status: Status) -> JobView {
        JobView {
            record: JobRecord {
                key: Arc::new(JobKey {
                    system: zdm::SYSTEM,
                    upstream: Arc::from(upstream),
                    operation: "backup".into(),
                    job_name: name.into(),
                    server: server.into(),
                    volume: "/".into(),
                }),
                status,
                raw_status: status.as_str().into(),
                progress: Some(0.45),
                elapsed_seconds: Some(93_784.5),
                start_time: Some(NOW - 180.0),
                end_time: None,
                message: Some(format!("message of {name}")),
                info: Vec::new(),
                ended_runs: None,
                newest_success_end: None,
                failure: None,
                size_bytes: None,
            },
            target: target(zdm::SERVER, server),
            target_up: true,
            last_success: Some(NOW - 7_200.0),
        }
    }

    fn row_order(page: &str) -> Vec<String> {
        page.split("<tr data-s=")
            .skip(1)
            .map(|row| {
                let status = row.split([' ', '>']).next().unwrap();
                let name = row.split("</td><td>").nth(4).unwrap();
                format!("{status} {name}")
            })
            .collect()
    }

    #[test]
    fn failed_first_then_unknown_running_pending_cancelled_warnings_completed() {
        let mut jobs = vec![
            job("b", "s1", "ok", Status::Completed),
            job("a", "s2", "warn", Status::CompletedWithWarnings),
            job("a", "s1", "stop", Status::Cancelled),
            job("a", "s1", "wait", Status::Pending),
            job("a", "s1", "run", Status::Running),
            job("a", "s1", "odd", Status::Unknown),
            job("b", "s1", "late", Status::Failed),
            job("a", "s2", "broke", Status::Failed),
            job("a", "s1", "zzz", Status::Failed),
            job("a", "s1", "aaa", Status::Failed),
        ];
        let page = render(&mut jobs, &[], &[], &CX, NOW);
        assert_eq!(
            row_order(&page),
            [
                "failed aaa",
                "failed zzz",
                "failed broke",
                "failed late",
                "unknown odd",
                "running run",
                "pending wait",
                "cancelled stop",
                "completed_with_warnings warn",
                "completed ok",
            ]
        );
        for (status, n) in [
            ("failed", 4),
            ("unknown", 1),
            ("running", 1),
            ("completed", 1),
        ] {
            assert!(
                page.contains(&format!("data-status={status} data-n={n}>")),
                "{status} {n}"
            );
        }
        assert!(page.contains("data-status=\"\" data-n=10>all <b>10</b>"));
    }

    #[test]
    fn the_triage_order_holds_every_status_once() {
        for status in Status::ALL {
            assert_eq!(
                TRIAGE_ORDER.iter().filter(|s| **s == status).count(),
                1,
                "{status:?}"
            );
        }
        for (i, status) in TRIAGE_ORDER.into_iter().enumerate() {
            assert_eq!(triage_rank(status), i);
        }
    }

    #[test]
    fn the_metrics_link_follows_the_telemetry_path_and_the_shard_is_named() {
        let page = render(&mut [], &[], &[], &CX, NOW);
        assert!(page.contains("<a href=\"/metrics\">Metrics</a>"));
        assert!(!page.contains("shard 0 of 1"));
        let cx = Context {
            shard: Shard { index: 1, total: 3 },
            telemetry_path: "/probe/\"m\"&<x>",
        };
        let page = render(&mut [], &[], &[], &cx, NOW);
        assert!(page.contains("<a href=\"/probe/&quot;m&quot;&amp;&lt;x&gt;\">Metrics</a>"));
        assert!(!page.contains("href=\"/metrics\""));
        assert!(page.contains(" · shard 1 of 3 (this replica's targets only) · rendered "));
    }

    #[test]
    fn failed_rows_say_why_others_their_last_message() {
        let mut failed = job("a", "s", "broke", Status::Failed);
        failed.record.failure = Some(Failure::new("disk <full>", "E42"));
        let mut bare = job("a", "s", "bare", Status::Failed);
        bare.record.failure = Some(Failure::new("", ""));
        let mut coded = job("a", "s", "coded", Status::Failed);
        coded.record.failure = Some(Failure::new("", "UserErrorX"));
        let running = job("a", "s", "run", Status::Running);
        let page = render(&mut [failed, bare, coded, running], &[], &[], &CX, NOW);
        assert!(page.contains("<td class=why><span class=code>E42</span>disk &lt;full&gt;</td>"));
        assert!(page.contains("<td class=why>message of bare</td>"));
        assert!(page.contains("<span class=code>UserErrorX</span>message of coded</td>"));
        assert!(page.contains("<td>message of run</td>"));
    }

    #[test]
    fn times_are_relative_with_the_exact_utc_time_on_hover() {
        let mut out = String::new();
        write_time(&mut out, Some(NOW - 180.0), NOW);
        assert_eq!(
            out,
            "<span data-ts=1736935020 title=\"2025-01-15 09:57:00 UTC\">3 min ago</span>"
        );
        for (delta, want) in [
            (0.0, "just now"),
            (-9.0, "just now"),
            (45.0, "45 s ago"),
            (-7_300.0, "in 2 h"),
            (172_800.0 * 2.0, "4 d ago"),
        ] {
            let mut out = String::new();
            write_relative(&mut out, NOW - delta, NOW);
            assert_eq!(out, want, "{delta}");
        }
        let mut out = String::new();
        write_time(&mut out, None, NOW);
        write_time(&mut out, Some(f64::NAN), NOW);
        write_time(&mut out, Some(1e300), NOW);
        assert_eq!(out, "---");
        let mut out = String::new();
        write_duration(&mut out, 93_784.5);
        assert_eq!(out, "1.02:03:04");
    }

    #[test]
    fn failing_targets_are_listed_only_when_some_fail() {
        let up = TargetView {
            target: target(zdm::SERVER, "srv"),
            polled: true,
            up: true,
            failure: None,
            last_success: Some(NOW - 60.0),
        };
        let page = render(&mut [], std::slice::from_ref(&up), &[], &CX, NOW);
        assert!(!page.contains("Targets failing"));
        assert!(page.contains("No jobs yet"));
        let down = TargetView {
            target: target(zdm::BACKUP_JOB, "<job>"),
            polled: true,
            up: false,
            failure: Some((Outcome::Http5xx, NOW - 300.0)),
            last_success: None,
        };
        let page = render(&mut [], &[up, down], &[], &CX, NOW);
        assert!(page.contains("Targets failing: 1"));
        assert!(page.contains(
            "<td>backup_job</td><td>&lt;job&gt;</td><td class=why><b>http_5xx</b></td><td>since <span data-ts=1736934900 title=\"2025-01-15 09:55:00 UTC\">5 min ago</span></td><td>never</td>"
        ));
    }

    #[test]
    fn a_stale_job_and_odd_names_are_marked_and_escaped() {
        let mut j = job(
            "u\"pstream",
            "<srv>",
            "잡 & co",
            Status::CompletedWithWarnings,
        );
        j.target_up = false;
        j.record.raw_status = "\"Partial\"".into();
        let page = render(&mut [j], &[], &[], &CX, NOW);
        assert!(page.contains("title=\"&quot;Partial&quot;\">completed_<wbr>with_<wbr>warnings</span> <span class=down"));
        assert!(page.contains("<td>u&quot;pstream</td><td>&lt;srv&gt;</td><td>잡 &amp; co</td>"));
        assert!(!page.contains("<srv>"));
        assert!(page.contains("width:45.0%"));
    }

    fn summary(upstream: &str) -> Summary {
        use crate::inventory::{Licence, Repository};
        let mut s = Summary {
            system: "zdm".into(),
            upstream: upstream.into(),
            listing: Listing::Listed,
            servers: 9,
            agents: 8,
            ..Summary::default()
        };
        s.unprotected = Bounded {
            shown: vec!["legacy-erp-01".into(), "<b>evil</b>".into()],
            total: 5,
        };
        s.disconnected = Bounded {
            shown: vec!["win-fs-01".into()],
            total: 1,
        };
        s.repositories = Bounded {
            shown: vec![
                Repository {
                    center: "Main".into(),
                    name: "fill<ing>".into(),
                    kind: "local".into(),
                    size: Some(1024.0 * 1024.0 * 1024.0 * 100.0),
                    used: Some(1024.0 * 1024.0 * 1024.0 * 95.0),
                    free: Some(1024.0 * 1024.0 * 1024.0 * 5.0),
                },
                Repository {
                    name: "roomy".into(),
                    size: Some(2048.0),
                    used: Some(1024.0),
                    free: Some(1024.0),
                    ..Repository::default()
                },
            ],
            total: 2,
        };
        s.licences = Bounded {
            shown: vec![
                Licence {
                    name: "soon & full".into(),
                    expiry: Some(NOW + 10.5 * 86_400.0),
                    total: Some(10.0),
                    used: Some(10.0),
                },
                Licence {
                    name: "later".into(),
                    expiry: Some(NOW + 400.0 * 86_400.0),
                    total: Some(10.0),
                    used: Some(3.0),
                },
            ],
            total: 2,
        };
        s
    }

    fn section<'a>(page: &'a str, id: &str) -> &'a str {
        let start = page.find(&format!("id={id}>")).unwrap();
        let len = page[start..].find("</section>").unwrap();
        &page[start..start + len]
    }

    #[test]
    fn the_boxes_list_unprotected_servers_and_flag_capacity() {
        let inventory = [Arc::new(summary("u<1>"))];
        let page = render(&mut [], &[], &inventory, &CX, NOW);
        let boxes = page.find("<div class=boxes>").unwrap();
        assert!(page.find("<h2>Jobs</h2>").unwrap() > boxes);
        let unprotected = section(&page, "unprotected");
        assert!(page.contains("<section class=\"box warn\" id=unprotected><h2>Unprotected: 6</h2>"));
        assert!(unprotected.contains("<h3>u&lt;1&gt; <span class=muted>(zdm)</span></h3>"));
        assert!(unprotected.contains("servers without a backup job: 5 of 9"));
        assert!(unprotected.contains(
            "<li>legacy-erp-01</li><li>&lt;b&gt;evil&lt;/b&gt;</li><li class=muted>and 3 more</li>"
        ));
        assert!(unprotected.contains(
            "agents disconnected: 1 of 8</span></p><ul class=names><li>win-fs-01</li></ul>"
        ));
        assert!(!page.contains("<b>evil"));

        let capacity = section(&page, "capacity");
        assert!(
            capacity.contains("<h2>Capacity: 2 flagged</h2>"),
            "{capacity}"
        );
        assert!(capacity.contains("<tr class=f><td>u&lt;1&gt;</td><td>fill&lt;ing&gt; <span class=muted>Main · local</span></td><td class=num>95.0 GiB / 100.0 GiB</td><td class=why>5.0 GiB (5%) <b>under 10% free</b></td></tr>"), "{capacity}");
        assert!(capacity.contains("<tr><td>u&lt;1&gt;</td><td>roomy</td><td class=num>1.0 KiB / 2.0 KiB</td><td class=num>1.0 KiB (50%)</td></tr>"), "{capacity}");
        assert!(capacity.contains("<tr class=f><td>u&lt;1&gt;</td><td>soon &amp; full</td><td class=why>2025-01-25 (10 days left)</td><td class=why>10 / 10 <b>all used</b></td></tr>"), "{capacity}");
        assert!(capacity.contains("<tr><td>u&lt;1&gt;</td><td>later</td><td>2026-02-19 (400 days left)</td><td class=num>3 / 10</td></tr>"), "{capacity}");
        assert!(page.contains("table.repos td:nth-child(3)::before{content:\"Used / size\"}"));
    }

    #[test]
    fn the_boxes_say_plainly_when_nothing_is_listed() {
        let page = render(&mut [], &[], &[], &CX, NOW);
        for id in ["unprotected", "capacity"] {
            let b = section(&page, id);
            assert!(b.contains(NO_LISTING), "{b}");
            assert!(page.contains(&format!("<section class=\"box none\" id={id}>")));
        }
        let mut pending = summary("p");
        pending.listing = Listing::Pending;
        let mut elsewhere = summary("e");
        elsewhere.listing = Listing::Elsewhere;
        let clean = Summary {
            system: "zdm".into(),
            upstream: "clean".into(),
            listing: Listing::Listed,
            servers: 3,
            agents: 3,
            ..Summary::default()
        };
        let page = render(
            &mut [],
            &[],
            &[Arc::new(pending), Arc::new(elsewhere), Arc::new(clean)],
            &CX,
            NOW,
        );
        assert!(!page.contains(NO_LISTING));
        let unprotected = section(&page, "unprotected");
        assert!(
            unprotected.starts_with("id=unprotected><h2>Unprotected: 0</h2>"),
            "{unprotected}"
        );
        assert!(unprotected.contains("its first listing has not finished yet"));
        assert!(unprotected.contains("exported by the replica of the shard"));
        assert!(unprotected.contains("3 servers, each with a backup job; 3 agents, all connected"));
        assert!(
            !unprotected.contains("legacy-erp-01"),
            "not listed: nothing shown"
        );
        let capacity = section(&page, "capacity");
        assert!(capacity.contains("no discovering upstream lists repositories or licences"));
        assert!(page.contains("<section class=\"box ok\" id=capacity>"));
    }

    #[test]
    fn bytes_and_expiry_read_as_people_write_them() {
        let mut out = String::new();
        for b in [
            Some(512.0),
            Some(1536.0),
            Some(5.5 * 1024f64.powi(4)),
            None,
            Some(f64::NAN),
        ] {
            write_bytes(&mut out, b);
            out.push('|');
        }
        assert_eq!(out, "512 B|1.5 KiB|5.5 TiB|-|-|");
        let mut out = String::new();
        write_expiry(&mut out, Some(NOW - 2.5 * 86_400.0), NOW);
        assert_eq!(out, "2025-01-12 (expired 2 days ago)");
    }
}
