//! Warehouse tables through the Session API: the catalog across sessions, INSERT OVERWRITE
//! static vs dynamic compared row by row with Spark's results, writes under injected task
//! failures and in every mode giving the same table, failed writes leaving the table as it
//! was, checkpoints across a restart.

use std::path::Path;

use stagesql::tpch::answers::rows;
use stagesql::{Session, SessionOptions};

/// A session on the warehouse at `warehouse`, with `settings`.
fn session(warehouse: &Path, settings: &[(&str, &str)]) -> Session {
    let mut all = vec![
        (
            "spark.sql.warehouse.dir".to_string(),
            warehouse.display().to_string(),
        ),
        ("spark.sql.shuffle.partitions".into(), "3".into()),
        ("spark.executor.cores".into(), "2".into()),
    ];
    all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Session::with_options(SessionOptions {
        settings: all,
        ..SessionOptions::default()
    })
    .unwrap()
}

async fn run(session: &Session, sql: &str) {
    session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
}

/// The rows of a query, sorted.
async fn sorted(session: &Session, sql: &str) -> Vec<String> {
    let results = session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
    let mut rows: Vec<String> = rows(results.last().unwrap().batches().unwrap())
        .unwrap()
        .into_iter()
        .map(|row| row.join("|"))
        .collect();
    rows.sort();
    rows
}

async fn error(session: &Session, sql: &str) -> String {
    match session.sql(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e.message(),
    }
}

fn lines(expected: &[&str]) -> Vec<String> {
    let mut rows: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    rows.sort();
    rows
}

const SALES: &str = "
    CREATE TABLE sales (id INT, amount INT, day STRING, region STRING) USING parquet PARTITIONED BY (day, region);
    INSERT INTO sales VALUES
      (1, 10, 'd1', 'n'), (2, 20, 'd1', 's'), (3, 30, 'd2', 'n'), (4, 40, 'd2', 's'), (5, 50, 'd3', 'n');
";

/// Spark's results for the same statements (Spark 3.5, parquet data source tables).
#[tokio::test]
async fn overwrite_static_and_dynamic_replace_what_spark_replaces() {
    for mode in ["stages", "pipelined"] {
        // STATIC, no PARTITION clause: the whole table is replaced.
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), &[("stagesql.execution.mode", mode)]);
        run(&s, SALES).await;
        run(&s, "INSERT OVERWRITE sales SELECT 9, 90, 'd2', 'n'").await;
        assert_eq!(
            sorted(&s, "SELECT * FROM sales").await,
            lines(&["9|90|d2|n"]),
            "{mode}"
        );

        // STATIC with a partial spec: every partition of day='d2' goes, whatever region
        // the query writes.
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), &[("stagesql.execution.mode", mode)]);
        run(&s, SALES).await;
        run(
            &s,
            "INSERT OVERWRITE sales PARTITION (day = 'd2', region) SELECT 9, 90, 'n'",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT * FROM sales").await,
            lines(&["1|10|d1|n", "2|20|d1|s", "9|90|d2|n", "5|50|d3|n"]),
            "{mode}"
        );
        assert_eq!(
            sorted(&s, "SHOW PARTITIONS sales").await,
            lines(&[
                "day=d1/region=n",
                "day=d1/region=s",
                "day=d2/region=n",
                "day=d3/region=n"
            ])
        );

        // DYNAMIC: only the partitions the query writes; d2/s and the rest stay.
        let dir = tempfile::tempdir().unwrap();
        let s = session(
            dir.path(),
            &[
                ("stagesql.execution.mode", mode),
                ("spark.sql.sources.partitionOverwriteMode", "DYNAMIC"),
            ],
        );
        run(&s, SALES).await;
        run(
            &s,
            "INSERT OVERWRITE sales SELECT 9, 90, 'd2', 'n' UNION ALL SELECT 8, 80, 'd4', 'e'",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT * FROM sales").await,
            lines(&[
                "1|10|d1|n",
                "2|20|d1|s",
                "9|90|d2|n",
                "4|40|d2|s",
                "5|50|d3|n",
                "8|80|d4|e"
            ]),
            "{mode}"
        );
        // A query that writes nothing replaces nothing.
        run(
            &s,
            "INSERT OVERWRITE sales SELECT 1, 2, 'd9', 'x' WHERE false",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT count(*) FROM sales").await,
            lines(&["6"])
        );

        // STATIC with a full spec: that partition alone, rows given without its columns.
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), &[("stagesql.execution.mode", mode)]);
        run(&s, SALES).await;
        run(
            &s,
            "INSERT OVERWRITE sales PARTITION (day = 'd1', region = 's') VALUES (7, 70), (6, 60)",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT * FROM sales").await,
            lines(&[
                "1|10|d1|n",
                "7|70|d1|s",
                "6|60|d1|s",
                "3|30|d2|n",
                "4|40|d2|s",
                "5|50|d3|n"
            ]),
            "{mode}"
        );
        // Rerunning an INSERT OVERWRITE gives the same table.
        run(
            &s,
            "INSERT OVERWRITE sales PARTITION (day = 'd1', region = 's') VALUES (7, 70), (6, 60)",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT count(*) FROM sales").await,
            lines(&["6"])
        );
        // INSERT INTO appends, a column list in any order, missing columns NULL.
        run(
            &s,
            "INSERT INTO sales (region, id, day) VALUES ('w', 11, 'd5')",
        )
        .await;
        assert_eq!(
            sorted(&s, "SELECT * FROM sales WHERE day = 'd5'").await,
            lines(&["11|NULL|d5|w"])
        );
    }
}

