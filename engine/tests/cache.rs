//! CACHE TABLE through the Session API: storage levels under memory pressure (blocks
//! spilled, dropped and computed again, results identical), later plans reading the cache,
//! invalidation by writes, lazy caches, UNCACHE and CLEAR CACHE.

mod common;

use stagesql::tpch::answers::{self as rows_mod, rows};
use stagesql::{Session, SessionOptions, StatementResult};

fn session(settings: &[(&str, &str)]) -> Session {
    let mut all = vec![
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "2"),
        // Four blocks stay four partitions.
        ("spark.sql.adaptive.coalescePartitions.enabled", "false"),
    ];
    all.extend_from_slice(settings);
    Session::with_options(SessionOptions {
        settings: all
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SessionOptions::default()
    })
    .unwrap()
}

async fn query(session: &Session, sql: &str) -> Vec<Vec<String>> {
    let results = session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
    rows(results.last().unwrap().batches().unwrap()).unwrap()
}

async fn text(session: &Session, sql: &str) -> String {
    query(session, sql).await.concat().join("\n")
}

/// name, level, partitions cached, partitions, memory bytes > 0, disk bytes > 0.
async fn cache_status(session: &Session, name: &str) -> (String, String, String, bool, bool) {
    let row = query(
        session,
        &format!("select storage_level, partitions_cached, partitions, memory_bytes, disk_bytes from system.cache where name = '{name}'"),
    )
    .await
    .remove(0);
    (
        row[0].clone(),
        row[1].clone(),
        row[2].clone(),
        row[3] != "0",
        row[4] != "0",
    )
}

/// How many of `name`'s blocks are kept now.
async fn blocks_kept(session: &Session, name: &str) -> String {
    let sql = format!("select partitions_cached from system.cache where name = '{name}'");
    text(session, &sql).await
}

/// 300,000 rows in four hash partitions of about 1.2 MB each.
const RELATION: &str =
    "select v % 1000 as k, v from generate_series(1, 300000) as t(v) group by v % 1000, v";
const CHECK: &str = "select count(*), sum(v), sum(k), min(v), max(v) from big";

