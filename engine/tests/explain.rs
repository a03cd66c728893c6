//! EXPLAIN and EXPLAIN ANALYZE through the Session API: predicted tasks match what runs,
//! the JSON form parses, advisories appear where the situation is built on purpose (spill,
//! an oversized broadcast) and not on a balanced run, timing-based advisories follow their
//! thresholds on constructed figures, and the job history is queryable.

use stagesql::explain::{JobView, StageActuals, StageView, TaskTimes, advise};
use stagesql::{Session, StatementResult};

mod common;

async fn session(settings: &[(&str, &str)]) -> Session {
    common::tpch_session(settings, 0.01).await
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

/// A stage that ran, from figures chosen by the test: advisories depend on timings, which
/// a test cannot control on a real run, so the thresholds are tested on constructed figures.
fn ran(tasks_from: &str, slots_used: usize, wall_ms: f64, task_ms: &[f64]) -> StageView {
    StageView {
        id: 1,
        parents: vec![],
        tasks: task_ms.len(),
        tasks_from: tasks_from.to_string(),
        exchange: stagesql::stages::Exchange::Shuffle(
            stagesql::datafusion::physical_plan::Partitioning::RoundRobinBatch(4),
        ),
        operators: vec![],
        waves: task_ms.len().div_ceil(slots_used.max(1)),
        adaptive: false,
        skew_split: false,
        actuals: Some(StageActuals {
            tasks_launched: task_ms.len(),
            waves: task_ms.len().div_ceil(slots_used.max(1)),
            wall_ms,
            task_ms: TaskTimes::of(task_ms),
            rows_in: 0,
            bytes_in: 0,
            rows_out: 0,
            bytes_out: 0,
            shuffle_read_bytes: 0,
            shuffle_write_bytes: 0,
            spill_bytes: 0,
            peak_memory_bytes: 0,
            retries: 0,
            stage_attempts: 1,
            resubmitted: vec![],
            failed_attempts: vec![],
            tasks_per_executor: vec![],
            task_durations_ms: task_ms.to_vec(),
            decisions: vec![],
        }),
    }
}

fn advice_on(slots: usize, stage: StageView) -> Vec<(&'static str, String)> {
    let job = JobView {
        job: Some(1),
        slots,
        stages: vec![stage],
        subqueries: vec![],
        driver: vec![],
        result: None,
    };
    advise(&job, None)
        .into_iter()
        .map(|a| (a.kind, a.message))
        .collect()
}

#[test]
fn a_task_far_above_the_median_that_holds_the_barrier_is_skew() {
    let shuffle = "shuffle partitions of stage 0";
    let skewed = advice_on(4, ran(shuffle, 4, 900.0, &[20.0, 22.0, 21.0, 850.0]));
    assert_eq!(skewed.len(), 1, "{skewed:?}");
    assert_eq!(skewed[0].0, "skew");
    assert!(
        skewed[0]
            .1
            .starts_with("task 3 ran 850 ms, 38.6× the median task (22 ms)")
            && skewed[0].1.contains("held the stage barrier")
            && skewed[0].1.contains("spark.sql.adaptive.skewJoin.enabled"),
        "{skewed:?}"
    );
    // Five times the median but only 40 ms held: not worth a word.
    let brief = advice_on(4, ran(shuffle, 4, 60.0, &[10.0, 10.0, 10.0, 50.0]));
    assert!(brief.is_empty(), "{brief:?}");
    // Slow but even: no skew.
    let even = advice_on(4, ran(shuffle, 4, 2000.0, &[900.0, 1000.0, 950.0, 1100.0]));
    assert!(even.is_empty(), "{even:?}");
}

#[test]
fn idle_slots_and_tiny_tasks_are_parallelism_advice_naming_the_setting() {
    let few = advice_on(8, ran("file splits of lineitem", 1, 400.0, &[400.0]));
    assert_eq!(few.len(), 1, "{few:?}");
    assert_eq!(few[0].0, "under-parallelism");
    assert!(
        few[0]
            .1
            .starts_with("1 task(s) on 8 slots: 7 slot(s) sat idle for 400 ms")
            && few[0]
                .1
                .ends_with("lower spark.sql.files.maxPartitionBytes."),
        "{few:?}"
    );
    // Too short to matter.
    assert!(advice_on(8, ran("file splits of lineitem", 1, 5.0, &[5.0])).is_empty());

    let tiny = [1.5; 64];
    let many = advice_on(2, ran("shuffle partitions of stage 0", 2, 60.0, &tiny));
    assert_eq!(many.len(), 1, "{many:?}");
    assert_eq!(many[0].0, "over-parallelism");
    assert!(
        many[0]
            .1
            .starts_with("64 tasks with a median of 1.5 ms each")
            && many[0].1.ends_with("lower spark.sql.shuffle.partitions."),
        "{many:?}"
    );
    // As many tasks, each doing real work: no advice.
    let busy = [80.0; 64];
    assert!(advice_on(2, ran("shuffle partitions of stage 0", 2, 2600.0, &busy)).is_empty());
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
    // Task timings vary from run to run; what the tasks did does not: the scan stage read
    // every lineitem row, the final stage wrote one row per return flag.
    let results = session
        .sql("select stage_id, count(*) as tasks, sum(rows_in), sum(rows_out), min(duration_ms) >= 0 from system.tasks where job_id = 1 group by 1 order by 1")
        .await
        .unwrap();
    let rows = stagesql::tpch::answers::rows(results[0].batches().unwrap()).unwrap();
    let lineitems = session.sql("select count(*) from lineitem").await.unwrap();
    let lineitems = stagesql::tpch::answers::rows(lineitems[0].batches().unwrap()).unwrap();
    // Adaptive execution coalesced the three tiny shuffle partitions into one task.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][..2], ["1", "1"]);
    assert_eq!(rows[0][2], lineitems[0][0]);
    assert_eq!(rows[1][..2], ["2", "1"]);
    assert_eq!(rows[1][3], "3");
    assert!(rows.iter().all(|r| r[4] == "true"), "{rows:?}");
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
    // The operators are those that ran: the read adaptive execution rebuilt, with its rows.
    assert!(
        lines.iter().any(|l| l
            .trim_start()
            .starts_with("ShuffleRead(stage 1, 1 partition: 1 coalesced)  rows=3")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l
            .trim_start()
            .starts_with("Aggregate(FinalPartitioned)  rows=3")),
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

#[tokio::test(flavor = "multi_thread")]
async fn analyze_shows_the_broadcast_join_adaptive_execution_switched_to() {
    // No broadcast at planning time; at runtime the filtered build side is tiny.
    let session = session(&[
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.autoBroadcastJoinThreshold", "10m"),
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let sql =
        "select count(*) from orders join customer on o_custkey = c_custkey where c_acctbal > 9900";
    let plain = explain(&session, &format!("EXPLAIN {sql}")).await;
    assert!(
        plain
            .iter()
            .any(|l| l.contains("HashJoin(Inner, Partitioned)")),
        "{plain:#?}"
    );
    let lines = explain(&session, &format!("EXPLAIN ANALYZE {sql}")).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AQE switch join strategy: partitioned → broadcast join")),
        "{lines:#?}"
    );
    // The plan shown is the one that ran, every operator with its rows and time.
    let join = lines
        .iter()
        .position(|l| {
            l.trim_start()
                .starts_with("HashJoin(Inner, CollectLeft)  rows=")
        })
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        lines[join + 1]
            .trim_start()
            .starts_with("ShuffleRead(stage 1, whole, as broadcast)  rows=7"),
        "{lines:#?}"
    );
    let stage_1 = lines.iter().position(|l| l.starts_with("Stage 1")).unwrap();
    let driver = lines.iter().position(|l| l.starts_with("Driver")).unwrap();
    for operator in &lines[stage_1..driver] {
        if operator.starts_with("    ") {
            assert!(
                operator.contains("rows=") && operator.contains(" time="),
                "{operator} in {lines:#?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_format_json_has_the_actuals() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE FORMAT JSON select l_returnflag, count(*) from lineitem group by 1",
    )
    .await;
    assert_eq!(lines.len(), 1, "one JSON document");
    let job: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(job["job"], 1);
    let stages = job["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{job:#}");
    let scan = &stages[0];
    assert_eq!(scan["actuals"]["tasks_launched"], 1, "{job:#}");
    assert_eq!(scan["actuals"]["rows_out"], 3, "{job:#}");
    assert_eq!(scan["actuals"]["stage_attempts"], 1, "{job:#}");
    assert!(
        scan["actuals"]["failed_attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let operators = scan["operators"].as_array().unwrap();
    assert_eq!(operators[0]["name"], "Aggregate(Partial)");
    assert_eq!(operators[0]["rows"], 3);
    assert_eq!(operators[1]["name"], "Scan(lineitem)");
    assert_eq!(operators[1]["depth"], 1);
    let lineitems = session.sql("select count(*) from lineitem").await.unwrap();
    let lineitems = stagesql::tpch::answers::rows(lineitems[0].batches().unwrap()).unwrap();
    assert_eq!(operators[1]["rows"].to_string(), lineitems[0][0]);
    assert!(
        operators.iter().all(|o| o["time_ms"].is_number()),
        "{job:#}"
    );
    // Adaptive execution's decision, as in the text form.
    let reduce = &stages[1]["actuals"];
    assert_eq!(reduce["aqe"][0]["rule"], "coalesce partitions", "{job:#}");
    assert!(job["advisories"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn scalar_subqueries_show_where_they_run_and_who_uses_them() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "4"),
        ("spark.executor.cores", "2"),
    ])
    .await;
    let sql = "select count(*) from lineitem where l_quantity > (select avg(l_quantity) from lineitem where l_discount > (select avg(l_discount) from lineitem))";
    let plain = explain(&session, &format!("EXPLAIN {sql}")).await;
    let subqueries: Vec<&String> = plain.iter().filter(|l| l.starts_with("Subquery")).collect();
    assert_eq!(
        subqueries,
        [
            "Subquery 1: once on the driver; its value is used by subquery 2",
            "Subquery 2: once on the driver; its value is used by stage 1",
        ],
        "{plain:#?}"
    );
    // After a run, with what each operator of the subqueries did.
    let lines = explain(&session, &format!("EXPLAIN ANALYZE {sql}")).await;
    let first = lines
        .iter()
        .position(|l| l.starts_with("Subquery 1"))
        .unwrap();
    assert!(
        lines[first + 1]
            .trim_start()
            .starts_with("Aggregate(Single)  rows=1 time="),
        "{lines:#?}"
    );
    let json = explain(&session, &format!("EXPLAIN ANALYZE FORMAT JSON {sql}")).await;
    let job: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(job["subqueries"][0]["used_by_subqueries"][0], 2, "{job:#}");
    assert_eq!(
        job["subqueries"][1]["used_by_stages"][0], job["stages"][0]["id"],
        "{job:#}"
    );
    assert_eq!(job["subqueries"][1]["operators"][0]["rows"], 1, "{job:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_of_several_coalesced_partitions_says_how_many() {
    let session = session(&[
        ("spark.sql.shuffle.partitions", "40"),
        ("spark.executor.cores", "2"),
        ("spark.sql.adaptive.advisoryPartitionSizeInBytes", "16k"),
        (
            "spark.sql.adaptive.coalescePartitions.minPartitionSize",
            "1k",
        ),
    ])
    .await;
    let lines = explain(
        &session,
        "EXPLAIN ANALYZE select l_orderkey, count(*) from lineitem group by 1",
    )
    .await;
    let read = lines
        .iter()
        .find(|l| l.trim_start().starts_with("ShuffleRead(stage 1, "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let shown = read.trim_start();
    let (partitions, rest) = shown["ShuffleRead(stage 1, ".len()..]
        .split_once(" partitions: ")
        .unwrap_or_else(|| panic!("{shown}"));
    let partitions: usize = partitions.parse().unwrap();
    assert!(partitions > 1 && partitions < 40, "{shown}");
    assert!(
        rest.starts_with(&format!("{partitions} coalesced)")),
        "{shown}"
    );
}