#[tokio::test]
async fn tables_and_databases_survive_the_session() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = session(dir.path(), &[]);
        run(&s, "CREATE DATABASE bronze COMMENT 'raw'").await;
        run(&s, "USE bronze").await;
        run(&s, "CREATE TABLE events USING parquet PARTITIONED BY (k) AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a')) t(v, k)").await;
        run(&s, "CREATE TABLE default.totals (k STRING, n BIGINT) USING parquet TBLPROPERTIES ('owner' = 'etl')").await;
        run(
            &s,
            "INSERT INTO default.totals SELECT k, count(*) FROM events GROUP BY k",
        )
        .await;
        run(&s, "ALTER TABLE events ADD PARTITION (k = 'z')").await;
    }
    let s = session(dir.path(), &[]);
    assert_eq!(
        sorted(&s, "SHOW DATABASES").await,
        lines(&["bronze", "default"])
    );
    assert_eq!(
        sorted(&s, "SELECT * FROM bronze.events").await,
        lines(&["1|a", "2|b", "3|a"])
    );
    assert_eq!(
        sorted(&s, "SELECT * FROM totals").await,
        lines(&["a|2", "b|1"])
    );
    assert_eq!(
        sorted(&s, "SHOW PARTITIONS bronze.events").await,
        lines(&["k=a", "k=b", "k=z"])
    );
    let described = sorted(&s, "DESCRIBE EXTENDED totals").await.join("\n");
    assert!(described.contains("Type|MANAGED|"), "{described}");
    assert!(
        described.contains("Table Properties|[owner=etl]|"),
        "{described}"
    );
    assert!(described.contains("Statistics|"), "{described}");
    // Dropping a managed table removes its data; an external one keeps it.
    let events_dir = dir.path().join("bronze.db").join("events");
    assert!(events_dir.join("k=a").is_dir());
    run(&s, "DROP TABLE bronze.events").await;
    assert!(!events_dir.exists());
    let external = dir.path().join("outside");
    run(
        &s,
        &format!(
            "CREATE TABLE ext USING parquet LOCATION '{}' AS SELECT 1 AS x",
            external.display()
        ),
    )
    .await;
    run(&s, "DROP TABLE ext").await;
    assert!(std::fs::read_dir(&external).unwrap().count() > 0);
    // Over the files left behind, a new external table finds them.
    run(
        &s,
        &format!(
            "CREATE TABLE ext2 USING parquet LOCATION '{}'",
            external.display()
        ),
    )
    .await;
    assert_eq!(sorted(&s, "SELECT x FROM ext2").await, lines(&["1"]));
    run(&s, "CREATE TABLE bronze.kept (a INT) USING parquet").await;
    let message = error(&s, "DROP DATABASE bronze").await;
    assert!(message.contains("[SCHEMA_NOT_EMPTY]"), "{message}");
    run(&s, "DROP DATABASE bronze CASCADE").await;
    assert!(!dir.path().join("bronze.db").exists());
    let message = error(&s, "USE bronze").await;
    assert!(message.contains("[SCHEMA_NOT_FOUND]"), "{message}");
}