#[tokio::test]
async fn storage_levels_under_memory_pressure_keep_results_identical() {
    // 64 MiB per executor, a tenth of its data memory for the block store: about 2.6 MiB,
    // too little for ~5 MB of blocks (operators keep 23 MiB).
    let pressed = [
        ("spark.executor.memory", "64m"),
        ("spark.memory.storageFraction", "0.1"),
    ];
    let reference = session(&[]);
    let expected = query(&reference, &format!("with big as ({RELATION}) {CHECK}")).await;

    // MEMORY_ONLY keeps what fits and drops the rest; a read computes those again.
    let memory_only = session(&pressed);
    memory_only
        .sql(&format!(
            "CACHE TABLE big OPTIONS ('storageLevel' 'MEMORY_ONLY') AS {RELATION}"
        ))
        .await
        .unwrap();
    let (level, cached, partitions, in_memory, on_disk) = cache_status(&memory_only, "big").await;
    assert_eq!((level.as_str(), partitions.as_str()), ("MEMORY_ONLY", "4"));
    assert!(cached.parse::<usize>().unwrap() < 4, "{cached} of 4 cached");
    assert!(in_memory && !on_disk);
    assert_eq!(query(&memory_only, CHECK).await, expected);
    let analyzed = text(&memory_only, &format!("EXPLAIN ANALYZE {CHECK}")).await;
    assert!(
        analyzed.contains("InMemoryScan(big, MEMORY_ONLY, 4 partitions)"),
        "{analyzed}"
    );
    let misses = analyzed
        .split("misses=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    assert_ne!(misses, "0", "{analyzed}");
    assert!(
        analyzed.contains(&format!("recomputed={misses}")),
        "{analyzed}"
    );

    // MEMORY_AND_DISK writes what does not fit to disk: every block is kept.
    let both = session(&pressed);
    both.sql(&format!("CACHE TABLE big AS {RELATION}"))
        .await
        .unwrap();
    let (level, cached, _, in_memory, on_disk) = cache_status(&both, "big").await;
    assert_eq!((level.as_str(), cached.as_str()), ("MEMORY_AND_DISK", "4"));
    assert!(in_memory && on_disk);
    assert_eq!(query(&both, CHECK).await, expected);
    let analyzed = text(&both, &format!("EXPLAIN ANALYZE {CHECK}")).await;
    assert!(
        analyzed.contains("cache hits=4 misses=0 recomputed=0"),
        "{analyzed}"
    );

    // DISK_ONLY: every block on disk, none in memory.
    let disk = session(&[]);
    disk.sql(&format!(
        "CACHE TABLE big OPTIONS ('storageLevel' 'DISK_ONLY') AS {RELATION}"
    ))
    .await
    .unwrap();
    let (_, cached, _, in_memory, on_disk) = cache_status(&disk, "big").await;
    assert_eq!(cached, "4");
    assert!(!in_memory && on_disk);
    assert_eq!(query(&disk, CHECK).await, expected);

    // A later cache evicts the least recently used blocks of another: to disk where its
    // level allows.
    both.sql(&format!(
        "CACHE TABLE big2 AS {}",
        RELATION.replace("300000", "200000")
    ))
    .await
    .unwrap();
    assert_eq!(query(&both, CHECK).await, expected);
}

#[tokio::test]
async fn a_later_plan_that_contains_the_cached_plan_reads_the_cache() {
    let session = common::tpch_session(
        &[
            ("spark.sql.shuffle.partitions", "4"),
            ("spark.sql.adaptive.coalescePartitions.enabled", "false"),
        ],
        0.01,
    )
    .await;
    let shared = "select o_orderkey, o_orderdate, l_extendedprice from orders join lineitem on o_orderkey = l_orderkey where o_orderstatus = 'F'";
    let before = text(
        &session,
        &format!("EXPLAIN select count(*) from ({shared}) x"),
    )
    .await;
    assert!(!before.contains("InMemoryScan"), "{before}");
    let expected = query(
        &session,
        &format!("select count(*), sum(l_extendedprice) from ({shared}) x"),
    )
    .await;
    let cached = session
        .sql(&format!("CACHE TABLE shared AS {shared}"))
        .await
        .unwrap();
    assert!(
        matches!(&cached[0], StatementResult::Done(done) if done.tag == "CACHE TABLE" && done.rows.unwrap() > 0)
    );
    // By name, and by plan: the same query written inline.
    for sql in [
        "select count(*), sum(l_extendedprice) from shared".to_string(),
        format!("select count(*), sum(l_extendedprice) from ({shared}) x"),
    ] {
        let explained = text(&session, &format!("EXPLAIN {sql}")).await;
        assert!(
            explained.contains("InMemoryScan(shared, MEMORY_AND_DISK, "),
            "{explained}"
        );
        assert!(!explained.contains("Scan(lineitem)"), "{explained}");
        assert!(explained.contains("cached block"), "{explained}");
        assert_eq!(query(&session, &sql).await, expected);
    }
    // A different filter is a different plan: it reads the tables.
    let other = text(&session, "EXPLAIN select count(*) from orders join lineitem on o_orderkey = l_orderkey where o_orderstatus = 'O'").await;
    assert!(!other.contains("InMemoryScan"), "{other}");
    // UNCACHE TABLE keeps the view, reading the tables again.
    session.sql("UNCACHE TABLE shared").await.unwrap();
    let after = text(&session, "EXPLAIN select count(*) from shared").await;
    assert!(!after.contains("InMemoryScan"), "{after}");
    assert_eq!(
        query(
            &session,
            "select count(*), sum(l_extendedprice) from shared"
        )
        .await,
        expected
    );
}

#[tokio::test]
async fn writing_to_a_table_a_cache_reads_invalidates_it() {
    let session = session(&[]);
    session
        .sql("create table src (k int, v int) as values (1, 10), (2, 20), (3, 30)")
        .await
        .unwrap();
    session
        .sql("CACHE TABLE totals AS select sum(v) as total, count(*) as n from src")
        .await
        .unwrap();
    assert_eq!(text(&session, "select total, n from totals").await, "60\n3");
    session.sql("insert into src values (4, 40)").await.unwrap();
    // The cache was computed again on its next use, from the table as it is now.
    assert_eq!(blocks_kept(&session, "totals").await, "0");
    assert_eq!(
        text(&session, "select total, n from totals").await,
        "100\n4"
    );
    // A write run by EXPLAIN ANALYZE writes, and invalidates it too.
    session
        .sql("EXPLAIN ANALYZE insert into src values (5, 50)")
        .await
        .unwrap();
    assert_eq!(
        text(&session, "select total, n from totals").await,
        "150\n5"
    );
    assert_ne!(blocks_kept(&session, "totals").await, "0");
    // REFRESH TABLE does the same on demand; dropping the view uncaches it.
    session.sql("REFRESH TABLE src").await.unwrap();
    assert_eq!(blocks_kept(&session, "totals").await, "0");
    session.sql("DROP VIEW totals").await.unwrap();
    assert_eq!(
        text(&session, "select count(*) from system.cache").await,
        "0"
    );
}

#[tokio::test]
async fn lazy_caches_are_computed_on_first_use_and_clear_cache_forgets_all() {
    let session = session(&[]);
    session
        .sql("create table src (k int, v int) as values (1, 10), (2, 20)")
        .await
        .unwrap();
    let jobs = session.jobs().len();
    session.sql("CACHE LAZY TABLE src").await.unwrap();
    assert_eq!(session.jobs().len(), jobs, "a lazy cache runs no job");
    assert_eq!(
        text(
            &session,
            "select partitions, rows from system.cache where name = 'src'"
        )
        .await,
        "0\n0"
    );
    // EXPLAIN runs nothing either.
    let jobs = session.jobs().len();
    session.sql("EXPLAIN select * from src").await.unwrap();
    assert_eq!(session.jobs().len(), jobs);
    assert_eq!(text(&session, "select sum(v) from src").await, "30");
    assert_eq!(
        text(&session, "select rows from system.cache where name = 'src'").await,
        "2"
    );
    let explained = text(&session, "EXPLAIN select sum(v) from src").await;
    assert!(
        explained.contains("InMemoryScan(src, MEMORY_AND_DISK"),
        "{explained}"
    );
    // Caching it again does nothing; UNCACHE of a table not cached is fine, of no table an
    // error unless IF EXISTS.
    session.sql("CACHE TABLE src").await.unwrap();
    session.sql("CLEAR CACHE").await.unwrap();
    assert_eq!(
        text(&session, "select count(*) from system.cache").await,
        "0"
    );
    session.sql("UNCACHE TABLE src").await.unwrap();
    session
        .sql("UNCACHE TABLE IF EXISTS nothing")
        .await
        .unwrap();
    for (sql, expected) in [
        ("UNCACHE TABLE nothing", "no table or view named nothing"),
        ("CACHE TABLE nothing", "no table or view named nothing"),
        (
            "CACHE TABLE src AS select 1",
            "a table or view named src exists",
        ),
    ] {
        let error = session.sql(sql).await.unwrap_err().message();
        assert!(error.contains(expected), "{sql}: {error}");
    }
    // A failing CACHE TABLE … AS leaves nothing behind.
    let error = session
        .sql("CACHE TABLE broken AS select 1 / 0 from src")
        .await
        .unwrap_err()
        .message();
    assert!(error.to_lowercase().contains("divide by zero"), "{error}");
    assert!(session.sql("select * from broken").await.is_err());
    assert_eq!(
        text(&session, "select count(*) from system.cache").await,
        "0"
    );
}

/// The reference texts' pipeline: a filtered join used by three writes. Without a cache the
/// second and third write compute the join again, and EXPLAIN (before) and EXPLAIN ANALYZE
/// (after) say so; with the join cached they read its blocks and nothing is recomputed.
#[tokio::test]
async fn the_recompute_advisory_names_a_shared_join_until_it_is_cached() {
    let shared = "select o_orderkey, o_orderdate, l_quantity, l_extendedprice, l_returnflag from orders join lineitem on o_orderkey = l_orderkey where o_orderstatus = 'F'";
    let writes = [
        "select * from shared",
        "select l_returnflag, count(*) as n from shared group by l_returnflag",
        "select * from shared where l_quantity > 45",
    ];
    let out = tempfile::tempdir().unwrap();
    let copy = |n: usize, query: &str| {
        format!(
            "COPY ({query}) TO '{}/{n}/' STORED AS PARQUET",
            out.path().display()
        )
    };

    let session = common::tpch_session(&[("spark.sql.shuffle.partitions", "4")], 0.01).await;
    session
        .sql(&format!("CREATE VIEW shared AS {shared}"))
        .await
        .unwrap();
    session.sql(&copy(1, writes[0])).await.unwrap();
    let first = session.jobs().last().unwrap().job;
    assert!(session.recomputed_by(first).is_empty());
    // Before it runs, EXPLAIN already says the second write would compute the join again.
    let before = text(&session, &format!("EXPLAIN {}", writes[1])).await;
    assert!(
        before.contains(&format!("recomputes what job {first}'s stage"))
            && before.contains("CACHE TABLE it (see docs/pipelines.md) before it runs again"),
        "{before}"
    );
    session.sql(&copy(2, writes[1])).await.unwrap();
    let second = session.jobs().last().unwrap().job;
    assert_eq!(session.recomputed_by(second).len(), 1);
    let analyzed = text(&session, &format!("EXPLAIN ANALYZE {}", writes[2])).await;
    assert!(
        analyzed.contains(&format!("recomputes what job {first}'s stage"))
            && analyzed.contains("rows, ")
            && analyzed.contains("CACHE TABLE it"),
        "{analyzed}"
    );
    // A query over other data is not a recomputation.
    let other = text(&session, "EXPLAIN select count(*) from orders join lineitem on o_orderkey = l_orderkey where o_orderstatus = 'O'").await;
    assert!(!other.contains("recomputes"), "{other}");

    let session = common::tpch_session(&[("spark.sql.shuffle.partitions", "4")], 0.01).await;
    session
        .sql(&format!("CACHE TABLE shared AS {shared}"))
        .await
        .unwrap();
    for (n, write) in writes.iter().enumerate() {
        session.sql(&copy(n + 4, write)).await.unwrap();
        let job = session.jobs().last().unwrap().clone();
        assert!(session.recomputed_by(job.job).is_empty(), "{}", job.sql);
        assert!(job.cache_hits > 0, "{}", job.sql);
    }
    let analyzed = text(&session, &format!("EXPLAIN ANALYZE {}", writes[2])).await;
    assert!(!analyzed.contains("recomputes"), "{analyzed}");
    session.sql("UNCACHE TABLE shared").await.unwrap();
}

/// Caches that read caches, caches with the same plan, empty blocks under memory pressure,
/// and pipelined mode: each finishes with the right rows.
#[tokio::test(flavor = "multi_thread")]
async fn caches_of_caches_twins_empty_blocks_and_pipelined_mode() {
    let within = |what: &'static str, work| async move {
        tokio::time::timeout(std::time::Duration::from_secs(120), work)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish"))
    };
    let session = session(&[
        ("spark.executor.memory", "64m"),
        ("spark.memory.storageFraction", "0.1"),
    ]);
    session
        .sql("create table src (k int, v int) as values (1, 10), (2, 20), (1, 5)")
        .await
        .unwrap();
    // Two keys in four partitions: two of the blocks are empty.
    session
        .sql("CACHE TABLE few AS select k, sum(v) as s from src group by k")
        .await
        .unwrap();
    // Evicting for a larger cache skips the empty blocks (it used to spin on them).
    let big = format!("CACHE TABLE big AS {RELATION}");
    within(
        "caching under pressure beside empty blocks",
        session.sql(&big),
    )
    .await
    .unwrap();
    assert_eq!(
        text(&session, "select k, s from few order by k").await,
        "1\n15\n2\n20"
    );

    // A cache computed from another is computed again when that one goes.
    session
        .sql("CACHE TABLE doubled AS select k, s * 2 as d from few")
        .await
        .unwrap();
    session.sql("UNCACHE TABLE few").await.unwrap();
    assert_eq!(blocks_kept(&session, "doubled").await, "0");
    assert_eq!(
        text(&session, "select k, d from doubled order by k").await,
        "1\n30\n2\n40"
    );

    // Two lazy caches of the same query: computing one does not wait for the other.
    session
        .sql("CACHE LAZY TABLE a AS select k, v from src where v > 5")
        .await
        .unwrap();
    session
        .sql("CACHE LAZY TABLE b AS select k, v from src where v > 5")
        .await
        .unwrap();
    let rows = within(
        "two caches of one plan",
        session.sql("select count(*) from a"),
    )
    .await;
    assert_eq!(
        rows_mod::rows(rows.unwrap().last().unwrap().batches().unwrap()).unwrap(),
        [["2"]]
    );
    session.sql("insert into src values (3, 30)").await.unwrap();
    assert_eq!(
        text(&session, "select count(*) from b").await,
        "3",
        "computed again after the write"
    );

    // Pipelined mode keeps blocks in memory too.
    let pipelined = self::session(&[("stagesql.execution.mode", "pipelined")]);
    pipelined
        .sql("CACHE TABLE m OPTIONS ('storageLevel' 'MEMORY_ONLY') AS select v from generate_series(1, 1000) as t(v)")
        .await
        .unwrap();
    assert_eq!(
        text(
            &pipelined,
            "select partitions_cached, memory_bytes > 0 from system.cache"
        )
        .await,
        "1\ntrue"
    );
    assert_eq!(text(&pipelined, "select sum(v) from m").await, "500500");
}
