//! Rendering a [`JobView`] as text, JSON and Graphviz DOT.

use serde_json::{Value, json};

use super::advisories::Advisory;
use super::model::{JobView, OperatorView, StageView, SubqueryView, human_bytes};

/// What the driver does with the last stage's output: a warehouse write's tasks wrote
/// files, which the driver commits; otherwise it merges the result.
fn driver_role(job: &JobView) -> &'static str {
    let writes = job
        .stages
        .last()
        .and_then(|stage| stage.operators.first())
        .is_some_and(|op| op.name == "WriteFiles");
    match writes {
        true => "commits the files the last stage's tasks wrote",
        false => "merges the result",
    }
}

/// The text form: a header line, then each stage with its tasks, exchange and operators;
/// with actuals and advisories after `EXPLAIN ANALYZE`.
pub fn render_text(job: &JobView, advisories: &[Advisory]) -> Vec<String> {
    let mut lines = vec![header(job)];
    for stage in &job.stages {
        stage_lines(stage, &mut lines);
    }
    for subquery in &job.subqueries {
        lines.push(subquery_header(subquery));
        lines.extend(
            subquery
                .operators
                .iter()
                .map(|op| format!("    {}", op.line())),
        );
    }
    lines.push(format!("Driver: {}", driver_role(job)));
    lines.extend(job.driver.iter().map(|op| format!("    {}", op.line())));
    if let Some(result) = job.result {
        lines.push(format!(
            "    result: {} rows, {} from {} tasks",
            result.rows,
            human_bytes(result.bytes),
            result.tasks
        ));
    }
    if job.job.is_none() && !advisories.is_empty() {
        // Before a run: what the job would do again.
        lines.push("Advisories".to_string());
        lines.extend(
            advisories
                .iter()
                .map(|advice| format!("  {}", advice.line())),
        );
    }
    if job.job.is_some() {
        if advisories.is_empty() {
            lines.push("Advisories: none".to_string());
        } else {
            lines.push("Advisories".to_string());
            for advice in advisories {
                lines.push(format!("  {}", advice.line()));
            }
        }
    }
    lines
}

/// `Subquery 1: once on the driver, after stage 2; its value is used by stage 3`.
fn subquery_header(subquery: &SubqueryView) -> String {
    let stages = |ids: &[usize]| {
        let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        match ids.len() {
            1 => format!("stage {}", list[0]),
            _ => format!("stages {}", list.join(", ")),
        }
    };
    let mut line = format!("Subquery {}: once on the driver", subquery.id);
    if !subquery.after.is_empty() {
        line.push_str(&format!(", after {}", stages(&subquery.after)));
    }
    let mut users = Vec::new();
    if !subquery.read_by.is_empty() {
        users.push(stages(&subquery.read_by));
    }
    for id in &subquery.read_by_subqueries {
        users.push(format!("subquery {id}"));
    }
    if !users.is_empty() {
        line.push_str(&format!("; its value is used by {}", users.join(", ")));
    }
    line
}

fn header(job: &JobView) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let what = match job.job {
        Some(id) => format!("Job {id}"),
        None => "Job".to_string(),
    };
    format!(
        "{what}: {}, {}, {}, {}, {}",
        plural(job.stages.len(), "stage"),
        plural(job.shuffles(), "shuffle"),
        plural(job.broadcasts(), "broadcast"),
        plural(job.tasks(), "task"),
        plural(job.slots, "slot")
    )
}

