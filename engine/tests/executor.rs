//! The session's executors through the Session API: tasks placed on executors and said so,
//! jobs running at once on one session sharing the slots in FIFO or FAIR order, and the
//! block store freeing a job's shuffles when it ends. Everything is checked from events and
//! states, never from timings.

use std::sync::{Arc, Mutex};

use stagesql::events::{Event, Listener};
use stagesql::{Session, StatementResult};

mod common;
use common::eventually;

async fn session(settings: &[(&str, &str)]) -> Arc<Session> {
    Arc::new(common::tpch_session(settings, 0.01).await)
}

fn rows(results: &[StatementResult]) -> Vec<Vec<String>> {
    let batches = results.last().unwrap().batches().unwrap();
    stagesql::tpch::answers::rows(batches).unwrap()
}

/// Every event, in order, and the most tasks that ran at once.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    running: Mutex<(usize, usize)>,
}

impl Listener for Recorder {
    fn on_event(&self, event: &Event) {
        let mut running = self.running.lock().unwrap();
        match event {
            Event::TaskStart { .. } => {
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            Event::TaskEnd { .. } => running.0 -= 1,
            _ => {}
        }
        self.events.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn peak_running(&self) -> usize {
        self.running.lock().unwrap().1
    }

    /// The jobs of the task starts, in order.
    fn task_starts(&self) -> Vec<usize> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::TaskStart { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_on_executors_and_say_which() {
    let session = session(&[
        ("spark.executor.instances", "2"),
        ("spark.executor.cores", "2"),
        ("spark.sql.shuffle.partitions", "8"),
        ("spark.sql.adaptive.enabled", "false"),
    ])
    .await;
    let recorder = Arc::new(Recorder::default());
    session.add_listener(recorder.clone());
    let sql = "select l_orderkey % 100, count(*) from lineitem group by 1";
    session.sql(sql).await.unwrap();
    assert!(recorder.peak_running() <= 4, "never more tasks than slots");
    let placed = session
        .sql("select executor_id, count(*) from system.tasks where job_id = 1 and stage_id = 2 group by 1 order by 1")
        .await
        .unwrap();
    let placed = rows(&placed);
    let ids: Vec<&str> = placed.iter().map(|r| r[0].as_str()).collect();
    let tasks: usize = placed.iter().map(|r| r[1].parse::<usize>().unwrap()).sum();
    assert_eq!(tasks, 8, "{placed:?}");
    assert!(ids.iter().all(|id| *id == "0" || *id == "1"), "{placed:?}");
    // Each attempt held one of its executor's two cores.
    let slots = session
        .sql("select distinct slot from system.tasks where job_id = 1 order by 1")
        .await
        .unwrap();
    let slots = rows(&slots);
    assert!(
        !slots.is_empty() && slots.iter().all(|s| s[0] == "0" || s[0] == "1"),
        "{slots:?}"
    );
    // Two tasks running at once are on different executors (the one with more free
    // cores takes the next task); tasks that never overlapped all ran on executor 0.
    match session.executors().peak_running() {
        1 => assert_eq!(ids, ["0"]),
        _ => assert_eq!(ids, ["0", "1"]),
    }
    let explain = session
        .sql(&format!("explain analyze {sql}"))
        .await
        .unwrap();
    let lines: Vec<String> = rows(&explain).into_iter().map(|r| r[0].clone()).collect();
    let jobs = session.jobs();
    let explained = jobs.iter().find(|j| j.sql.starts_with("explain")).unwrap();
    let mut used: Vec<usize> = explained.stages[1]
        .kept_attempts()
        .iter()
        .map(|a| a.executor)
        .collect();
    used.sort_unstable();
    used.dedup();
    let spread = used.len() == 2;
    assert_eq!(
        lines
            .iter()
            .any(|l| l.contains("tasks per executor: executor 0: ")),
        spread,
        "{lines:#?}"
    );
    assert_eq!(session.executors().shape().slots(), 4);
}

/// Runs `sql` on `session` from a task of its own.
fn spawn(session: &Arc<Session>, sql: &'static str) -> tokio::task::JoinHandle<Vec<Vec<String>>> {
    let session = session.clone();
    tokio::spawn(async move { rows(&session.sql(sql).await.unwrap()) })
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_at_once_on_one_session_with_distinct_ids_and_right_answers() {
    let session = session(&[
        ("spark.executor.cores", "2"),
        ("spark.sql.shuffle.partitions", "6"),
    ])
    .await;
    let recorder = Arc::new(Recorder::default());
    session.add_listener(recorder.clone());
    let queries = [
        "select l_returnflag, count(*) from lineitem group by 1 order by 1",
        "select o_orderpriority, count(*) from orders group by 1 order by 1",
        "select n_name, count(*) from nation join customer on n_nationkey = c_nationkey group by 1 order by 1",
        "select count(*) from part where p_size > 10",
    ];
    let mut alone = Vec::new();
    for sql in queries {
        alone.push(rows(&session.sql(sql).await.unwrap()));
    }
    let before = session.jobs().len();
    let together: Vec<_> = queries.iter().map(|sql| spawn(&session, sql)).collect();
    for (handle, expected) in together.into_iter().zip(&alone) {
        assert_eq!(&handle.await.unwrap(), expected);
    }
    assert!(recorder.peak_running() <= 2, "never more tasks than slots");
    let jobs = session.jobs();
    let mut job_ids: Vec<usize> = jobs.iter().map(|j| j.job).collect();
    let mut stage_ids: Vec<usize> = jobs
        .iter()
        .flat_map(|j| j.stages.iter().map(|s| s.stage))
        .collect();
    let (jobs_count, stages_count) = (job_ids.len(), stage_ids.len());
    job_ids.sort_unstable();
    job_ids.dedup();
    stage_ids.sort_unstable();
    stage_ids.dedup();
    assert_eq!(jobs_count, before + queries.len());
    assert_eq!(job_ids.len(), jobs_count, "job ids are unique");
    assert_eq!(stage_ids.len(), stages_count, "stage ids are unique");
}

/// Two jobs wait while both slots are taken; the jobs the slots go to, as they are freed
/// one after the other, are the scheduling mode's choice. 0: the long job, 1: the short one.
async fn first_two_grants(mode: &str) -> [usize; 2] {
    let session = session(&[
        ("spark.executor.cores", "2"),
        ("spark.sql.shuffle.partitions", "8"),
        ("spark.sql.adaptive.enabled", "false"),
        ("spark.scheduler.mode", mode),
    ])
    .await;
    let executors = session.executors();
    // The test holds both slots, as a job already running would.
    let hogs = [
        executors.acquire(0, "hog", 1).await.unwrap(),
        executors.acquire(0, "hog", 1).await.unwrap(),
    ];
    session
        .sql("set spark.scheduler.pool = long")
        .await
        .unwrap();
    // Its first stage has four tasks: four scans side by side.
    let long = spawn(
        &session,
        "select k, count(*) from (select l_orderkey % 8 as k from lineitem union all select l_orderkey % 8 from lineitem union all select l_orderkey % 8 from lineitem union all select l_orderkey % 8 from lineitem) group by k",
    );
    // Two of its tasks wait (so under FIFO both freed slots are its own).
    eventually("the long job waits for two slots", || {
        executors.waiting_tasks().len() >= 2
    })
    .await;
    let long_job = executors.waiting_jobs()[0];
    session
        .sql("set spark.scheduler.pool = short")
        .await
        .unwrap();
    let short = spawn(&session, "select count(*) from region");
    eventually("both jobs wait for a slot", || {
        executors.waiting_jobs().len() == 2
    })
    .await;
    let granted = executors.recent_grants().len();
    let [first, second] = hogs;
    drop(first);
    drop(second);
    let grants = executors.recent_grants();
    long.await.unwrap();
    short.await.unwrap();
    let job = |g: usize| usize::from(grants[g] != long_job);
    [job(granted), job(granted + 1)]
}

#[tokio::test(flavor = "multi_thread")]
async fn fifo_makes_a_later_job_wait_and_fair_gives_it_a_slot() {
    // FIFO: the earlier job's waiting tasks first.
    assert_eq!(first_two_grants("FIFO").await, [0, 0]);
    // FAIR: the first slot to the earlier job (both pools idle), the second to the pool
    // with nothing running.
    assert_eq!(first_two_grants("FAIR").await, [0, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_shuffles_are_freed_when_it_ends_fails_or_is_cancelled() {
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_str().unwrap().to_string();
    let session = session(&[
        ("spark.local.dir", &dir),
        ("spark.executor.memory", "16m"),
        ("spark.sql.shuffle.partitions", "4"),
    ])
    .await;
    let store = session.block_store().clone();
    let empty = || std::fs::read_dir(local.path()).unwrap().next().is_none();
    // Succeeded: freed once its result has been read.
    session
        .sql("select l_orderkey, count(*) from lineitem group by 1")
        .await
        .unwrap();
    assert_eq!(store.memory_used(), 0);
    assert!(empty());
    // Failed: a task fails every attempt.
    session
        .sql("set stagesql.test.fail_tasks = '3.0.1,3.0.2,3.0.3,3.0.4'")
        .await
        .unwrap();
    let failed = session
        .sql("select l_orderkey, count(*) from lineitem group by 1")
        .await;
    assert!(failed.is_err());
    assert_eq!(store.memory_used(), 0);
    assert!(empty());
    session.sql("reset stagesql.test.fail_tasks").await.unwrap();
    // Cancelled: dropped once a task has started.
    let recorder = Arc::new(Recorder::default());
    session.add_listener(recorder.clone());
    let mut long = Box::pin(session.sql(
        "select count(*) from (select v % 1000 as k from generate_series(1, 100000000000) t(v)) group by k",
    ));
    let running = |session: &Session| session.jobs().last().map(|j| j.status.as_str().to_string());
    tokio::select! {
        _ = &mut long => panic!("the job should not finish"),
        _ = eventually("a task started", || !recorder.task_starts().is_empty()) => {}
    }
    // While it runs, the job history lists it as running.
    assert_eq!(running(&session).as_deref(), Some("running"));
    drop(long);
    eventually("the cancelled job's shuffles are freed", || {
        store.memory_used() == 0 && empty()
    })
    .await;
    // It ended as cancelled: listeners heard it, the history keeps what it ran.
    let ended = recorder.events.lock().unwrap().iter().any(|e| {
        matches!(
            e,
            Event::JobEnd {
                status: stagesql::events::JobStatus::Cancelled,
                ..
            }
        )
    });
    assert!(ended);
    let jobs = session
        .sql("select status, error, stages from system.jobs order by job_id desc limit 1")
        .await
        .unwrap();
    assert_eq!(rows(&jobs), [["cancelled", "cancelled", "1"]]);
    // The stage it had started is reported, with its running tasks killed: listeners heard
    // each of them end, and system.tasks lists them with the reason.
    let stages = session
        .sql("select count(*) from system.stages s join (select max(job_id) as j from system.jobs where status = 'cancelled') c on s.job_id = c.j")
        .await
        .unwrap();
    assert_eq!(rows(&stages)[0][0], "1");
    assert_eq!(
        recorder.running.lock().unwrap().0,
        0,
        "every started task ended"
    );
    let killed = session
        .sql("select count(*), min(error), max(error) from system.tasks t join (select max(job_id) as j from system.jobs where status = 'cancelled') c on t.job_id = c.j where killed")
        .await
        .unwrap();
    let killed = &rows(&killed)[0];
    assert!(killed[0].parse::<usize>().unwrap() >= 1, "{killed:?}");
    assert!(killed[1].starts_with("killed: "), "{killed:?}");
}

/// Bytes the stages of the session's last job spilled.
async fn last_job_spill(session: &Session) -> u64 {
    let spilled = session
        .sql("select coalesce(sum(spill_bytes), 0) from system.stages where job_id = (select max(job_id) from system.jobs)")
        .await
        .unwrap();
    rows(&spilled)[0][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn more_cores_on_the_same_memory_spill_more() {
    // Four reduce tasks aggregating on every distinct comment: on one core each has the
    // executor's execution memory to itself; on four cores they share it, a quarter each.
    let query = "select l_comment, count(*) from lineitem group by l_comment";
    let mut spill = Vec::new();
    let mut answers = Vec::new();
    for cores in ["1", "4"] {
        let session = session(&[
            ("spark.executor.cores", cores),
            ("spark.executor.memory", "24m"),
            ("spark.sql.shuffle.partitions", "4"),
            ("spark.sql.adaptive.enabled", "false"),
        ])
        .await;
        let mut answer = rows(&session.sql(query).await.unwrap());
        answer.sort();
        answers.push(answer);
        spill.push(last_job_spill(&session).await);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(spill[0], 0, "one core: no spill");
    assert!(spill[1] > 0, "four cores on the same memory: spill");
}
