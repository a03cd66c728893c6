//! EXPLAIN and EXPLAIN ANALYZE through the Session API: predicted tasks match what runs,
//! the JSON form parses, advisories appear where the situation is built on purpose and not
//! on a balanced run, and the job history is queryable.

use stagesql::{Session, SessionOptions, StatementResult};

async fn session(settings: &[(&str, &str)]) -> Session {
    let session = Session::with_options(SessionOptions {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SessionOptions::default()
    })
    .unwrap();
    session.load_tpch(0.01).await.unwrap();
    session
}

/// The `plan` column of an EXPLAIN, as lines.
async fn explain(session: &Session, sql: &str) -> Vec<String> {
    let results = session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
    let batches = results.last().and_then(StatementResult::batches).unwrap();
    stagesql::tpch::answers::rows(batches)
        .unwrap()
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

fn advisories(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.trim_start().starts_with('!'))
        .cloned()
        .collect()
}

const JOIN: &str = "select o_orderpriority, count(*) from orders join lineitem on o_orderkey = l_orderkey group by 1 order by 1";

#[tokio::test(flavor = "multi_thread")]
async fn predicted_tasks_equal_launched_tasks() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "6"),
        ("spark.executor.cores", "2"),
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.enabled", "false"),
    ])
    .await;
    let json = explain(&session, &format!("EXPLAIN FORMAT JSON {JOIN}"))
        .await
        .join("\n");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let predicted: Vec<u64> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tasks"].as_u64().unwrap())
        .collect();
    assert_eq!(plan["summary"]["stages"], 4);
    assert_eq!(plan["summary"]["shuffles"], 3);
    assert_eq!(plan["slots"], 2);
    session.sql(JOIN).await.unwrap();
    let launched: Vec<u64> = session.jobs()[0]
        .stages
        .iter()
        .map(|s| s.tasks as u64)
        .collect();
    assert_eq!(predicted, launched);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_forms_spark_users_know() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let query = "select l_returnflag, count(*) from lineitem group by 1";
    let plain = explain(&session, &format!("EXPLAIN {query}")).await;
    assert_eq!(
        plain[0],
        "Job: 2 stages, 1 shuffle, 0 broadcasts, 5 tasks, 2 slots"
    );
    let extended = explain(&session, &format!("EXPLAIN EXTENDED {query}")).await;
    assert!(
        extended.contains(&"== Optimized Logical Plan ==".to_string()),
        "{extended:#?}"
    );
    assert!(extended.contains(&"== Stages ==".to_string()));
    let formatted = explain(&session, &format!("EXPLAIN FORMATTED {query}")).await;
    assert!(
        formatted
            .iter()
            .any(|l| l.starts_with("(1) DataSourceExec")),
        "{formatted:#?}"
    );
    let cost = explain(&session, &format!("EXPLAIN COST {query}")).await;
    assert!(cost.iter().any(|l| l.contains("rows≈")), "{cost:#?}");
    let codegen = explain(&session, &format!("EXPLAIN CODEGEN {query}")).await;
    assert!(codegen[0].contains("does not apply"));
    let dot = explain(&session, &format!("EXPLAIN FORMAT DOT {query}"))
        .await
        .join("\n");
    assert!(
        dot.starts_with("digraph job {") && dot.contains("stage_1 -> stage_2"),
        "{dot}"
    );
    // DataFusion's own plans stay reachable.
    let verbose = session
        .sql(&format!("EXPLAIN VERBOSE {query}"))
        .await
        .unwrap();
    assert!(!verbose.is_empty());
    // EXPLAIN runs nothing.
    assert!(session.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_shows_actuals_and_a_balanced_run_has_no_advisories() {
    // One split on one slot: balanced whatever the machine's load.
    let session = session(&[
        ("spark.sql.shuffle.partitions", "1"),
        ("spark.executor.cores", "1"),
    ])
    .await;
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select n_name from nation where n_regionkey = 1",
    )
    .await;
    assert!(lines[0].starts_with("Job 1: 1 stage"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("ran: 1 → 1 tasks in 1 waves")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("rows in 25")), "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "Advisories: none");
}

#[tokio::test(flavor = "multi_thread")]
async fn skew_holds_the_barrier_and_is_reported() {
    // Splitting skewed partitions is adaptive execution's job; off, the skew shows.
    let session = session(&[
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "4"),
        ("spark.sql.adaptive.enabled", "false"),
    ])
    .await;
    session
        .sql(
            "create table skewed as
               select case when v <= 2000000 then 0 else v % 3 + 1 end as k, v
               from generate_series(1, 2003000) t(v)",
        )
        .await
        .unwrap();
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select k, count(*) from (select k, row_number() over (partition by k order by v desc) as r from skewed) where r > 5 group by k",
    )
    .await;
    let advice = advisories(&lines);
    assert!(
        advice
            .iter()
            .any(|a| a.contains("skew") && a.contains("held the stage barrier")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn too_few_and_too_many_partitions_are_reported() {
    let few = session(&[("spark.executor.cores", "8")]).await;
    let lines = explain(
        &few,
        "EXPLAIN ANALYZE select v from generate_series(1, 3000000) t(v) order by v desc limit 1",
    )
    .await;
    assert!(
        advisories(&lines)
            .iter()
            .any(|a| a.contains("under-parallelism")),
        "{lines:#?}"
    );

    // Adaptive execution would coalesce these partitions; off, the over-parallelism shows.
    let many = session(&[
        ("spark.sql.shuffle.partitions", "64"),
        ("spark.executor.cores", "2"),
        ("spark.sql.adaptive.enabled", "false"),
    ])
    .await;
    let lines = explain(
        &many,
        "EXPLAIN ANALYZE select n_regionkey, count(*) from nation group by 1",
    )
    .await;
    let advice = advisories(&lines);
    assert!(
        advice
            .iter()
            .any(|a| a.contains("over-parallelism")
                && a.contains("lower spark.sql.shuffle.partitions")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spill_is_reported_with_the_memory_that_would_avoid_it() {
    let local = tempfile::tempdir().unwrap();
    let session = session(&[
        ("spark.executor.memory", "32m"),
        ("spark.local.dir", local.path().to_str().unwrap()),
        (
            "datafusion.execution.sort_spill_reservation_bytes",
            "1048576",
        ),
    ])
    .await;
    let lines = explain(&session, "EXPLAIN ANALYZE select v % 1000 as k, v from generate_series(1, 3000000) t(v) order by k, v").await;
    assert!(
        advisories(&lines)
            .iter()
            .any(|a| a.contains("spill") && a.contains("spark.executor.memory")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn job_history_is_queryable() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "3"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    session
        .sql("select l_returnflag, count(*) from lineitem group by 1")
        .await
        .unwrap();
    let results = session
        .sql("select stage_id, count(*) as tasks, max(duration_ms) / median(duration_ms) >= 1 as ratio_ok from system.tasks where job_id = 1 group by 1 order by 1")
        .await
        .unwrap();
    let rows = stagesql::tpch::answers::rows(results[0].batches().unwrap()).unwrap();
    // Adaptive execution coalesced the three tiny shuffle partitions into one task.
    assert_eq!(rows, [["1", "1", "true"], ["2", "1", "true"]]);
    let jobs = session
        .sql("select job_id, status, stages, sql from system.jobs order by 1")
        .await
        .unwrap();
    let rows = stagesql::tpch::answers::rows(jobs[0].batches().unwrap()).unwrap();
    assert_eq!(rows[0][..3], ["1", "succeeded", "2"]);
    assert!(rows[0][3].contains("group by 1"));
    let stages = session.sql("select initial_tasks, final_tasks from system.stages where job_id = 1 order by stage_id").await.unwrap();
    assert_eq!(
        stagesql::tpch::answers::rows(stages[0].batches().unwrap()).unwrap(),
        [["1", "1"], ["3", "1"]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broadcast_larger_than_the_threshold_is_reported() {
    // The filter keeps every row, but the planner assumes it keeps a fifth: the build side
    // looks small enough to broadcast and is not.
    let session = session(&[
        ("spark.sql.autoBroadcastJoinThreshold", "1m"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    session
        .sql(
            "create table wide as select v from generate_series(1, 200000) t(v);
             create table big as select v from generate_series(1, 1000000) t(v)",
        )
        .await
        .unwrap();
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select count(*) from (select * from wide where v % 2 >= 0) w join big on w.v = big.v",
    )
    .await;
    let advice = advisories(&lines);
    assert!(
        advice.iter().any(|a| a.contains("oversized broadcast")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_shows_operator_rows() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "2"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select n_name from nation where n_regionkey = 1",
    )
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("Filter") && l.contains("rows=5")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_shows_what_adaptive_execution_decided() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "40"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let plain = explain(
        &session,
        "EXPLAIN select l_returnflag, count(*) from lineitem group by 1",
    )
    .await;
    assert!(
        plain
            .iter()
            .any(|l| l.starts_with("Stage 2: 40 tasks (AQE may coalesce)")),
        "{plain:#?}"
    );
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select l_returnflag, count(*) from lineitem group by 1",
    )
    .await;
    assert!(
        lines.iter().any(|l| l.contains("ran: 40 → 1 tasks")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AQE coalesce partitions: 40 → 1 partition (")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gather_names_the_outputs_its_stage_really_wrote() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "40"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let sql = "select count(*) from (select l_returnflag, count(*) from lineitem group by 1)";
    let plain = explain(&session, &format!("EXPLAIN {sql}")).await;
    assert!(
        plain
            .iter()
            .any(|l| l.contains("(gather of 40 outputs of stage 2)")),
        "{plain:#?}"
    );
    // Adaptive execution ran stage 2 as one task: the gather read one output.
    let lines = explain(&session, &format!("EXPLAIN ANALYZE {sql}")).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("(gather of 1 output of stage 2, 40 planned)")),
        "{lines:#?}"
    );
}