fn stage_lines(stage: &StageView, lines: &mut Vec<String>) {
    let tasks = if stage.tasks == 1 {
        "1 task".to_string()
    } else {
        format!("{} tasks", stage.tasks)
    };
    let waves = if stage.waves == 1 {
        "1 wave".to_string()
    } else {
        format!("{} waves", stage.waves)
    };
    let adaptive = match (stage.adaptive, stage.skew_split) {
        (true, true) => " (AQE may coalesce or split skewed partitions)",
        (true, false) => " (AQE may coalesce)",
        (false, true) => " (AQE may split skewed partitions)",
        (false, false) => "",
    };
    lines.push(format!(
        "Stage {}: {tasks}{adaptive} ({}), {waves}",
        stage.id, stage.tasks_from
    ));
    let parents = match stage.parents.is_empty() {
        true => "none".to_string(),
        false => stage
            .parents
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    lines.push(format!(
        "  parents: {parents}; exchange: {}",
        stage.exchange
    ));
    if let Some(actual) = &stage.actuals {
        let t = actual.task_ms;
        lines.push(format!(
            "  ran: {} → {} tasks in {} waves, {:.0} ms; task ms min {:.1} / p25 {:.1} / median {:.1} / p75 {:.1} / max {:.1}",
            stage.tasks, actual.tasks_launched, actual.waves, actual.wall_ms, t.min, t.p25, t.median, t.p75, t.max
        ));
        lines.push(format!(
            "  rows in {} ({}) → out {} ({}); shuffle read {}, shuffle write {}; spill {}; peak task memory {}; retries {}",
            actual.rows_in,
            human_bytes(actual.bytes_in),
            actual.rows_out,
            human_bytes(actual.bytes_out),
            human_bytes(actual.shuffle_read_bytes),
            human_bytes(actual.shuffle_write_bytes),
            human_bytes(actual.spill_bytes),
            human_bytes(actual.peak_memory_bytes),
            actual.retries
        ));
        if actual.tasks_per_executor.len() > 1 {
            let on: Vec<String> = actual
                .tasks_per_executor
                .iter()
                .map(|(executor, tasks)| format!("executor {executor}: {tasks}"))
                .collect();
            lines.push(format!("  tasks per executor: {}", on.join(", ")));
        }
        if actual.stage_attempts > 1 {
            lines.push(format!(
                "  stage attempts: {} ({})",
                actual.stage_attempts,
                actual.resubmitted.join("; ")
            ));
        }
        for failed in &actual.failed_attempts {
            let (kind, error) = match (failed.killed, failed.fetch_failed) {
                (true, _) => (
                    "killed",
                    failed
                        .error
                        .strip_prefix("killed: ")
                        .unwrap_or(&failed.error),
                ),
                (false, true) => ("fetch failed", failed.error.as_str()),
                (false, false) => ("failed", failed.error.as_str()),
            };
            lines.push(format!(
                "  task {} attempt {} (stage attempt {}) {kind}: {error}",
                failed.task, failed.attempt, failed.stage_attempt
            ));
        }
        for decision in &actual.decisions {
            match decision.applied {
                true => lines.push(format!(
                    "  AQE {}: {} ({})",
                    decision.rule, decision.change, decision.reason
                )),
                false => lines.push(format!(
                    "  AQE {}: not applied: {}",
                    decision.rule, decision.reason
                )),
            }
        }
    }
    lines.extend(
        stage
            .operators
            .iter()
            .map(|op| format!("    {}", op.line())),
    );
}

/// The JSON form. Field names are stable; see docs/explain.md.
pub fn render_json(job: &JobView, advisories: &[Advisory]) -> String {
    let stages: Vec<Value> = job
        .stages
        .iter()
        .map(|stage| {
            let actuals = stage.actuals.as_ref().map(|a| {
                json!({
                    "tasks_launched": a.tasks_launched,
                    "waves": a.waves,
                    "wall_ms": a.wall_ms,
                    "task_ms": {"min": a.task_ms.min, "p25": a.task_ms.p25, "median": a.task_ms.median, "p75": a.task_ms.p75, "max": a.task_ms.max},
                    "rows_in": a.rows_in,
                    "bytes_in": a.bytes_in,
                    "rows_out": a.rows_out,
                    "bytes_out": a.bytes_out,
                    "shuffle_read_bytes": a.shuffle_read_bytes,
                    "shuffle_write_bytes": a.shuffle_write_bytes,
                    "spill_bytes": a.spill_bytes,
                    "peak_memory_bytes": a.peak_memory_bytes,
                    "retries": a.retries,
                    "stage_attempts": a.stage_attempts,
                    "tasks_per_executor": a.tasks_per_executor.iter().map(|(e, t)| json!({"executor": e, "tasks": t})).collect::<Vec<_>>(),
                    "resubmitted": a.resubmitted,
                    "failed_attempts": a.failed_attempts.iter().map(|f| json!({"task": f.task, "attempt": f.attempt, "stage_attempt": f.stage_attempt, "fetch_failed": f.fetch_failed, "killed": f.killed, "error": f.error})).collect::<Vec<_>>(),
                    "aqe": a.decisions.iter().map(|d| json!({"rule": d.rule, "applied": d.applied, "change": d.change, "reason": d.reason})).collect::<Vec<_>>(),
                })
            });
            json!({
                "id": stage.id,
                "parents": stage.parents,
                "tasks": stage.tasks,
                "tasks_from": stage.tasks_from,
                "exchange": stage.exchange.to_string(),
                "waves": stage.waves,
                "adaptive": stage.adaptive,
                "adaptive_skew_split": stage.skew_split,
                "operators": stage.operators.iter().map(operator_json).collect::<Vec<_>>(),
                "actuals": actuals,
            })
        })
        .collect();
    let value = json!({
        "job": job.job,
        "slots": job.slots,
        "summary": {
            "stages": job.stages.len(),
            "shuffles": job.shuffles(),
            "broadcasts": job.broadcasts(),
            "tasks": job.tasks(),
        },
        "stages": stages,
        "subqueries": job.subqueries.iter().map(|q| json!({
            "id": q.id,
            "after_stages": q.after,
            "used_by_stages": q.read_by,
            "used_by_subqueries": q.read_by_subqueries,
            "operators": q.operators.iter().map(operator_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "driver": job.driver.iter().map(operator_json).collect::<Vec<_>>(),
        "result": job.result.map(|r| json!({"tasks": r.tasks, "rows": r.rows, "bytes": r.bytes})),
        "advisories": advisories
            .iter()
            .map(|a| json!({"stage": a.stage, "kind": a.kind, "message": a.message}))
            .collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&value).expect("JSON values serialize")
}

/// An operator: its name and depth below the stage's root; after a run, its rows and time.
fn operator_json(op: &OperatorView) -> Value {
    let mut value = json!({"name": op.name, "depth": op.depth});
    if let Some(rows) = op.rows {
        value["rows"] = json!(rows);
    }
    if let Some(ms) = op.time_ms {
        value["time_ms"] = json!(ms);
    }
    value
}

/// The stage DAG in Graphviz DOT: one node per stage, edges from parent to child stage.
pub fn render_dot(job: &JobView) -> String {
    let mut out =
        String::from("digraph job {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n");
    for stage in &job.stages {
        let label = format!(
            "Stage {}\\n{} tasks, {} waves\\n{}",
            stage.id, stage.tasks, stage.waves, stage.exchange
        )
        .replace('"', "\\\"");
        out.push_str(&format!("  stage_{} [label=\"{label}\"];\n", stage.id));
        for parent in &stage.parents {
            out.push_str(&format!("  stage_{parent} -> stage_{};\n", stage.id));
        }
    }
    if let Some(last) = job.stages.last() {
        out.push_str(&format!(
            "  driver [label=\"Driver\\n{}\", shape=ellipse];\n",
            driver_role(job)
        ));
        out.push_str(&format!("  stage_{} -> driver;\n", last.id));
    }
    out.push_str("}\n");
    out
}