#[tokio::test]
async fn writes_under_task_failures_equal_the_pipelined_table() {
    let write = "
        CREATE TABLE t (k INT, v BIGINT, p INT) USING parquet PARTITIONED BY (p);
        INSERT INTO t SELECT k, k * 3, k % 4 FROM generate_series(1, 2000) g(k);
        INSERT OVERWRITE t PARTITION (p = 1) SELECT k, -k FROM generate_series(1, 300) g(k);
        CREATE TABLE agg USING parquet AS SELECT p, count(*) AS n, sum(v) AS s FROM t GROUP BY p;
    ";
    let expected = {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), &[("stagesql.execution.mode", "pipelined")]);
        run(&s, write).await;
        (
            sorted(&s, "SELECT * FROM t").await,
            sorted(&s, "SELECT * FROM agg").await,
        )
    };
    for (seed, cores) in [("1", "1"), ("2", "3"), ("3", "2")] {
        let dir = tempfile::tempdir().unwrap();
        let s = session(
            dir.path(),
            &[
                ("stagesql.test.fault_seed", seed),
                ("stagesql.test.fault_probability", "0.5"),
                ("spark.executor.cores", cores),
            ],
        );
        run(&s, write).await;
        let got = (
            sorted(&s, "SELECT * FROM t").await,
            sorted(&s, "SELECT * FROM agg").await,
        );
        assert_eq!(got, expected, "seed {seed}");
        let retried: usize = s
            .jobs()
            .iter()
            .flat_map(|j| &j.stages)
            .map(|stage| stage.retries())
            .sum();
        assert!(retried > 0, "seed {seed}: no task was retried");
        // The failed attempts' files stayed in staging, and staging is gone.
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".stagesql-staging"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[tokio::test]
async fn a_failed_write_leaves_the_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[("spark.task.maxFailures", "2")]);
    run(
        &s,
        "CREATE TABLE t (a INT, p INT) USING parquet PARTITIONED BY (p)",
    )
    .await;
    run(&s, "INSERT INTO t VALUES (1, 1), (2, 2)").await;
    let before = walk(dir.path());
    // Fails in its tasks (a cast that cannot hold the value), after other rows were written.
    for statement in [
        "INSERT OVERWRITE t SELECT CAST(k AS TINYINT), k % 3 FROM generate_series(1, 1000) g(k)",
        "INSERT INTO t SELECT CAST(k AS TINYINT), k % 3 FROM generate_series(1, 1000) g(k)",
        "CREATE TABLE u USING parquet AS SELECT CAST(k AS TINYINT) AS a FROM generate_series(1, 1000) g(k)",
    ] {
        error(&s, statement).await;
        assert_eq!(
            sorted(&s, "SELECT * FROM t").await,
            lines(&["1|1", "2|2"]),
            "{statement}"
        );
        assert_eq!(walk(dir.path()), before, "{statement}");
    }
    assert!(error(&s, "SELECT * FROM u").await.contains("u"));
    // Errors name the problem.
    let message = error(&s, "INSERT INTO t VALUES (1, 2, 3)").await;
    assert!(
        message.contains("INSERT_COLUMN_ARITY_MISMATCH.TOO_MANY_DATA_COLUMNS"),
        "{message}"
    );
    let message = error(&s, "INSERT OVERWRITE t PARTITION (q = 1) SELECT 1").await;
    assert!(message.contains("not a partition column"), "{message}");
    let message = error(&s, "CREATE TABLE t (a INT) USING parquet").await;
    assert!(
        message.contains("TABLE_OR_VIEW_ALREADY_EXISTS"),
        "{message}"
    );
    let message = error(&s, "CREATE TABLE v (a INT) USING csv").await;
    assert!(message.contains("UNSUPPORTED_DATASOURCE"), "{message}");
    let message = error(&s, "SHOW PARTITIONS nope").await;
    assert!(message.contains("TABLE_OR_VIEW_NOT_FOUND"), "{message}");
}

#[tokio::test]
async fn a_checkpoint_cuts_the_lineage_and_survives_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    {
        let s = session(
            dir.path(),
            &[("spark.checkpoint.dir", &checkpoints.display().to_string())],
        );
        run(&s, "CREATE TABLE src (k INT, v INT) USING parquet").await;
        run(
            &s,
            "INSERT INTO src SELECT k % 10, k FROM generate_series(1, 100) g(k)",
        )
        .await;
        run(
            &s,
            "CHECKPOINT totals AS SELECT k, sum(v) AS s FROM src GROUP BY k",
        )
        .await;
        // Later plans start from the files: one stage, no aggregate of src.
        let explained = sorted(&s, "EXPLAIN SELECT * FROM totals WHERE s > 500")
            .await
            .join("\n");
        assert!(
            explained.contains("of checkpoint default.totals"),
            "{explained}"
        );
        assert!(explained.contains("1 stage"), "{explained}");
        assert!(checkpoints.read_dir().unwrap().count() == 1);
        // Checkpointing again replaces it; the old files go.
        run(
            &s,
            "CHECKPOINT totals AS SELECT k, sum(v) AS s FROM src WHERE k < 5 GROUP BY k",
        )
        .await;
        assert!(checkpoints.read_dir().unwrap().count() == 1);
    }
    let s = session(dir.path(), &[]);
    assert_eq!(
        sorted(&s, "SELECT * FROM totals").await,
        lines(&["0|550", "1|460", "2|470", "3|480", "4|490"])
    );
    run(&s, "DROP TABLE totals").await;
    assert_eq!(checkpoints.read_dir().unwrap().count(), 0);
}

