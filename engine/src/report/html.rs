//! The report as one self-contained HTML file: inline CSS, SVG drawn here, and a little
//! JavaScript for details on click. Nothing is fetched from the network.
//!
//! Every drawn element carries a class and `data-*` attributes (`job-bar`, `stage-node`,
//! `lane`, `task-bar` with `skewed`/`retried`/`failed`, `bin`), which is what the browser
//! test looks for and what the page's script reads.

use std::fmt::Write as _;

use super::model::{Histogram, JobRun, Outcome, Run, StageFigures, StageRun, TaskRun, rows_of};
use crate::explain::{TaskTimes, human_bytes};

/// Widths of the drawing area of charts, in pixels.
const CHART_WIDTH: f64 = 1100.0;
const LABEL_WIDTH: f64 = 90.0;
const LANE_HEIGHT: f64 = 16.0;
const HISTOGRAM_BINS: usize = 20;

/// Renders `runs` (one per event log) as one HTML page.
pub fn render(runs: &[Run]) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let title = match runs {
        [run] => format!("stagesql report · {}", run.app_id),
        _ => format!("stagesql report · {} runs", runs.len()),
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(page, "<h1>{}</h1>", escape(&title));
    if runs.is_empty() {
        page.push_str("<p class=\"empty\">The event log holds no application.</p>\n");
    }
    for (r, run) in runs.iter().enumerate() {
        render_run(&mut page, r, run);
    }
    let _ = writeln!(
        page,
        "<div id=\"detail\" class=\"detail\" hidden></div>\n<script>{SCRIPT}</script>\n</body></html>"
    );
    page
}

