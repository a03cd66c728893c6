//! The stage model through the Session API: how plans are cut, that the executor launches
//! the predicted tasks, retries, spilling with cleanup, and cancellation.

use stagesql::scheduler::JobReport;
use stagesql::stages::StageGraph;
use stagesql::{Session, SessionOptions, StatementResult};

mod common;
use common::eventually;

async fn session(settings: &[(&str, &str)]) -> Session {
    // Adaptive execution off: these tests pin task counts as planned.
    let mut all = vec![
        ("spark.sql.shuffle.partitions".to_string(), "4".to_string()),
        ("spark.executor.cores".to_string(), "2".to_string()),
        (
            "spark.sql.adaptive.enabled".to_string(),
            "false".to_string(),
        ),
    ];
    all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let session = Session::with_options(SessionOptions {
        settings: all,
        ..SessionOptions::default()
    })
    .unwrap();
    session.load_tpch(0.01).await.unwrap();
    session
}

async fn stages_of(session: &Session, sql: &str) -> StageGraph {
    let plan = session
        .context()
        .state()
        .create_logical_plan(sql)
        .await
        .unwrap();
    session.plan_stages(&plan).await.unwrap()
}

/// `id:tasks:exchange` per stage, the shape a reader checks first.
fn shape(graph: &StageGraph) -> Vec<String> {
    graph
        .stages
        .iter()
        .map(|s| {
            let exchange = s.exchange().to_string();
            let kind = exchange
                .split(['(', ' '])
                .next()
                .unwrap_or_default()
                .to_string();
            let kind = if exchange.starts_with("shuffle") {
                "shuffle".into()
            } else {
                kind
            };
            format!("{}:{}:{}", s.id, s.tasks(), kind)
        })
        .collect()
}