/// Every file and directory under `dir`, sorted.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            // The catalog's own temporary files come and go; data and entries are what count.
            if !path.to_string_lossy().contains("/_stagesql/writes") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_task_writing_many_partitions_writes_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    // One task, rows of every partition in every batch: the task sorts them by partition
    // first, so each partition gets one file.
    let s = session(
        dir.path(),
        &[
            ("spark.executor.cores", "1"),
            ("datafusion.execution.batch_size", "1000"),
        ],
    );
    run(
        &s,
        "CREATE TABLE wide (v BIGINT, p BIGINT) USING parquet PARTITIONED BY (p);
         INSERT INTO wide SELECT k, k % 100 FROM generate_series(1, 50000) g(k);",
    )
    .await;
    assert_eq!(
        sorted(&s, "SELECT count(*), count(DISTINCT p), sum(v) FROM wide").await,
        lines(&["50000|100|1250025000"])
    );
    assert_eq!(
        sorted(&s, "SELECT count(*) FROM wide WHERE p = 7").await,
        lines(&["500"])
    );
    assert_eq!(sorted(&s, "SHOW PARTITIONS wide").await.len(), 100);
    let described = sorted(&s, "DESCRIBE EXTENDED wide").await.join("\n");
    assert!(described.contains("50000 rows, 100 files"), "{described}");
}

/// Waits until a write of the warehouse at `dir` is about to commit (its record lists the
/// files it moves into the table), as the commit pause (`stagesql.test.slow_commit_ms`)
/// holds it there.
fn wait_for_commit(dir: &Path) {
    let writes = dir.join("_stagesql/writes");
    for _ in 0..12_000 {
        let committing = std::fs::read_dir(&writes)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .any(|record| record.contains("\"files\": [\n"));
        if committing {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no write reached its commit within 2 minutes");
}

/// A table dropped, or dropped and created again, by another session while a write runs:
/// the write fails and commits nothing, and the other session's table is untouched (before,
/// the write committed its version on top of the dropped or the new table).
#[test]
fn a_write_never_commits_on_a_table_dropped_while_it_ran() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for recreate in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let writer = session(dir.path(), &[("stagesql.test.slow_commit_ms", "5000")]);
        runtime.block_on(async {
            run(
                &writer,
                "CREATE TABLE t (a INT, p INT) USING parquet PARTITIONED BY (p)",
            )
            .await;
            run(&writer, "INSERT INTO t VALUES (1, 1), (2, 2)").await;
        });
        let warehouse = dir.path().to_path_buf();
        let other = std::thread::spawn(move || {
            wait_for_commit(&warehouse);
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let s = session(&warehouse, &[]);
            runtime.block_on(async {
                run(&s, "DROP TABLE t").await;
                if recreate {
                    run(&s, "CREATE TABLE t (b STRING) USING parquet").await;
                    run(&s, "INSERT INTO t VALUES ('new')").await;
                }
            });
        });
        let message = runtime.block_on(error(&writer, "INSERT INTO t VALUES (3, 3), (4, 1)"));
        other.join().unwrap();
        let expected = match recreate {
            true => "dropped and created again",
            false => "was dropped while this statement ran",
        };
        assert!(message.contains(expected), "{message}");
        let reader = session(dir.path(), &[]);
        runtime.block_on(async {
            match recreate {
                true => assert_eq!(sorted(&reader, "SELECT * FROM t").await, lines(&["new"])),
                false => assert!(error(&reader, "SELECT * FROM t").await.contains("t")),
            }
        });
        // Nothing of the failed write is left in the table's directory.
        let files: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        assert_eq!(files.len(), usize::from(recreate), "{files:?}");
    }
}