fn render_run(page: &mut String, r: usize, run: &Run) {
    let end = run.ended.unwrap_or(run.last_time);
    let slots = run.executors * run.cores;
    let count = |outcome: Outcome| run.jobs.iter().filter(|j| j.outcome == outcome).count();
    let _ = writeln!(
        page,
        "<section class=\"run\" id=\"r{r}\"><h2>{}</h2>\n<p class=\"facts\">{} · started {} · {} · {} executor(s) × {} core(s) = {slots} slots · {} job(s): {} succeeded, {} failed, {} cancelled{}</p>",
        escape(&run.app_id),
        escape(&run.source),
        clock(run.started),
        match run.ended {
            Some(ended) => format!("ran {}", duration(ended - run.started)),
            None => "the log ends before the application did".to_string(),
        },
        run.executors,
        run.cores,
        run.jobs.len(),
        count(Outcome::Succeeded),
        count(Outcome::Failed),
        count(Outcome::Cancelled),
        match count(Outcome::Running) {
            0 => String::new(),
            n => format!(", {n} without an end"),
        },
    );
    render_jobs_timeline(page, r, run, end);
    render_jobs_table(page, r, run, end);
    for job in &run.jobs {
        render_job(page, r, run, job, end);
    }
    if !run.caches.is_empty() {
        page.push_str("<h3>Cache</h3>\n<table class=\"caches\"><tr><th>time</th><th>relation</th><th>what</th></tr>\n");
        for change in &run.caches {
            let _ = writeln!(
                page,
                "<tr class=\"cache-change\"><td>+{}</td><td>{}</td><td>{}</td></tr>",
                duration(change.time - run.started),
                escape(&change.name),
                escape(&change.what)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

/// Every job on one time axis; jobs that overlap sit in rows of their own.
fn render_jobs_timeline(page: &mut String, r: usize, run: &Run, end: f64) {
    if run.jobs.is_empty() {
        page.push_str(
            "<p class=\"empty\">No jobs ran (statements in pipelined mode, or only DDL).</p>\n",
        );
        return;
    }
    let start = run
        .jobs
        .iter()
        .map(|j| j.submitted)
        .fold(f64::INFINITY, f64::min);
    let stop = run
        .jobs
        .iter()
        .map(|j| j.completed.unwrap_or(end))
        .fold(start, f64::max);
    let intervals: Vec<(f64, f64)> = run
        .jobs
        .iter()
        .map(|j| (j.submitted, j.completed.unwrap_or(end)))
        .collect();
    let rows = rows_of(&intervals);
    let row_count = rows.iter().max().map_or(1, |m| m + 1);
    let scale = Scale::new(start, stop);
    let height = 24.0 * row_count as f64 + 24.0;
    let _ = writeln!(
        page,
        "<h3>Jobs</h3>\n<svg class=\"jobs-timeline\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"jobs on a timeline\">",
        LABEL_WIDTH + CHART_WIDTH + 10.0
    );
    axis(page, &scale, height - 18.0, start);
    for (job, row) in run.jobs.iter().zip(&rows) {
        let (x, w) = scale.span(job.submitted, job.completed.unwrap_or(end));
        let y = 4.0 + 24.0 * *row as f64;
        let _ = writeln!(
            page,
            "<g class=\"job-bar {status}\" data-job=\"{id}\" data-status=\"{status}\" data-target=\"r{r}-job-{id}\"><rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" rx=\"3\"></rect><text x=\"{tx:.1}\" y=\"{ty}\">job {id}</text><title>job {id} · {status} · {} · {}</title></g>",
            duration(job.completed.unwrap_or(end) - job.submitted),
            escape(&shorten(&job.description, 160)),
            status = job.outcome.as_str(),
            id = job.id,
            tx = x + 3.0,
            ty = y + 13.0,
        );
    }
    page.push_str("</svg>\n");
}

fn render_jobs_table(page: &mut String, r: usize, run: &Run, end: f64) {
    if run.jobs.is_empty() {
        return;
    }
    page.push_str("<table class=\"jobs\"><tr><th>job</th><th>status</th><th>statement</th><th>duration</th><th>stages</th><th>tasks</th><th>failed attempts</th></tr>\n");
    for job in &run.jobs {
        let tasks: usize = job.stages.iter().map(|s| s.tasks.len()).sum();
        let failed: usize = job
            .stages
            .iter()
            .flat_map(|s| &s.tasks)
            .filter(|t| !t.succeeded() && t.reason != "Running")
            .count();
        let _ = writeln!(
            page,
            "<tr class=\"{status}\"><td><a href=\"#r{r}-job-{id}\">{id}</a></td><td>{status}</td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{tasks}</td><td>{failed}</td></tr>",
            escape(&shorten(&job.description, 120)),
            job.origin
                .as_ref()
                .map(|o| format!(" <span class=\"origin\">{}</span>", escape(o)))
                .unwrap_or_default(),
            duration(job.completed.unwrap_or(end) - job.submitted),
            job.stages.len(),
            status = job.outcome.as_str(),
            id = job.id,
        );
    }
    page.push_str("</table>\n");
}

fn render_job(page: &mut String, r: usize, run: &Run, job: &JobRun, end: f64) {
    let _ = writeln!(
        page,
        "<section class=\"job {status}\" id=\"r{r}-job-{id}\" data-job=\"{id}\" data-status=\"{status}\"><h3>Job {id} · {status} · {}</h3>\n<pre class=\"sql\">{}</pre>",
        duration(job.completed.unwrap_or(end) - job.submitted),
        escape(&job.description),
        status = job.outcome.as_str(),
        id = job.id,
    );
    if let Some(origin) = &job.origin {
        let _ = writeln!(page, "<p class=\"origin\">from {}</p>", escape(origin));
    }
    if let Some(error) = &job.error {
        let _ = writeln!(page, "<p class=\"error\">{}</p>", escape(error));
    }
    if job.cache_hits + job.cache_misses > 0 {
        let _ = writeln!(
            page,
            "<p class=\"cache-read\">cache: {} block(s) read, {} not found and computed again</p>",
            job.cache_hits, job.cache_misses
        );
    }
    render_dag(page, r, job);
    let cores = run.cores.max(1);
    for stage in &job.stages {
        render_stage(page, r, job, stage, &stage.figures(end, cores));
    }
    page.push_str("</section>\n");
}

/// The stage graph, left to right: a stage is one column right of its deepest parent.
fn render_dag(page: &mut String, r: usize, job: &JobRun) {
    if job.stages.is_empty() {
        return;
    }
    let mut depth: Vec<usize> = vec![0; job.stages.len()];
    // Stages come in id order and parents have lower ids, but do not rely on it.
    for _ in 0..job.stages.len() {
        for (i, stage) in job.stages.iter().enumerate() {
            for parent in &stage.parents {
                if let Some(p) = job.stages.iter().position(|s| s.id == *parent) {
                    depth[i] = depth[i].max(depth[p] + 1);
                }
            }
        }
    }
    let columns = depth.iter().max().map_or(1, |d| d + 1);
    let mut row_in_column = vec![0usize; columns];
    let mut place = Vec::with_capacity(job.stages.len());
    for d in &depth {
        place.push((*d, row_in_column[*d]));
        row_in_column[*d] += 1;
    }
    let rows = row_in_column.iter().copied().max().unwrap_or(1);
    let (node_w, node_h, gap_x, gap_y) = (230.0, 58.0, 70.0, 16.0);
    let width = columns as f64 * (node_w + gap_x);
    let height = rows as f64 * (node_h + gap_y) + 10.0;
    let at = |i: usize| {
        let (column, row) = place[i];
        (
            10.0 + column as f64 * (node_w + gap_x),
            5.0 + row as f64 * (node_h + gap_y),
        )
    };
    let _ = writeln!(
        page,
        "<svg class=\"stage-dag\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"stages of job {}\"><defs><marker id=\"arrow-r{r}-{}\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\"></path></marker></defs>",
        job.id, job.id
    );
    for (i, stage) in job.stages.iter().enumerate() {
        for parent in &stage.parents {
            let Some(p) = job.stages.iter().position(|s| s.id == *parent) else {
                continue;
            };
            let (px, py) = at(p);
            let (cx, cy) = at(i);
            let exchange = &job.stages[p].exchange;
            let _ = writeln!(
                page,
                "<g class=\"edge\" data-from=\"{}\" data-to=\"{}\"><path d=\"M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" marker-end=\"url(#arrow-r{r}-{})\"></path><title>{}</title></g>",
                parent,
                stage.id,
                px + node_w,
                py + node_h / 2.0,
                px + node_w + gap_x / 2.0,
                py + node_h / 2.0,
                cx - gap_x / 2.0,
                cy + node_h / 2.0,
                cx,
                cy + node_h / 2.0,
                job.id,
                escape(exchange)
            );
        }
    }
    for (i, stage) in job.stages.iter().enumerate() {
        let (x, y) = at(i);
        let tasks = match stage.launched_tasks {
            Some(launched) if launched != stage.planned_tasks => {
                format!("{} → {}", stage.planned_tasks, plural(launched, "task"))
            }
            Some(launched) => plural(launched, "task"),
            None => format!("{}, not run", plural(stage.planned_tasks, "task")),
        };
        let state = stage_state(stage);
        let _ = writeln!(
            page,
            "<g class=\"stage-node {state}\" data-stage=\"{id}\" data-target=\"r{r}-stage-{id}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{node_w}\" height=\"{node_h}\" rx=\"5\"></rect><text x=\"{tx:.1}\" y=\"{y1:.1}\" class=\"title\">Stage {id} · {}</text><text x=\"{tx:.1}\" y=\"{y2:.1}\">{}</text><text x=\"{tx:.1}\" y=\"{y3:.1}\">{}</text><title>{}</title></g>",
            escape(&tasks),
            escape(&shorten(&stage.exchange, 34)),
            escape(&shorten(&stage.name, 34)),
            escape(&stage.name),
            id = stage.id,
            tx = x + 7.0,
            y1 = y + 17.0,
            y2 = y + 34.0,
            y3 = y + 50.0,
        );
    }
    page.push_str("</svg>\n");
}

/// `succeeded`, `failed`, `running` or `skipped` (never submitted).
fn stage_state(stage: &StageRun) -> &'static str {
    match stage.attempts.last() {
        None => "skipped",
        Some(a) if a.completed.is_none() => match stage.tasks.iter().any(|t| t.reason == "Running")
        {
            true => "running",
            false => "failed",
        },
        Some(a) if a.failure.is_some() => "failed",
        Some(_) => "succeeded",
    }
}

fn render_stage(
    page: &mut String,
    r: usize,
    job: &JobRun,
    stage: &StageRun,
    figures: &StageFigures,
) {
    let _ = writeln!(
        page,
        "<section class=\"stage {state}\" id=\"r{r}-stage-{id}\" data-stage=\"{id}\"><h4>Stage {id} · {} · {}</h4>\n<p class=\"facts\">{} · tasks planned {} → launched {} · {} lane(s), {} wave(s) · {} attempt(s){}{}</p>",
        escape(&stage.name),
        escape(&stage.exchange),
        duration(figures.end - figures.start),
        stage.planned_tasks,
        stage
            .launched_tasks
            .map_or("none (not run)".to_string(), |n| n.to_string()),
        figures.lanes.len(),
        figures.waves,
        stage.attempts.len(),
        match figures.retried.len() {
            0 => String::new(),
            n => format!(" · {n} attempt(s) of retried tasks"),
        },
        match figures.spill_bytes {
            0 => String::new(),
            bytes => format!(" · spilled {}", human_bytes(bytes)),
        },
        state = stage_state(stage),
        id = stage.id,
    );
    for attempt in &stage.attempts {
        if let Some(failure) = &attempt.failure {
            let _ = writeln!(
                page,
                "<p class=\"stage-failure\">attempt {} ended early: {}</p>",
                attempt.attempt,
                escape(failure)
            );
        }
    }
    if !stage.decisions.is_empty() {
        page.push_str("<ul class=\"aqe\">\n");
        for decision in &stage.decisions {
            let _ = writeln!(
                page,
                "<li class=\"aqe-decision {}\"><b>{}</b> {}{}</li>",
                if decision.applied {
                    "applied"
                } else {
                    "not-applied"
                },
                escape(&decision.rule),
                match decision.applied {
                    true => format!("{} — ", escape(&decision.change)),
                    false => "not applied — ".to_string(),
                },
                escape(&decision.reason)
            );
        }
        page.push_str("</ul>\n");
    }
    let advice: Vec<_> = job
        .advisories
        .iter()
        .filter(|a| a.stage == stage.id)
        .collect();
    if !advice.is_empty() {
        page.push_str("<ul class=\"advisories\">\n");
        for advisory in advice {
            let _ = writeln!(
                page,
                "<li class=\"advisory\" data-kind=\"{}\"><b>{}</b>: {}</li>",
                escape(&advisory.kind),
                escape(&advisory.kind),
                escape(&advisory.message)
            );
        }
        page.push_str("</ul>\n");
    }
    if !stage.tasks.is_empty() {
        render_gantt(page, stage, figures);
        page.push_str("<div class=\"stage-figures\">");
        render_summary(page, figures);
        render_histogram(
            page,
            "task duration",
            "duration",
            &figures.durations,
            figures,
            &duration,
        );
        render_histogram(
            page,
            "shuffle read",
            "shuffle-read",
            &figures.shuffle_read,
            figures,
            &|b| human_bytes(b as u64),
        );
        page.push_str("</div>\n");
    }
    page.push_str("</section>\n");
}

/// The stage's task attempts on one lane per executor slot: waves side by side in time, the
/// barrier at the end, retried attempts and the skewed task marked.
fn render_gantt(page: &mut String, stage: &StageRun, figures: &StageFigures) {
    let scale = Scale::new(figures.start, figures.end);
    let lanes = figures.lanes.len().max(1);
    let height = LANE_HEIGHT * lanes as f64 + 24.0;
    let _ = writeln!(
        page,
        "<svg class=\"gantt\" data-stage=\"{}\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"tasks of stage {} on their slots\">",
        stage.id,
        LABEL_WIDTH + CHART_WIDTH + 10.0,
        stage.id
    );
    for (i, (executor, slot)) in figures.lanes.iter().enumerate() {
        let y = LANE_HEIGHT * i as f64;
        let _ = writeln!(
            page,
            "<g class=\"lane\" data-lane=\"{i}\" data-executor=\"{}\" data-slot=\"{slot}\"><rect class=\"lane-bg\" x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{CHART_WIDTH}\" height=\"{LANE_HEIGHT}\"></rect><text x=\"2\" y=\"{:.1}\">exec {} slot {slot}</text></g>",
            escape(executor),
            y + LANE_HEIGHT - 4.0,
            escape(executor),
        );
    }
    let end = figures.end;
    for (i, task) in stage.tasks.iter().enumerate() {
        let lane = figures.lane_of[i];
        let (x, w) = scale.span(task.launch, task.finish.unwrap_or(end));
        let y = LANE_HEIGHT * lane as f64 + 2.0;
        let mut class = String::from("task-bar");
        match task.reason.as_str() {
            "Success" => {}
            "TaskKilled" => class.push_str(" killed"),
            "Running" => class.push_str(" running"),
            _ => class.push_str(" failed"),
        }
        if figures.retried.contains(&i) {
            class.push_str(" retried");
        }
        if figures.skewed == Some(i) {
            class.push_str(" skewed");
        }
        let _ = writeln!(
            page,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{}\" data-task=\"{}\" data-attempt=\"{}\" data-ms=\"{:.1}\" data-detail=\"{}\"><title>{}</title></rect>",
            LANE_HEIGHT - 4.0,
            task.index,
            task.attempt,
            task.duration(end),
            escape(&task_detail(task, end)),
            escape(&task_title(task, end)),
        );
    }
    let barrier = scale.x(figures.end);
    let _ = writeln!(
        page,
        "<line class=\"barrier\" x1=\"{barrier:.1}\" x2=\"{barrier:.1}\" y1=\"0\" y2=\"{:.1}\"></line>",
        LANE_HEIGHT * lanes as f64
    );
    axis(
        page,
        &scale,
        LANE_HEIGHT * lanes as f64 + 4.0,
        figures.start,
    );
    page.push_str("</svg>\n");
}

fn task_title(task: &TaskRun, end: f64) -> String {
    format!(
        "task {} attempt {} · {} · executor {} slot {}",
        task.index,
        task.attempt,
        duration(task.duration(end)),
        task.executor,
        task.slot
    )
}

/// What a click on a task shows.
fn task_detail(task: &TaskRun, end: f64) -> String {
    let mut detail = format!(
        "task {} attempt {} · {} · {} · executor {} slot {}",
        task.index,
        task.attempt,
        task.reason,
        duration(task.duration(end)),
        task.executor,
        task.slot
    );
    if let Some(m) = &task.metrics {
        let _ = write!(
            detail,
            " · read {} rows ({}), shuffle read {} · wrote {} rows ({}) · peak memory {}",
            m.input_metrics.records,
            human_bytes(m.input_metrics.bytes),
            human_bytes(m.shuffle_read_metrics.bytes),
            m.output_metrics.records,
            human_bytes(m.output_metrics.bytes),
            human_bytes(m.peak_execution_memory)
        );
        if m.disk_bytes_spilled > 0 {
            let _ = write!(detail, " · spilled {}", human_bytes(m.disk_bytes_spilled));
        }
    }
    if let Some(error) = &task.error {
        let _ = write!(detail, " · {error}");
    }
    detail
}

fn render_summary(page: &mut String, figures: &StageFigures) {
    let row = |name: &str, t: &TaskTimes, show: &dyn Fn(f64) -> String| {
        format!(
            "<tr><th>{name}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            show(t.min),
            show(t.p25),
            show(t.median),
            show(t.p75),
            show(t.max)
        )
    };
    let _ = writeln!(
        page,
        "<table class=\"summary\"><tr><th>{} task(s)</th><th>min</th><th>p25</th><th>median</th><th>p75</th><th>max</th></tr>\n{}{}{}{}</table>",
        figures.durations.len(),
        row("duration", &figures.duration_summary, &duration),
        row("shuffle read", &figures.shuffle_read_summary, &|b| {
            human_bytes(b as u64)
        }),
        row("rows read", &figures.input_rows_summary, &|n| {
            crate::explain::human_count(n as u64)
        }),
        row("rows written", &figures.output_rows_summary, &|n| {
            crate::explain::human_count(n as u64)
        }),
    );
}

fn render_histogram(
    page: &mut String,
    title: &str,
    metric: &str,
    values: &[f64],
    figures: &StageFigures,
    show: &dyn Fn(f64) -> String,
) {
    let histogram = Histogram::of(values, HISTOGRAM_BINS);
    let (width, height) = (320.0, 80.0);
    let most = histogram.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar_w = width / HISTOGRAM_BINS as f64;
    // The skewed task's value, to mark its bin.
    let skewed_bin = figures
        .skewed
        .and_then(|_| skewed_position(figures))
        .and_then(|position| values.get(position))
        .map(|value| histogram.bin(*value, HISTOGRAM_BINS));
    let _ = writeln!(
        page,
        "<figure class=\"histogram\" data-metric=\"{metric}\"><figcaption>{title}: {} to {}</figcaption><svg width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"{title} histogram\">",
        show(histogram.min.max(0.0)),
        show(histogram.max.max(0.0)),
        height + 4.0
    );
    for (bin, count) in histogram.counts.iter().enumerate() {
        let h = (*count as f64 / most) * height;
        let class = match skewed_bin == Some(bin) && *count > 0 {
            true => "bin skewed",
            false => "bin",
        };
        let lo =
            histogram.min + (histogram.max - histogram.min) * bin as f64 / HISTOGRAM_BINS as f64;
        let hi = histogram.min
            + (histogram.max - histogram.min) * (bin + 1) as f64 / HISTOGRAM_BINS as f64;
        let _ = writeln!(
            page,
            "<rect class=\"{class}\" data-count=\"{count}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{count} task(s) from {} to {}</title></rect>",
            bin as f64 * bar_w + 1.0,
            height - h,
            bar_w - 2.0,
            show(lo),
            show(hi)
        );
    }
    page.push_str("</svg></figure>");
}

/// Where the skewed attempt is among the kept attempts' values (each task's latest
/// success, in task order): the skewed one is the slowest of them.
fn skewed_position(figures: &StageFigures) -> Option<usize> {
    figures
        .durations
        .iter()
        .position(|d| *d == figures.duration_summary.max)
}

/// Maps times (ms since the epoch) onto the chart's x axis.
struct Scale {
    start: f64,
    span: f64,
}

impl Scale {
    fn new(start: f64, end: f64) -> Self {
        Self {
            start,
            span: (end - start).max(1e-3),
        }
    }

    fn x(&self, time: f64) -> f64 {
        LABEL_WIDTH + (time - self.start) / self.span * CHART_WIDTH
    }

    /// The x and width of `from..to`, at least half a pixel wide.
    fn span(&self, from: f64, to: f64) -> (f64, f64) {
        let x = self.x(from);
        (x, (self.x(to.max(from)) - x).max(0.5))
    }
}

/// Ticks along the bottom: offsets from `origin` at round steps.
fn axis(page: &mut String, scale: &Scale, y: f64, origin: f64) {
    let step = nice_step(scale.span / 8.0);
    let _ = write!(
        page,
        "<g class=\"axis\"><line x1=\"{LABEL_WIDTH}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"></line>",
        LABEL_WIDTH + CHART_WIDTH
    );
    let first = ((scale.start - origin) / step).ceil() as i64;
    let mut k = first;
    loop {
        let offset = k as f64 * step;
        let time = origin + offset;
        if time > scale.start + scale.span + 1e-9 || k - first > 20 {
            break;
        }
        let x = scale.x(time);
        let _ = write!(
            page,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y}\" y2=\"{:.1}\"></line><text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            y + 4.0,
            y + 14.0,
            duration(offset)
        );
        k += 1;
    }
    page.push_str("</g>\n");
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// `0.4 ms`, `12 ms`, `1.35 s`, `2 min 5 s`.
fn duration(ms: f64) -> String {
    let ms = ms.max(0.0);
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!(
            "{} min {:.0} s",
            (ms / 60_000.0) as u64,
            (ms % 60_000.0) / 1000.0
        )
    }
}

/// An epoch time as UTC `YYYY-MM-DD HH:MM:SS`.
fn clock(epoch_ms: f64) -> String {
    let secs = (epoch_ms / 1000.0) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
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
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `1 task`, `8 tasks`.
fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

const STYLE: &str = r#"
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 24px;color:#1d2733;background:#fff}
h1{font-size:20px;margin:0 0 8px} h2{font-size:17px;margin:18px 0 4px} h3{font-size:15px;margin:18px 0 6px} h4{font-size:13px;margin:14px 0 4px}
.facts{color:#52606d;margin:2px 0 8px} .origin{color:#52606d}
pre.sql{background:#f4f6f8;padding:6px 8px;white-space:pre-wrap;margin:4px 0;max-height:10em;overflow:auto}
.error,.stage-failure{color:#b42318;background:#fef3f2;padding:4px 8px;border-left:3px solid #b42318;white-space:pre-wrap}
table{border-collapse:collapse;margin:6px 0} th,td{padding:2px 8px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
table.summary td{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td:nth-child(2),tr.cancelled td:nth-child(2){color:#b42318}
section.job{border-top:2px solid #d9e2ec;margin-top:22px}
svg text{font-size:11px;fill:#334e68} svg .axis line{stroke:#9fb3c8} svg .axis text{font-size:10px;text-anchor:middle}
.job-bar rect{fill:#3e7cb1;cursor:pointer} .job-bar.failed rect{fill:#d64545} .job-bar.cancelled rect{fill:#9aa5b1} .job-bar.running rect{fill:#f0b429}
.job-bar text{fill:#fff;pointer-events:none}
.stage-node rect{fill:#f0f4f8;stroke:#627d98;cursor:pointer} .stage-node.failed rect{stroke:#d64545;fill:#fef3f2} .stage-node.skipped rect{stroke-dasharray:4 3;fill:#fff}
.stage-node .title{font-weight:600;fill:#102a43}
.edge path{fill:none;stroke:#829ab1;stroke-width:1.5} marker path{fill:#829ab1}
.lane-bg{fill:#f7f9fb} .lane:nth-child(even) .lane-bg{fill:#eef2f6}
.task-bar{fill:#4c9f70;cursor:pointer} .task-bar.failed{fill:#d64545} .task-bar.killed{fill:#9aa5b1} .task-bar.running{fill:#f0b429}
.task-bar.retried{stroke:#7b1fa2;stroke-width:1.5} .task-bar.skewed{fill:#e8590c;stroke:#7c2d12;stroke-width:1.5}
.task-bar.selected{stroke:#102a43;stroke-width:2}
.barrier{stroke:#102a43;stroke-dasharray:3 3}
.stage-figures{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start} figure{margin:4px 0} figcaption{color:#52606d}
.bin{fill:#7aa6c2} .bin.skewed{fill:#e8590c}
ul.aqe,ul.advisories{margin:4px 0;padding-left:18px} .aqe-decision.not-applied{color:#52606d}
.advisory{color:#8d2b0b}
.detail{position:fixed;right:12px;bottom:12px;max-width:520px;background:#102a43;color:#fff;padding:8px 10px;border-radius:6px;font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.3)}
.empty{color:#52606d;font-style:italic}
"#;

const SCRIPT: &str = r#"
(function () {
  "use strict";
  var detail = document.getElementById("detail");
  var selected = null;
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var task = target.closest(".task-bar");
    if (task) {
      if (selected) { selected.classList.remove("selected"); }
      selected = task;
      task.classList.add("selected");
      detail.textContent = task.getAttribute("data-detail");
      detail.hidden = false;
      return;
    }
    var jump = target.closest("[data-target]");
    if (jump) {
      var section = document.getElementById(jump.getAttribute("data-target"));
      if (section) { section.scrollIntoView({behavior: "smooth", block: "start"}); }
      return;
    }
    detail.hidden = true;
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { detail.hidden = true; }
  });
  document.body.setAttribute("data-tasks", String(document.querySelectorAll(".task-bar").length));
})();
"#;
