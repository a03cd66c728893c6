//! The event log and the report from the command line: `--conf spark.eventLog.enabled=true`,
//! `stagesql report`, `--report` and `EXPLAIN ANALYZE FORMAT HTML`, with their errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn stagesql(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stagesql"))
        .current_dir(dir)
        .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("stagesql runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const QUERY: &str = "SET spark.sql.shuffle.partitions = 4; SELECT value % 5 AS k, count(*) FROM range(0, 1000) GROUP BY 1 ORDER BY 1;";

#[test]
fn an_event_log_written_by_a_run_is_drawn_by_stagesql_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = stagesql(
        dir.path(),
        &[
            "--conf",
            "spark.eventLog.enabled=true",
            "--master",
            "local[2]",
            "-q",
            "-c",
            QUERY,
        ],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    // The default directory, one finished log.
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("stagesql-events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1);
    let name = logs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("local-") && name.ends_with(".jsonl"),
        "{name}"
    );

    // A directory of logs, drawn into the default report.html.
    let report = stagesql(dir.path(), &["report", "stagesql-events"]);
    assert!(report.status.success(), "{}", text(&report.stderr));
    assert_eq!(
        text(&report.stdout).trim(),
        "report.html: 1 run(s), 1 job(s)"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("class=\"job-bar succeeded\""));
    assert!(html.contains("class=\"stage-node"));
    assert!(html.contains("class=\"lane\""));
    // Self-contained: nothing to fetch.
    for outside in ["http://", "https://", "src=", "<link"] {
        assert!(!html.contains(outside), "the report refers to {outside}");
    }
    // A named file and output, twice: two runs on one page.
    let report = stagesql(
        dir.path(),
        &[
            "report",
            logs[0].to_str().unwrap(),
            logs[0].to_str().unwrap(),
            "-o",
            "out/two.html",
        ],
    );
    assert!(report.status.success(), "{}", text(&report.stderr));
    let html = std::fs::read_to_string(dir.path().join("out/two.html")).unwrap();
    assert!(html.contains("id=\"r1-job-1\""));
}

#[test]
fn bad_event_logs_are_named_with_where_they_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = stagesql(dir.path(), &["report", "nowhere.jsonl"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("error: nowhere.jsonl:"),
        "{}",
        text(&missing.stderr)
    );
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"Event\":\"SparkListenerApplicationEnd\",\"Timestamp\":1}\nnot json\n{\"Event\":\"SparkListenerApplicationEnd\",\"Timestamp\":2}\n",
    )
    .unwrap();
    let bad = stagesql(dir.path(), &["report", "bad.jsonl"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("bad.jsonl:2: not an event"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let empty = stagesql(dir.path(), &["report", "empty"]);
    assert!(
        text(&empty.stderr).contains("no event logs"),
        "{}",
        text(&empty.stderr)
    );
    assert!(!dir.path().join("report.html").exists());
    // A bad event log directory at startup is named with its setting.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let startup = stagesql(
        dir.path(),
        &[
            "--conf",
            "spark.eventLog.enabled=true",
            "--conf",
            "spark.eventLog.dir=file",
            "-c",
            "SELECT 1",
        ],
    );
    assert!(!startup.status.success());
    assert!(
        text(&startup.stderr).contains("spark.eventLog.dir"),
        "{}",
        text(&startup.stderr)
    );
}

#[test]
fn a_run_writes_its_report_and_explain_analyze_format_html_writes_a_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("q.sql");
    std::fs::write(&script, QUERY).unwrap();
    let run = stagesql(dir.path(), &["-q", "-f", "q.sql", "--report", "run.html"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("report written to run.html"));
    let html = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    assert!(
        html.contains("q.sql:1"),
        "the job is named by file and line"
    );
    // No event log was asked for: none was written.
    assert!(!dir.path().join("stagesql-events").exists());

    let explain = stagesql(
        dir.path(),
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "EXPLAIN ANALYZE FORMAT HTML SELECT value % 3, count(*) FROM range(0, 100) GROUP BY 1",
        ],
    );
    assert!(explain.status.success(), "{}", text(&explain.stderr));
    let stdout = text(&explain.stdout);
    let path = stdout.lines().last().unwrap().trim();
    assert_eq!(path, "stagesql-reports/job-1.html");
    let html = std::fs::read_to_string(dir.path().join(path)).unwrap();
    assert!(html.contains("id=\"r0-job-1\""));
}
