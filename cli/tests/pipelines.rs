//! The pipeline scripts of docs/pipelines/ run as a user runs them: without CACHE TABLE the
//! recompute advisory names what the writes computed again; with it, nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run_script(script: &str, dir: &Path) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/pipelines")
        .join(script);
    Command::new(env!("CARGO_BIN_EXE_stagesql"))
        .current_dir(dir)
        .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
        .args(["--tpch", "0.01", "--summary", "--format", "csv", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("stagesql runs")
}

#[test]
fn the_shared_join_is_computed_three_times_without_a_cache_and_once_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let without = run_script("shared_without_cache.sql", dir.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&without.stdout),
        String::from_utf8_lossy(&without.stderr),
    );
    assert!(without.status.success(), "{stderr}");
    assert!(
        stderr.contains("recomputation: 2 stage(s) computed again what earlier jobs had computed"),
        "{stderr}"
    );
    // One summary row per job, named by file and line; the second and third write name
    // the stage of the first job that they computed again.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("shared_without_cache.sql:"))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(
        rows[0].contains("shared_without_cache.sql:11,1,succeeded"),
        "{stdout}"
    );
    assert!(!rows[0].contains("job 1's stage"), "{stdout}");
    assert!(rows[1].contains("= job 1's stage"), "{stdout}");
    assert!(rows[2].contains("= job 1's stage"), "{stdout}");
    for part in ["a", "b", "c"] {
        assert!(dir.path().join("pipeline-out").join(part).is_dir());
    }

    let dir = tempfile::tempdir().unwrap();
    let with = run_script("shared_with_cache.sql", dir.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&with.stdout),
        String::from_utf8_lossy(&with.stderr),
    );
    assert!(with.status.success(), "{stderr}");
    assert!(!stderr.contains("recomputation"), "{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("shared_with_cache.sql:"))
        .collect();
    // CACHE TABLE is a job, then three writes that read its blocks.
    assert_eq!(rows.len(), 4, "{stdout}");
    for write in &rows[1..] {
        let hits: u64 = write.split(',').nth(8).unwrap().parse().unwrap();
        assert!(hits > 0, "{stdout}");
    }
}

/// docs/pipelines.md's medallion pipeline as the page tells it: the broken script fails at
/// gold, the fixed one run with --resume computes gold alone, and the tables are those of a
/// clean run.
#[test]
fn the_medallion_pipeline_fails_at_gold_and_resumes_there() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pipelines");
    let stagesql = |dir: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stagesql"))
            .current_dir(dir)
            .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("stagesql runs")
    };
    let tables = "SELECT (SELECT count(*) FROM bronze.events), (SELECT count(*) FROM silver.events), \
                  (SELECT count(*) FROM gold.customer_spend), (SELECT sum(revenue_usd) FROM gold.daily_revenue)";
    let clean = tempfile::tempdir().unwrap();
    std::fs::copy(
        docs.join("medallion.sql"),
        clean.path().join("pipeline.sql"),
    )
    .unwrap();
    assert!(
        stagesql(clean.path(), &["-q", "-f", "pipeline.sql"])
            .status
            .success()
    );
    let expected = stagesql(clean.path(), &["-q", "--format", "csv", "-c", tables]).stdout;

    let dir = tempfile::tempdir().unwrap();
    // The page's broken gold: a misspelt column at line 43.
    let script = std::fs::read_to_string(docs.join("medallion.sql")).unwrap();
    let broken = script.replace("DISTINCT user_id", "DISTINCT usr_id");
    assert_ne!(broken, script);
    std::fs::write(dir.path().join("pipeline.sql"), broken).unwrap();
    let failed = stagesql(dir.path(), &["-f", "pipeline.sql"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("pipeline.sql:43"));
    std::fs::copy(docs.join("medallion.sql"), dir.path().join("pipeline.sql")).unwrap();
    let resumed = stagesql(
        dir.path(),
        &[
            "-f",
            "pipeline.sql",
            "--resume",
            "--summary",
            "--format",
            "csv",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr),
    );
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped pipeline.sql:18 (INSERT OVERWRITE bronze.events"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped pipeline.sql:32 (INSERT OVERWRITE silver.events"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming at pipeline.sql:42"), "{stderr}");
    // Gold's two writes and the final query: no job reads bronze.
    let jobs: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(",succeeded,"))
        .collect();
    assert_eq!(jobs.len(), 3, "{stdout}");
    let read = stagesql(dir.path(), &["-q", "--format", "csv", "-c", tables]).stdout;
    assert_eq!(read, expected);
}