/// An external table over `c=v/` directories: its columns and partition columns are taken
/// from the files and directories; files others add to its partitions are read after
/// REFRESH TABLE and by a new session; new partition directories after MSCK REPAIR TABLE
/// (or ALTER TABLE … RECOVER PARTITIONS); SYNC drops partitions whose directories are gone.
/// Before, the table kept the files of its CREATE for ever.
#[tokio::test]
async fn external_tables_read_the_files_under_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let ext = dir.path().join("ext");
    let writer = session(&dir.path().join("other"), &[]);
    let copy = |value: i32, part: &str, file: &str| {
        format!(
            "COPY (SELECT CAST({value} AS INT) AS a) TO '{}'",
            ext.join(part).join(file).display()
        )
    };
    run(&writer, &copy(1, "p=1", "f1.parquet")).await;
    run(&writer, &copy(2, "p=10", "f1.parquet")).await;
    let s = session(dir.path(), &[]);
    run(
        &s,
        &format!("CREATE TABLE e USING parquet LOCATION '{}'", ext.display()),
    )
    .await;
    let described = sorted(&s, "DESCRIBE EXTENDED e").await.join("\n");
    assert!(described.contains("# Partition Information"), "{described}");
    assert_eq!(sorted(&s, "SELECT * FROM e").await, lines(&["1|1", "2|10"]));

    // A file added to a partition: seen after REFRESH TABLE, and by a new session.
    run(&writer, &copy(3, "p=1", "f2.parquet")).await;
    assert_eq!(
        sorted(&session(dir.path(), &[]), "SELECT * FROM e").await,
        lines(&["1|1", "2|10", "3|1"])
    );
    run(&writer, &copy(4, "p=1", "f3.parquet")).await;
    run(&s, "REFRESH TABLE e").await;
    assert_eq!(
        sorted(&s, "SELECT * FROM e").await,
        lines(&["1|1", "2|10", "3|1", "4|1"])
    );

    // A new partition directory: after MSCK REPAIR TABLE.
    run(&writer, &copy(5, "p=2", "f1.parquet")).await;
    assert_eq!(sorted(&s, "SELECT count(*) FROM e").await, lines(&["4"]));
    run(&s, "MSCK REPAIR TABLE e").await;
    assert_eq!(
        sorted(&s, "SELECT a FROM e WHERE p = 2").await,
        lines(&["5"])
    );
    run(&writer, &copy(6, "p=3", "f1.parquet")).await;
    run(&s, "ALTER TABLE e RECOVER PARTITIONS").await;
    assert_eq!(
        sorted(&s, "SELECT a FROM e WHERE p = 3").await,
        lines(&["6"])
    );

    // A partition directory removed: SYNC PARTITIONS drops it.
    std::fs::remove_dir_all(ext.join("p=10")).unwrap();
    run(&s, "MSCK REPAIR TABLE e SYNC PARTITIONS").await;
    assert_eq!(
        sorted(&s, "SHOW PARTITIONS e").await,
        lines(&["p=1", "p=2", "p=3"])
    );
    assert_eq!(sorted(&s, "SELECT count(*) FROM e").await, lines(&["5"]));

    // A directory whose value is not of the column's type is an error, not a table that
    // cannot be read.
    run(&writer, &copy(7, "p=x", "f1.parquet")).await;
    let message = error(&s, "MSCK REPAIR TABLE e").await;
    assert!(message.contains("CAST_INVALID_INPUT"), "{message}");
    // An external table's files are not the warehouse's to delete.
    assert!(
        error(&s, "TRUNCATE TABLE e")
            .await
            .contains("external table")
    );
}

/// `DESCRIBE DATABASE` and `OPTIONS (path …)` (an external table at that path, as in Spark),
/// whose rows hold paths of the test's directory.
#[tokio::test]
async fn describe_database_and_the_path_option() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[]);
    run(&s, "CREATE DATABASE db1 COMMENT 'first'").await;
    let rows = sorted(&s, "DESCRIBE DATABASE db1").await;
    let location = format!("Location|{}", dir.path().join("db1.db").display());
    assert_eq!(
        rows,
        lines(&[
            "Catalog Name|spark_catalog",
            "Comment|first",
            &location,
            "Namespace Name|db1"
        ])
    );
    let path = dir.path().join("elsewhere/copy");
    run(
        &s,
        &format!(
            "CREATE TABLE db1.copy USING parquet OPTIONS (path '{}') AS SELECT 1 AS id",
            path.display()
        ),
    )
    .await;
    let described = sorted(&s, "DESCRIBE EXTENDED db1.copy").await.join("\n");
    assert!(described.contains("Type|EXTERNAL|"), "{described}");
    assert!(
        described.contains(&format!("Location|{}|", path.display())),
        "{described}"
    );
    assert!(std::fs::read_dir(&path).unwrap().count() > 0);
    run(&s, "DROP TABLE db1.copy").await;
    // An external table's files stay.
    assert!(std::fs::read_dir(&path).unwrap().count() > 0);
}
