//! The event log and the report through the Session API: what a run writes with
//! `spark.eventLog.enabled`, checked against the session's own job reports; failed,
//! retried and cancelled jobs; cache events; in-memory recordings; EXPLAIN ANALYZE FORMAT
//! HTML. Nothing here depends on how long anything took, except the skewed join, whose
//! one heavy task does a thousand times the work of the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use stagesql::eventlog::{self, LogEvent};
use stagesql::{Session, SessionOptions};

mod common;
use common::eventually;

fn session(settings: &[(&str, &str)]) -> Session {
    Session::with_options(SessionOptions {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SessionOptions::default()
    })
    .unwrap()
}

/// A join whose key 1 matches 3,001 × 3,001 rows in one reduce task while every other key
/// matches one row: the task of key 1 is skewed by any measure.
const SKEWED_JOIN: &str = "
    SET spark.sql.shuffle.partitions = 8;
    SET spark.sql.autoBroadcastJoinThreshold = -1;
    SET spark.sql.adaptive.skewJoin.enabled = false;
    SET spark.sql.adaptive.coalescePartitions.enabled = false;
    CREATE VIEW facts AS SELECT CASE WHEN value % 50 = 0 THEN 1 ELSE value END AS k, value AS v FROM range(0, 150000);
    CREATE VIEW dims AS SELECT CASE WHEN value % 50 = 0 THEN 1 ELSE value END AS k, value AS w FROM range(0, 150000);
    SELECT count(*), sum(w) FROM facts JOIN dims ON facts.k = dims.k;
";

