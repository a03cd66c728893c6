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
