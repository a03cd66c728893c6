//! Warehouse tables across processes, as users run them: a write killed (SIGKILL) while its
//! tasks write or while it commits leaves the table exactly as it was, for a reader in
//! another process and for the next process on the warehouse; a script that failed at its
//! last step resumes there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `stagesql` in `dir` on the warehouse `dir/wh`, with `conf` settings and `args`.
fn stagesql(dir: &Path, conf: &[&str], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stagesql"));
    command
        .current_dir(dir)
        .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
        .args([
            "--conf",
            "spark.sql.warehouse.dir=wh",
            "--master",
            "local[2]",
        ])
        // Four write tasks: no coalescing of the shuffle before the write.
        .args(["--conf", "spark.sql.shuffle.partitions=4"])
        .args(["--conf", "spark.sql.adaptive.enabled=false"]);
    for setting in conf {
        command.args(["--conf", setting]);
    }
    command.args(args).stdin(Stdio::null());
    command
}

fn run(dir: &Path, sql: &str) -> Output {
    let output = stagesql(dir, &[], &["-q", "--format", "csv", "-c", sql])
        .output()
        .expect("stagesql runs");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The rows of `sql`, as CSV lines without the header, in order.
fn rows(dir: &Path, sql: &str) -> Vec<String> {
    String::from_utf8_lossy(&run(dir, sql).stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => pending.push(path),
                false => found.push(path),
            }
        }
    }
    found.sort();
    found
}

fn parquet_files_under(dir: &Path, within: &str) -> usize {
    files(dir)
        .iter()
        .filter(|p| p.to_string_lossy().contains(within))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count()
}