fn event_name(event: &LogEvent) -> String {
    serde_json::to_value(event).unwrap()["Event"]
        .as_str()
        .unwrap()
        .to_string()
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_log_tells_a_skewed_join_as_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("events");
    let session = session(&[
        ("spark.eventLog.enabled", "true"),
        ("spark.eventLog.dir", logs.to_str().unwrap()),
        ("spark.executor.instances", "1"),
        ("spark.executor.cores", "2"),
    ]);
    let writing = session.event_log().unwrap().path().unwrap();
    assert!(writing.to_string_lossy().ends_with(".jsonl.inprogress"));
    let results = session.sql(SKEWED_JOIN).await.unwrap();
    let rows = stagesql::tpch::answers::rows(results.last().unwrap().batches().unwrap()).unwrap();
    // Key 1 has 3,001 rows a side (3,000 multiples of 50, and 1 itself).
    assert_eq!(rows[0][0], (3001 * 3001 + 150_000 - 3001).to_string());
    let report = session.jobs().pop().unwrap();

    let events = eventlog::read(&writing).unwrap();
    let names: Vec<String> = events.iter().map(event_name).collect();
    assert_eq!(names[0], "SparkListenerLogStart");
    assert_eq!(names[1], "SparkListenerApplicationStart");
    let LogEvent::ApplicationStart {
        properties, cores, ..
    } = &events[1]
    else {
        unreachable!()
    };
    assert_eq!(*cores, 2);
    assert_eq!(properties["spark.eventLog.enabled"], "true");
    // The job's start lists its stages as planned, as the session's report has them.
    let (stage_infos, description) = events
        .iter()
        .find_map(|e| match e {
            LogEvent::JobStart {
                job_id,
                stage_infos,
                description,
                ..
            } if *job_id == report.job => Some((stage_infos.clone(), description.clone())),
            _ => None,
        })
        .unwrap();
    assert!(description.contains("JOIN dims"), "{description}");
    let planned: Vec<usize> = stage_infos.iter().map(|s| s.stage_id).collect();
    let ran: Vec<usize> = report.stages.iter().map(|s| s.stage).collect();
    assert_eq!(planned, ran);
    assert!(
        stage_infos.iter().any(|s| s.name.contains("HashJoin")),
        "{stage_infos:?}"
    );

    // Every task attempt the report has ended in the log, once, with its slot and measures.
    // By (stage, task, attempt): executor, slot, launch, finish, shuffle bytes read.
    type Ended = (String, usize, f64, f64, u64);
    let mut ended: BTreeMap<(usize, usize, usize), Ended> = BTreeMap::new();
    for event in &events {
        if let LogEvent::TaskEnd {
            job_id,
            stage_id,
            task_info,
            task_metrics,
            ..
        } = event
            && *job_id == report.job
        {
            let key = (*stage_id, task_info.index, task_info.attempt);
            let value = (
                task_info.executor_id.clone(),
                task_info.slot,
                task_info.launch_time,
                task_info.finish_time,
                task_metrics.shuffle_read_metrics.bytes,
            );
            assert!(ended.insert(key, value).is_none(), "{key:?} ended twice");
        }
    }
    let attempts: usize = report.stages.iter().map(|s| s.attempts.len()).sum();
    assert_eq!(ended.len(), attempts);
    for stage in &report.stages {
        for attempt in &stage.attempts {
            let (_, slot, _, _, shuffle_read) =
                &ended[&(stage.stage, attempt.task, attempt.attempt)];
            assert_eq!(*slot, attempt.slot);
            assert_eq!(*shuffle_read, attempt.shuffle_read_bytes);
        }
    }
    // The join's tasks read shuffle output (measured from the stage's plan after it ran).
    assert!(ended.values().any(|v| v.4 > 0));
    // Slots are real: never two attempts in one slot at once, never a slot beyond the cores.
    let mut by_slot: BTreeMap<(String, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for (executor, slot, launch, finish, _) in ended.values() {
        assert!(*slot < 2, "slot {slot} on an executor with 2 cores");
        by_slot
            .entry((executor.clone(), *slot))
            .or_default()
            .push((*launch, *finish));
    }
    for (slot, mut spans) in by_slot {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in spans.windows(2) {
            // Times are rounded to the microsecond.
            assert!(pair[1].0 >= pair[0].1 - 0.01, "{slot:?}: {pair:?} overlap");
        }
    }
    // Each stage completes after its tasks end; the job ends last, succeeded.
    let position = |wanted: &dyn Fn(&LogEvent) -> bool| events.iter().position(wanted).unwrap();
    let job_end =
        position(&|e| matches!(e, LogEvent::JobEnd { job_id, .. } if *job_id == report.job));
    let LogEvent::JobEnd { job_result, .. } = &events[job_end] else {
        unreachable!()
    };
    assert_eq!(job_result.result, "JobSucceeded");
    for stage in &report.stages {
        let completed = position(
            &|e| matches!(e, LogEvent::StageCompleted { stage_id, .. } if *stage_id == stage.stage),
        );
        let last_end = events
            .iter()
            .rposition(
                |e| matches!(e, LogEvent::TaskEnd { stage_id, .. } if *stage_id == stage.stage),
            )
            .unwrap();
        assert!(last_end < completed && completed < job_end);
    }
    // Adaptive execution said why it left the join's stage alone; the skew is advised on.
    assert!(events.iter().any(|e| matches!(e,
        LogEvent::StageSubmitted { adaptive, .. } if adaptive.iter().any(|d| d.rule == "skew join" && !d.applied))));
    let advisories: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Advisory { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    assert!(advisories.contains(&"skew"), "{advisories:?}");

    // The report draws it: the skewed task is marked in its stage.
    let runs = stagesql::report::read_runs(std::slice::from_ref(&logs)).unwrap();
    let html = stagesql::report::render(&runs);
    assert!(html.contains("task-bar skewed"));
    assert_eq!(html.matches("<rect class=\"task-bar").count(), attempts);

    // The session's end ends the application and gives the file its final name.
    drop(session);
    let files = files_in(&logs);
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().ends_with(".jsonl"));
    let events = eventlog::read(&files[0]).unwrap();
    assert_eq!(
        event_name(events.last().unwrap()),
        "SparkListenerApplicationEnd"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retried_failed_and_cancelled_jobs_are_logged_with_why() {
    let session = Arc::new(session(&[
        ("spark.executor.cores", "2"),
        ("spark.sql.shuffle.partitions", "4"),
    ]));
    let recording = session.record_events();
    // Stage 1's task 0 fails once and is retried.
    session
        .sql("SET stagesql.test.fail_tasks = '1.0.1'")
        .await
        .unwrap();
    session
        .sql("SELECT value % 7, count(*) FROM range(0, 10000) GROUP BY 1")
        .await
        .unwrap();
    // Stage 3's task 0 fails every attempt: the job fails.
    session
        .sql("SET stagesql.test.fail_tasks = '3.0.1,3.0.2,3.0.3,3.0.4'")
        .await
        .unwrap();
    let failed = session
        .sql("SELECT value % 7, count(*) FROM range(0, 10000) GROUP BY 1")
        .await;
    assert!(failed.is_err());
    session.sql("RESET stagesql.test.fail_tasks").await.unwrap();
    // Cancelled: dropped once a task has started.
    let mut long = Box::pin(session.sql(
        "SELECT count(*) FROM (SELECT v % 1000 AS k FROM generate_series(1, 100000000000) t(v)) GROUP BY k",
    ));
    let started = |log: &stagesql::eventlog::EventLog| {
        log.events()
            .iter()
            .any(|e| matches!(e, LogEvent::TaskStart { job_id: 3, .. }))
    };
    tokio::select! {
        _ = &mut long => panic!("the job should not finish"),
        _ = eventually("a task of job 3 started", || started(&recording)) => {}
    }
    drop(long);
    eventually("job 3 ended", || {
        recording
            .events()
            .iter()
            .any(|e| matches!(e, LogEvent::JobEnd { job_id: 3, .. }))
    })
    .await;
    session.stop_recording(&recording);
    let events = recording.events();

    let results: BTreeMap<usize, (String, Option<String>)> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::JobEnd {
                job_id, job_result, ..
            } => Some((
                *job_id,
                (job_result.result.clone(), job_result.exception.clone()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(results[&1].0, "JobSucceeded");
    assert_eq!(results[&2].0, "JobFailed");
    assert!(
        results[&2].1.as_deref().unwrap().contains("failed 4 times"),
        "{results:?}"
    );
    assert_eq!(
        results[&3],
        ("JobCancelled".to_string(), Some("cancelled".to_string()))
    );
    // Job 1's retried task: its first attempt failed with the injected error, its second
    // succeeded; the report marks both as retried.
    let attempts: Vec<(usize, String)> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::TaskEnd {
                job_id: 1,
                stage_id: 1,
                task_info,
                task_end_reason,
                ..
            } if task_info.index == 0 => Some((task_info.attempt, task_end_reason.reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (1, "ExceptionFailure".to_string()),
            (2, "Success".to_string())
        ]
    );
    // The cancelled job's running tasks were killed, and said so.
    assert!(events.iter().any(|e| matches!(e,
        LogEvent::TaskEnd { job_id: 3, task_end_reason, .. } if task_end_reason.reason == "TaskKilled")));
    // The recording ended the application; later jobs are not in it.
    assert_eq!(
        event_name(events.last().unwrap()),
        "SparkListenerApplicationEnd"
    );
    session.sql("SELECT 1").await.unwrap();
    assert_eq!(recording.events().len(), events.len());

    let html = stagesql::report::render_events("test", &events);
    for class in [
        "job-bar failed",
        "job-bar cancelled",
        "task-bar failed",
        "task-bar killed",
        "retried",
    ] {
        assert!(html.contains(class), "no {class} in the report");
    }
    assert!(html.contains("failed 4 times"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_reads_and_changes_are_events() {
    let session = session(&[("spark.sql.shuffle.partitions", "4")]);
    let recording = session.record_events();
    session
        .sql(
            "CACHE TABLE t AS SELECT value % 10 AS k, count(*) AS n FROM range(0, 1000) GROUP BY 1",
        )
        .await
        .unwrap();
    session.sql("SELECT sum(n) FROM t").await.unwrap();
    session.sql("UNCACHE TABLE t").await.unwrap();
    session.stop_recording(&recording);
    let events = recording.events();
    let (name, rows, blocks) = events
        .iter()
        .find_map(|e| match e {
            LogEvent::CacheStored {
                name,
                rows,
                partitions,
                ..
            } => Some((name.clone(), *rows, *partitions as u64)),
            _ => None,
        })
        .unwrap();
    assert_eq!((name.as_str(), rows), ("t", 10));
    // The query read every block of the cache.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LogEvent::CacheRead { hits, misses: 0, .. } if *hits == blocks))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LogEvent::CacheRemoved { name, .. } if name == "t"))
    );
    let html = stagesql::report::render_events("test", &events);
    assert!(html.contains(&format!("cache: {blocks} block(s) read")));
    assert!(html.contains("cache-change"));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_analyze_format_html_writes_the_report_of_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let session = session(&[
        ("stagesql.report.dir", reports.to_str().unwrap()),
        ("spark.sql.shuffle.partitions", "4"),
    ]);
    session.sql("SELECT 1").await.unwrap();
    let out = session
        .sql("EXPLAIN ANALYZE FORMAT HTML SELECT value % 3, count(*) FROM range(0, 100) GROUP BY 1")
        .await
        .unwrap();
    let rows = stagesql::tpch::answers::rows(out[0].batches().unwrap()).unwrap();
    let path = std::path::PathBuf::from(&rows[0][0]);
    let job = session.jobs().last().unwrap().job;
    assert_eq!(path, reports.join(format!("job-{job}.html")));
    let html = std::fs::read_to_string(&path).unwrap();
    // Its job only, with its stages and tasks.
    assert_eq!(html.matches("class=\"job-bar").count(), 1);
    assert!(html.contains(&format!("id=\"r0-job-{job}\"")));
    assert!(html.contains("class=\"stage-node"));
    assert!(html.contains("class=\"task-bar"));
    // A report directory that cannot be made is an error naming the setting.
    std::fs::write(dir.path().join("file"), "").unwrap();
    session
        .sql(&format!(
            "SET stagesql.report.dir = '{}'",
            dir.path().join("file").join("sub").display()
        ))
        .await
        .unwrap();
    let error = session
        .sql("EXPLAIN ANALYZE FORMAT HTML SELECT 1")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("stagesql.report.dir"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn event_log_settings_are_fixed_at_startup_and_checked() {
    let session = session(&[]);
    assert!(session.event_log().is_none());
    let error = session
        .sql("SET spark.eventLog.enabled = true")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("spark.eventLog.enabled"),
        "{error}"
    );
    // A directory that cannot be created is an error at startup, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let error = Session::with_options(SessionOptions {
        settings: vec![
            ("spark.eventLog.enabled".into(), "true".into()),
            (
                "spark.eventLog.dir".into(),
                dir.path().join("file").to_string_lossy().into_owned(),
            ),
        ],
        ..SessionOptions::default()
    })
    .err()
    .unwrap();
    assert!(error.to_string().contains("spark.eventLog.dir"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spills_and_recomputation_are_logged_and_drawn() {
    let local = tempfile::tempdir().unwrap();
    let session = session(&[
        ("spark.executor.memory", "32m"),
        ("spark.local.dir", local.path().to_str().unwrap()),
        (
            "datafusion.execution.sort_spill_reservation_bytes",
            "1048576",
        ),
        ("spark.sql.shuffle.partitions", "4"),
    ]);
    let recording = session.record_events();
    // A sort that does not fit in the tasks' memory spills.
    session
        .sql("EXPLAIN ANALYZE SELECT v % 1000 AS k, v FROM generate_series(1, 3000000) t(v) ORDER BY k, v")
        .await
        .unwrap();
    // The same aggregate twice, not cached: the second job computes the first's again.
    session
        .sql("CREATE TABLE src AS SELECT v FROM generate_series(1, 1000) t(v)")
        .await
        .unwrap();
    let aggregate = "SELECT v % 10 AS k, count(*) FROM src GROUP BY 1";
    session.sql(aggregate).await.unwrap();
    session.sql(aggregate).await.unwrap();
    session.stop_recording(&recording);
    let events = recording.events();
    let spilled: u64 = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Spill {
                job_id: 1, bytes, ..
            } => Some(*bytes),
            _ => None,
        })
        .sum();
    assert!(spilled > 0);
    // The spills add up to what the task ends say.
    let in_ends: u64 = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::TaskEnd {
                job_id: 1,
                task_metrics,
                ..
            } => Some(task_metrics.disk_bytes_spilled),
            _ => None,
        })
        .sum();
    assert_eq!(spilled, in_ends);
    let kinds: Vec<(usize, &str)> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Advisory { job_id, kind, .. } => Some((*job_id, kind.as_str())),
            _ => None,
        })
        .collect();
    assert!(kinds.contains(&(1, "spill")), "{kinds:?}");
    let jobs = session.jobs();
    let (first, second) = (jobs[jobs.len() - 2].job, jobs[jobs.len() - 1].job);
    assert!(kinds.contains(&(second, "recomputes")), "{kinds:?}");
    assert!(!kinds.contains(&(first, "recomputes")), "{kinds:?}");
    let html = stagesql::report::render_events("test", &events);
    assert!(html.contains("spilled"));
    assert!(html.contains("data-kind=\"recomputes\""));
}