async fn run(session: &Session, sql: &str) -> (Vec<StatementResult>, JobReport) {
    let results = session.sql(sql).await.unwrap();
    (results, session.jobs().last().cloned().expect("a job ran"))
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_only_is_one_stage_and_group_by_two() {
    let session = session(&[]).await;
    let scan = stages_of(
        &session,
        "select l_orderkey from lineitem where l_quantity > 45",
    )
    .await;
    assert_eq!(shape(&scan), ["1:1:result"], "{scan}");
    let group_by = stages_of(
        &session,
        "select l_returnflag, count(*) from lineitem group by 1",
    )
    .await;
    assert_eq!(
        shape(&group_by),
        ["1:1:shuffle", "2:4:result"],
        "{group_by}"
    );
    assert!(
        group_by.stages[0]
            .exchange()
            .to_string()
            .starts_with("shuffle hash(l_returnflag"),
        "{group_by}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_join_shuffles_both_sides_and_broadcast_join_does_not() {
    let partitioned = session(&[("spark.sql.autoBroadcastJoinThreshold", "-1")]).await;
    let sql = "select o_orderpriority, count(*) from orders join lineitem on o_orderkey = l_orderkey group by 1";
    let graph = stages_of(&partitioned, sql).await;
    assert_eq!(
        shape(&graph),
        ["1:1:shuffle", "2:1:shuffle", "3:4:shuffle", "4:4:result"],
        "{graph}"
    );
    assert_eq!(graph.stages[2].parents, vec![1, 2]);

    let broadcast = session(&[]).await;
    let sql =
        "select n_name, count(*) from supplier join nation on s_nationkey = n_nationkey group by 1";
    let graph = stages_of(&broadcast, sql).await;
    assert!(
        shape(&graph).iter().any(|s| s.ends_with(":broadcast")),
        "{graph}"
    );
    assert!(graph.to_string().contains("BroadcastReadExec"), "{graph}");
}

#[tokio::test(flavor = "multi_thread")]
async fn union_sort_limit_window_and_subquery_plans_are_cut() {
    let session = session(&[]).await;
    let union = stages_of(
        &session,
        "select n_name from nation union all select r_name from region",
    )
    .await;
    assert_eq!(shape(&union), ["1:2:result"], "{union}");
    let top = stages_of(
        &session,
        "select o_orderkey from orders order by o_totalprice desc limit 5",
    )
    .await;
    assert_eq!(shape(&top), ["1:1:result"], "{top}");
    // One sorted output: the driver reads it as it is, with no merge.
    assert!(top.to_string().contains("TopK(fetch=5)"), "{top}");
    assert_eq!(top.driver.name(), "ShuffleReadExec", "{top}");
    let window = stages_of(
        &session,
        "select o_custkey, rank() over (partition by o_custkey order by o_totalprice) from orders",
    )
    .await;
    assert_eq!(shape(&window), ["1:1:shuffle", "2:4:result"], "{window}");
    // An uncorrelated scalar subquery is computed once, on the driver, from the output of
    // the stages it reads, before the stage that filters on its value: never inside a task,
    // where a retry would compute it again.
    let sql =
        "select count(*) from orders where o_totalprice > (select avg(o_totalprice) from orders)";
    let subquery = stages_of(&session, sql).await;
    assert_eq!(subquery.subqueries.len(), 1, "{subquery}");
    assert!(
        !subquery.to_string().contains("ScalarSubqueryExec"),
        "{subquery}"
    );
    let reads = &subquery.subqueries[0].reads;
    let filter = subquery
        .stages
        .iter()
        .find(|s| {
            stagesql::datafusion::physical_plan::displayable(s.plan.input().as_ref())
                .indent(false)
                .to_string()
                .contains("scalar_subquery")
        })
        .expect("a stage filters on the subquery's value");
    // The subquery's own plan reads one file split: it has no stages of its own to wait for.
    assert!(
        reads.iter().all(|r| filter.parents.contains(r)),
        "{subquery}"
    );
    let (staged, _) = run(&session, sql).await;
    session
        .sql("set stagesql.execution.mode = pipelined")
        .await
        .unwrap();
    let pipelined = session.sql(sql).await.unwrap();
    assert_eq!(
        stagesql::tpch::answers::rows(staged[0].batches().unwrap()).unwrap(),
        stagesql::tpch::answers::rows(pipelined[0].batches().unwrap()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_executor_launches_the_predicted_tasks() {
    let session = session(&[("spark.sql.autoBroadcastJoinThreshold", "-1")]).await;
    let sql = "select o_orderpriority, count(*) from orders join lineitem on o_orderkey = l_orderkey group by 1 order by 1";
    let predicted: Vec<usize> = stages_of(&session, sql)
        .await
        .stages
        .iter()
        .map(|s| s.tasks())
        .collect();
    let (results, report) = run(&session, sql).await;
    let launched: Vec<usize> = report.stages.iter().map(|s| s.tasks).collect();
    assert_eq!(predicted, launched);
    assert_eq!(
        results[0]
            .batches()
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        5
    );
    for stage in &report.stages {
        assert_eq!(stage.attempts.len(), stage.tasks, "one attempt per task");
    }
    // Scan tasks read their file splits; the join stage reads both shuffles.
    let scan = &report.stages[0].attempts[0];
    assert!(
        scan.bytes_in > 0 && scan.rows_in > 0 && scan.rows_out > 0,
        "{scan:?}"
    );
    let join: u64 = report.stages[2]
        .attempts
        .iter()
        .map(|a| a.shuffle_read_bytes)
        .sum();
    assert!(join > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_are_retried_and_visible() {
    let session = session(&[("stagesql.test.fail_tasks", "1.0.1,2.0.1,2.0.2")]).await;
    let (results, report) = run(
        &session,
        "select l_returnflag, count(*) from lineitem group by 1 order by 1",
    )
    .await;
    assert_eq!(
        results[0]
            .batches()
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        3
    );
    let first = &report.stages[0];
    assert_eq!(first.retries(), 1);
    assert!(
        first.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("injected failure")
    );
    assert_eq!(report.stages[1].retries(), 2);
    // Every attempt measured its own reads, the first (on the stage's plan) and the retries
    // (on copies) alike.
    let reads: Vec<u64> = report.stages[1]
        .attempts
        .iter()
        .filter(|a| a.task == 0)
        .map(|a| a.shuffle_read_rows)
        .collect();
    assert_eq!(reads.len(), 3);
    assert!(
        reads[0] > 0 && reads.iter().all(|r| *r == reads[0]),
        "{reads:?}"
    );
    let scans: Vec<u64> = first
        .attempts
        .iter()
        .filter(|a| a.task == 0)
        .map(|a| a.rows_in)
        .collect();
    assert!(scans[0] > 0 && scans == vec![scans[0]; 2], "{scans:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_failing_every_attempt_fails_the_job_naming_job_stage_and_task() {
    let session = session(&[
        ("spark.task.maxFailures", "2"),
        ("stagesql.test.fail_tasks", "2.3.1,2.3.2"),
    ])
    .await;
    let error = session
        .sql("select l_returnflag, count(*) from lineitem group by 1")
        .await
        .unwrap_err()
        .message();
    assert!(error.contains("stage 2 task 3 failed 2 times"), "{error}");
    assert!(error.contains("job 1"), "{error}");
    // The session goes on.
    assert!(session.sql("select 1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_executor_memory_spills_and_leaves_no_files() {
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_str().unwrap().to_string();
    let session = session(&[
        ("spark.executor.memory", "32m"),
        ("spark.local.dir", &dir),
        (
            "datafusion.execution.sort_spill_reservation_bytes",
            "1048576",
        ),
    ])
    .await;
    let (results, report) = run(
        &session,
        "select v, v % 1000 as k from generate_series(1, 3000000) t(v) order by k desc, v",
    )
    .await;
    let batches = results[0].batches().unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        3_000_000
    );
    let first = stagesql::tpch::answers::rows(&batches[..1]).unwrap();
    assert_eq!(first[..2], [["999", "999"], ["1999", "999"]]);
    let spilled: u64 = report.stages.iter().map(|s| s.spill_bytes()).sum();
    assert!(spilled > 0, "{report:?}");
    let left: Vec<_> = std::fs::read_dir(local.path()).unwrap().collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");
}

/// Forwards every task start to the test.
struct TaskStarts(tokio::sync::mpsc::UnboundedSender<()>);

impl stagesql::events::Listener for TaskStarts {
    fn on_event(&self, event: &stagesql::events::Event) {
        if matches!(event, stagesql::events::Event::TaskStart { .. }) {
            let _ = self.0.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_running_job_cancels_its_tasks_and_removes_its_files() {
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_str().unwrap().to_string();
    let session = session(&[("spark.local.dir", &dir)]).await;
    let (starts, mut started) = tokio::sync::mpsc::unbounded_channel();
    session.add_listener(std::sync::Arc::new(TaskStarts(starts)));
    let runtime = tokio::runtime::Handle::current().metrics();
    let idle = runtime.num_alive_tasks();
    // A job that would run for hours; it is dropped (as the CLI drops it on Ctrl-C) once its
    // first task has started.
    let long =
        session.sql("select count(*) from generate_series(1, 10000000000) t(v) group by v % 7");
    tokio::select! {
        _ = long => panic!("the job should not finish"),
        _ = started.recv() => {}
    }
    eventually("the dropped job's tasks have stopped", || {
        runtime.num_alive_tasks() <= idle
    })
    .await;
    eventually("the dropped job's spill files are gone", || {
        std::fs::read_dir(local.path()).unwrap().next().is_none()
    })
    .await;
    let (results, _) = run(&session, "select count(*) from region").await;
    assert_eq!(results.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_ctas_and_insert_are_jobs_with_session_wide_stage_ids() {
    let session = session(&[]).await;
    session
        .sql(
            "create table priorities as select o_orderpriority as p, count(*) as n from orders group by 1;
             create table copy (p varchar, n bigint);
             insert into copy select * from priorities;
             select sum(n) from copy",
        )
        .await
        .unwrap();
    let jobs = session.jobs();
    assert_eq!(
        jobs.iter().map(|j| j.job).collect::<Vec<_>>(),
        [1, 2, 3],
        "CTAS, INSERT, SELECT"
    );
    let ids: Vec<usize> = jobs
        .iter()
        .flat_map(|j| j.stages.iter().map(|s| s.stage))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "stage ids increase across the session's jobs");
    assert_eq!(ids.first(), Some(&1));
    let total = session.sql("select sum(n) from copy").await.unwrap();
    assert_eq!(
        stagesql::tpch::answers::rows(total[0].batches().unwrap()).unwrap(),
        [["15000"]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn adaptive_execution_coalesces_small_shuffle_partitions_with_the_same_results() {
    let sql = "select o_orderpriority, count(*) from orders join lineitem on o_orderkey = l_orderkey group by 1 order by 1";
    let off = session(&[
        ("spark.sql.shuffle.partitions", "50"),
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
    ])
    .await;
    let (expected, planned) = run(&off, sql).await;
    let on = session(&[
        ("spark.sql.shuffle.partitions", "50"),
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.enabled", "true"),
    ])
    .await;
    let (actual, adapted) = run(&on, sql).await;
    let rows =
        |r: &[StatementResult]| stagesql::tpch::answers::rows(r[0].batches().unwrap()).unwrap();
    assert_eq!(rows(&expected), rows(&actual));
    // The join stage reads both shuffles: one grouping for both, far fewer tasks than 50.
    let join = &adapted.stages[2];
    assert_eq!(join.initial_tasks, 50);
    assert!(join.tasks < 50 && join.tasks >= 1, "{join:?}");
    let decision = join
        .decisions
        .iter()
        .find(|d| d.rule == "coalesce partitions")
        .unwrap();
    assert!(
        decision.applied && decision.change.starts_with("50 → "),
        "{decision:?}"
    );
    assert_eq!(planned.stages[2].tasks, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_build_side_switches_a_partitioned_join_to_broadcast_at_runtime() {
    let sql = "select o_orderpriority, count(*) from orders join lineitem on o_orderkey = l_orderkey group by 1 order by 1";
    let planned_partitioned = [
        ("spark.sql.shuffle.partitions", "8"),
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
    ];
    let off = session(&planned_partitioned).await;
    let (expected, _) = run(&off, sql).await;
    let mut settings = planned_partitioned.to_vec();
    settings.push(("spark.sql.adaptive.enabled", "true"));
    settings.push(("spark.sql.adaptive.autoBroadcastJoinThreshold", "10m"));
    let on = session(&settings).await;
    let (actual, report) = run(&on, sql).await;
    let rows =
        |r: &[StatementResult]| stagesql::tpch::answers::rows(r[0].batches().unwrap()).unwrap();
    assert_eq!(rows(&expected), rows(&actual));
    let switched = report
        .stages
        .iter()
        .flat_map(|s| s.decisions.iter())
        .find(|d| d.rule == "switch join strategy")
        .expect("the join stage considered the switch");
    assert!(
        switched.applied && switched.change == "partitioned → broadcast join",
        "{switched:?}"
    );

    // Below the threshold only when it is on: with -1 it is considered and not applied.
    settings.pop();
    settings.push(("spark.sql.adaptive.autoBroadcastJoinThreshold", "-1"));
    let never = session(&settings).await;
    let (_, report) = run(&never, sql).await;
    let kept = report
        .stages
        .iter()
        .flat_map(|s| s.decisions.iter())
        .find(|d| d.rule == "switch join strategy")
        .unwrap();
    assert!(!kept.applied && kept.reason.contains("-1"), "{kept:?}");
}