/// Waits until `ready` or fails after a limit meant for the slowest machine.
fn wait_for(what: &str, child: &mut Child, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("the writer ended ({status}) before {what}: {stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "waited two minutes for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SETUP: &str = "
    CREATE TABLE t (k BIGINT, n BIGINT, p BIGINT) USING parquet PARTITIONED BY (p);
    INSERT INTO t SELECT k, k * 10, k % 3 FROM generate_series(1, 30) g(k);";

/// Writes of every kind: four tasks each (a GROUP BY on 4 shuffle partitions).
const WRITES: [(&str, &str); 4] = [
    (
        "INSERT INTO",
        "INSERT INTO t SELECT k, count(*), k % 3 FROM generate_series(1, 400) g(k) GROUP BY k",
    ),
    (
        "static INSERT OVERWRITE",
        "INSERT OVERWRITE t PARTITION (p = 1) SELECT k, count(*) FROM generate_series(1, 400) g(k) GROUP BY k",
    ),
    (
        "dynamic INSERT OVERWRITE",
        "SET spark.sql.sources.partitionOverwriteMode = dynamic; INSERT OVERWRITE t SELECT k, count(*), k % 5 FROM generate_series(1, 400) g(k) GROUP BY k",
    ),
    (
        "CTAS",
        "CREATE TABLE u USING parquet PARTITIONED BY (p) AS SELECT k, count(*) AS n, k % 3 AS p FROM generate_series(1, 400) g(k) GROUP BY k",
    ),
];

const READ: &str = "SELECT p, count(*), sum(n) FROM t GROUP BY p ORDER BY p";

/// Runs `write` in a process of its own with the test setting `slow`, kills it (SIGKILL)
/// once `ready` (given the table's directory and how many files the table had) says it is
/// where the test wants it, and checks that a reader meanwhile, and the next process after,
/// see the table as it was, with no file left over. Returns the directory and the rows.
fn kill_mid_write(
    kind: &str,
    write: &str,
    slow: &str,
    what: &str,
    ready: impl Fn(&Path, usize) -> bool,
) -> (tempfile::TempDir, Vec<String>) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    run(dir, SETUP);
    let before = rows(dir, READ);
    let committed = files(&dir.join("wh/t"));
    let mut writer = stagesql(dir, &[slow], &["-q", "-c", write])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let table = dir.join(if kind == "CTAS" { "wh/u" } else { "wh/t" });
    let already = if kind == "CTAS" { 0 } else { committed.len() };
    wait_for(what, &mut writer, || ready(&table, already));
    // A reader in another process meanwhile sees the table as it was.
    assert_eq!(rows(dir, READ), before, "{kind}: a reader during the write");
    writer.kill().unwrap();
    writer.wait().unwrap();
    // The next process on the warehouse: same rows, nothing of the write left.
    assert_eq!(rows(dir, READ), before, "{kind}: after the kill");
    assert_eq!(files(&dir.join("wh/t")), committed, "{kind}");
    assert!(files(&dir.join("wh/u")).is_empty(), "{kind}");
    assert!(files(&dir.join("wh/_stagesql/writes")).is_empty(), "{kind}");
    if kind == "CTAS" {
        let output = stagesql(dir, &[], &["-c", "SELECT * FROM u"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{kind}: the table must not exist");
    }
    (temp, before)
}

#[test]
fn a_write_killed_while_its_tasks_write_leaves_the_table_as_it_was() {
    for (kind, write) in WRITES {
        // Task 1 writes its files, then waits: the others finish; nothing is committed.
        let (temp, before) = kill_mid_write(
            kind,
            write,
            "stagesql.test.slow_write_tasks=1:120000",
            "the write's tasks to write their files",
            |table, _| parquet_files_under(table, ".stagesql-staging") >= 4,
        );
        // Run again to the end, the write takes effect once.
        let dir = temp.path();
        run(dir, write);
        let after = rows(dir, READ);
        if kind != "CTAS" {
            assert_ne!(after, before, "{kind}");
        }
        if kind.contains("OVERWRITE") {
            run(dir, write);
            assert_eq!(
                rows(dir, READ),
                after,
                "{kind}: rerunning an overwrite gives the same table"
            );
        }
    }
}

#[test]
fn a_write_killed_while_it_commits_leaves_the_table_as_it_was() {
    for (kind, write) in WRITES {
        // The commit moves the files into the table's directories, then waits before
        // recording them: moved, they are still not the table's.
        kill_mid_write(
            kind,
            write,
            "stagesql.test.slow_commit_ms=120000",
            "the commit to move the files",
            |table, already| {
                let moved = files(table)
                    .iter()
                    .filter(|p| !p.to_string_lossy().contains(".stagesql-staging"))
                    .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                    .count();
                moved >= already + 4
            },
        );
    }
}

#[test]
fn a_script_that_failed_at_gold_resumes_at_gold() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let script = |gold_column: &str| {
        format!(
            "SET spark.sql.sources.partitionOverwriteMode = dynamic;
CREATE TABLE IF NOT EXISTS bronze (id BIGINT, amount BIGINT, run_date STRING) USING parquet PARTITIONED BY (run_date);
INSERT OVERWRITE bronze SELECT k, k * 10, '2024-01-01' FROM generate_series(1, 100) g(k);
CREATE TABLE IF NOT EXISTS silver (id BIGINT, amount BIGINT, run_date STRING) USING parquet PARTITIONED BY (run_date);
INSERT OVERWRITE silver SELECT id, amount, run_date FROM bronze WHERE amount > 500 AND run_date = '2024-01-01';
CREATE TABLE IF NOT EXISTS gold (run_date STRING, total BIGINT) USING parquet;
INSERT OVERWRITE gold SELECT run_date, sum({gold_column}) FROM silver GROUP BY run_date;
"
        )
    };
    std::fs::write(dir.join("pipeline.sql"), script("amont")).unwrap();
    let failed = stagesql(dir, &[], &["-f", "pipeline.sql"])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("pipeline.sql:7"));
    // Someone fixes gold; the rerun skips bronze and silver.
    std::fs::write(dir.join("pipeline.sql"), script("amount")).unwrap();
    let resumed = stagesql(
        dir,
        &[],
        &[
            "-f",
            "pipeline.sql",
            "--resume",
            "--summary",
            "--format",
            "csv",
        ],
    )
    .output()
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr),
    );
    assert!(resumed.status.success(), "{stderr}");
    for line in [2, 3, 4, 5, 6] {
        assert!(
            stderr.contains(&format!("skipped pipeline.sql:{line} ")),
            "{stderr}"
        );
        assert!(
            stdout.contains(&format!("pipeline.sql:{line},,skipped,")),
            "{stdout}"
        );
    }
    assert!(stderr.contains("resuming at pipeline.sql:7"), "{stderr}");
    // Only gold ran: one job.
    let jobs: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(",succeeded,"))
        .collect();
    assert_eq!(jobs.len(), 1, "{stdout}");
    assert!(jobs[0].starts_with("pipeline.sql:7,"), "{stdout}");
    assert_eq!(rows(dir, "SELECT * FROM gold"), ["2024-01-01,37750"]);

    // A change to bronze by someone else: the run starts again at the first statement that
    // touches bronze, and rebuilds it.
    run(dir, "INSERT OVERWRITE bronze SELECT 1, 1000, '2024-01-01'");
    let resumed = stagesql(dir, &[], &["-f", "pipeline.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
    assert_eq!(rows(dir, "SELECT * FROM gold"), ["2024-01-01,37750"]);

    // A plain INSERT INTO that completed is skipped loudly; if what it read changed, resuming
    // is refused.
    std::fs::write(
        dir.join("append.sql"),
        "CREATE TABLE IF NOT EXISTS log (n BIGINT) USING parquet;
INSERT INTO log SELECT count(*) FROM bronze;
SELECT * FROM no_such_table;
",
    )
    .unwrap();
    assert!(
        !stagesql(dir, &[], &["-f", "append.sql"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let resumed = stagesql(dir, &[], &["-f", "append.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("skipped append.sql:2 "), "{stderr}");
    assert!(stderr.contains("not idempotent"), "{stderr}");
    run(dir, "INSERT INTO bronze SELECT 2, 2, '2024-01-02'");
    let refused = stagesql(dir, &[], &["-f", "append.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("cannot resume at line 2"), "{stderr}");
    assert_eq!(rows(dir, "SELECT count(*) FROM log"), ["1"]);
}

#[test]
fn resume_never_drops_a_table_it_skips_nor_appends_twice() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A DROP before a CTAS: both completed, both skipped; the table stays.
    std::fs::write(
        dir.join("d.sql"),
        "DROP TABLE IF EXISTS x;
CREATE TABLE x USING parquet AS SELECT value AS v FROM generate_series(1, 10);
SET spark.sql.shuffle.partitions = 3;
SELECT nope;
",
    )
    .unwrap();
    assert!(
        !stagesql(dir, &[], &["-f", "d.sql"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let resumed = stagesql(dir, &[], &["-f", "d.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("skipped d.sql:1 "), "{stderr}");
    assert!(stderr.contains("skipped d.sql:2 "), "{stderr}");
    // The SET runs again, quietly; the run resumes at the statement that failed.
    assert!(stderr.contains("resuming at d.sql:4"), "{stderr}");
    assert_eq!(rows(dir, "SELECT count(*) FROM x"), ["10"]);

    // A completed INSERT INTO after the statement where the run starts again is refused,
    // not appended twice.
    std::fs::write(
        dir.join("a.sql"),
        "CREATE TABLE IF NOT EXISTS src (id BIGINT) USING parquet;
INSERT OVERWRITE src SELECT value FROM generate_series(1, 10);
CREATE TABLE IF NOT EXISTS log (id BIGINT) USING parquet;
INSERT INTO log SELECT id FROM src;
SELECT nope;
",
    )
    .unwrap();
    assert!(
        !stagesql(dir, &[], &["-f", "a.sql"])
            .output()
            .unwrap()
            .status
            .success()
    );
    run(dir, "INSERT INTO src VALUES (11)");
    let refused = stagesql(dir, &[], &["-f", "a.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("cannot resume"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert_eq!(rows(dir, "SELECT count(*) FROM log"), ["10"]);

    // --resume needs script files.
    let misuse = stagesql(dir, &[], &["--resume", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(misuse.status.code(), Some(2));
}

/// A step that reads a warehouse table through a table of the session (`CREATE TABLE m AS
/// SELECT … FROM src`), a cache or a view depends on that table: when it changes, --resume
/// runs the step again (before, it skipped it and kept results made from the old data).
#[test]
fn resume_sees_changes_through_session_tables_caches_and_views() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run(
        dir,
        "CREATE TABLE src (a INT) USING parquet; INSERT INTO src VALUES (1);
         CREATE TABLE out_m (a INT) USING parquet; CREATE TABLE out_c (a INT) USING parquet;
         CREATE TABLE out_v (a INT) USING parquet;",
    );
    std::fs::write(
        dir.join("s.sql"),
        "CREATE TABLE m AS SELECT * FROM src;
CACHE TABLE cc AS SELECT a FROM src;
CREATE VIEW v AS SELECT a FROM src;
INSERT OVERWRITE out_m SELECT * FROM m;
INSERT OVERWRITE out_c SELECT * FROM cc;
INSERT OVERWRITE out_v SELECT * FROM v;
SELECT * FROM no_such_table;
",
    )
    .unwrap();
    assert!(
        !stagesql(dir, &[], &["-f", "s.sql"])
            .output()
            .unwrap()
            .status
            .success()
    );
    run(dir, "INSERT INTO src VALUES (2)");
    let resumed = stagesql(dir, &[], &["-f", "s.sql", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(!stderr.contains("skipped"), "{stderr}");
    for table in ["out_m", "out_c", "out_v"] {
        assert_eq!(
            rows(dir, &format!("SELECT * FROM {table} ORDER BY a")),
            ["1", "2"],
            "{table}: {stderr}"
        );
    }
}

#[test]
fn a_directory_is_read_by_its_path_and_never_taken_for_a_table_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.csv"), "x,y\n1,one\n2,two\n").unwrap();
    // By its path, the directory is a table of its files.
    assert_eq!(
        rows(dir.path(), "SELECT x, y FROM 'data/' ORDER BY x"),
        ["1,one", "2,two"]
    );
    // By a bare name, `data` is the catalog's: it does not exist until created, and creating it
    // is not refused as existing already.
    let missing = stagesql(dir.path(), &[], &["-q", "-c", "SELECT * FROM data"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("data"), "{stderr}");
    let created = rows(
        dir.path(),
        "CREATE TABLE data AS SELECT 7 AS n; SELECT n FROM data",
    );
    assert_eq!(created.last().map(String::as_str), Some("7"), "{created:?}");
}
