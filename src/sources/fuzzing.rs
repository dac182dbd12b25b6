//! Shared by the sources' property tests: JSON leaves near what upstreams send (dashes,
//! percentages, durations, local times, control characters, huge strings), JSON trees over
//! a system's own keys, and seed answers with nodes replaced and maybe cut short.

use proptest::prelude::*;
use serde_json::Value;

use crate::model::{PollOutput, MAX_LABEL_BYTES};

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        "-?[0-9]{1,30}(\\.[0-9]{1,10})?([eE][-+]?[0-9]{1,4})?"
            .prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::Null)),
        prop::sample::select(
            &[
                "-",
                "",
                "45%",
                "150%",
                "-5%",
                "NaN",
                "1e400",
                "99:99:99",
                "00:30:00",
                "27:03:10",
                "P1DT2H",
                "2025-01-15 02:00:00",
                "2025-03-30 02:30:00",
                "2025-01-15T02:00:00Z",
                "9999-12-31T23:59:59Z",
                "run",
                "complete",
                "fail",
                "\u{0}\r\n\u{1b}[31m",
                "서버",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_string())),
        any::<String>().prop_map(Value::String),
        (".{0,2}", 1000usize..1100).prop_map(|(s, n)| Value::String(s.repeat(n))),
    ]
}

/// JSON up to three levels deep whose object keys are among `keys`.
pub fn json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Replaces the `n`-th node (pre-order, modulo the node count) of `v` with `with`.
fn replace(v: &mut Value, n: usize, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, with: &mut Option<Value>) {
        if *n == 0 {
            if let Some(with) = with.take() {
                *v = with;
            }
            return;
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, n, with)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, n, with)),
            _ => {}
        }
    }
    let mut n = n % count(v);
    walk(v, &mut n, &mut Some(with));
}

/// A seed answer with some nodes replaced, serialized, maybe cut short.
pub fn mutated(
    seed: &'static str,
    keys: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<usize>(), json(keys)), 1..5),
        prop::option::weighted(0.1, any::<usize>()),
    )
        .prop_map(move |(edits, cut)| {
            let mut v: Value = serde_json::from_str(seed).unwrap();
            for (n, with) in edits {
                replace(&mut v, n, with);
            }
            let mut bytes = serde_json::to_vec(&v).unwrap();
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        })
}

/// What a mapping keeps stays in range, and labels are cut to `MAX_LABEL_BYTES`.
pub fn check(mut out: PollOutput) -> Result<(), TestCaseError> {
    for job in &out.jobs {
        if let Some(p) = job.progress {
            prop_assert!((0.0..=1.0).contains(&p), "progress {}", p);
        }
        if let Some(e) = job.elapsed_seconds {
            prop_assert!(e.is_finite() && e >= 0.0, "elapsed {}", e);
        }
        for t in [job.start_time, job.end_time].into_iter().flatten() {
            prop_assert!(t.is_finite(), "time {}", t);
        }
    }
    for s in &out.summaries {
        if let Some(p) = s.progress {
            prop_assert!((0.0..=1.0).contains(&p), "overall progress {}", p);
        }
    }
    out.cap_labels();
    for job in &out.jobs {
        let k = &job.key;
        for v in [&k.operation, &k.job_name, &k.server, &k.volume]
            .into_iter()
            .chain(job.info.iter().map(|(_, v)| v))
        {
            prop_assert!(v.len() <= MAX_LABEL_BYTES);
        }
    }
    Ok(())
}
