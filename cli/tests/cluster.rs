//! Cluster mode on a real Apache DataFusion Ballista 55 cluster on loopback: a scheduler and
//! two executors started as `stagesql cluster …` child processes on free ports, queried through
//! the Session API and the CLI with `--master df://…`, and torn down at the end (also when a
//! test fails: every child is killed when its guard drops).

#![cfg(feature = "cluster")]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use stagesql::config::Source;
use stagesql::config::master::SchedulerAddress;
use stagesql::tpch::answers;
use stagesql::{Session, SessionOptions, StatementResult};

/// A child process killed (and reaped) when dropped.
struct Node {
    name: String,
    child: Child,
}

impl Node {
    fn start(name: &str, args: &[String], log: &Path) -> Node {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stagesql"))
            .args(args)
            .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Node {
            name: name.to_string(),
            child,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ports nothing listens on now (held together, so that they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One cluster at a time: tests of a 2-core machine that each start three processes would
/// otherwise starve each other's heartbeats.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A scheduler and executors on loopback.
struct LocalCluster {
    executors: Vec<Node>,
    scheduler: Node,
    address: SchedulerAddress,
    dir: tempfile::TempDir,
    /// Last: released once the processes are gone.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl LocalCluster {
    /// A scheduler handing out tasks by `scheduling` (`pull` or `push`), and `executors`
    /// executors of `cores` slots each.
    fn start(executors: usize, cores: usize, scheduling: &str) -> LocalCluster {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(1 + 2 * executors);
        let address = SchedulerAddress {
            host: "127.0.0.1".into(),
            port: ports[0],
        };
        let scheduler = Node::start(
            "scheduler",
            &[
                "cluster".into(),
                "scheduler".into(),
                "--port".into(),
                ports[0].to_string(),
                "--executor-timeout".into(),
                "6".into(),
                "--scheduling".into(),
                scheduling.into(),
            ],
            &dir.path().join("scheduler.log"),
        );
        let mut cluster = LocalCluster {
            _turn: turn,
            executors: Vec::new(),
            scheduler,
            address,
            dir,
        };
        cluster.wait_until("the scheduler listens", |c| {
            std::net::TcpStream::connect(("127.0.0.1", c.address.port)).is_ok()
        });
        for i in 0..executors {
            let work = cluster.dir.path().join(format!("executor-{i}"));
            let node = Node::start(
                &format!("executor {i}"),
                &[
                    "cluster".into(),
                    "executor".into(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{}", ports[0]),
                    "--port".into(),
                    ports[1 + 2 * i].to_string(),
                    "--grpc-port".into(),
                    ports[2 + 2 * i].to_string(),
                    "--cores".into(),
                    cores.to_string(),
                    "--work-dir".into(),
                    work.display().to_string(),
                    "--heartbeat-interval".into(),
                    "1".into(),
                    // No --scheduling: an executor asks its scheduler how it hands out tasks.
                ],
                &cluster.dir.path().join(format!("executor-{i}.log")),
            );
            cluster.executors.push(node);
        }
        cluster.wait_until("every executor registered", |c| {
            c.executors_alive() == executors
        });
        cluster
    }

    /// Executors the scheduler's REST API lists.
    fn executors_alive(&self) -> usize {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(stagesql::cluster::rest::get_json(
                &self.address,
                "/api/executors",
            ))
            .ok()
            .and_then(|json| json.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    fn master(&self) -> String {
        self.address.to_string()
    }

    fn wait_until(&mut self, what: &str, ready: impl Fn(&LocalCluster) -> bool) {
        let started = Instant::now();
        while !ready(self) {
            let exited = std::iter::once(&mut self.scheduler)
                .chain(self.executors.iter_mut())
                .find_map(|node| (!node.is_running()).then(|| node.name.clone()));
            if let Some(name) = exited {
                panic!("{name} exited while waiting until {what}\n{}", self.logs());
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("timed out waiting until {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                text += &format!(
                    "--- {}\n{}\n",
                    entry.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        text
    }

    fn session(&self, tpch: &Path) -> Session {
        Session::with_options(SessionOptions {
            startup: vec![(
                "spark.master".into(),
                self.master(),
                Source::CommandLine {
                    flag: "--master".into(),
                },
            )],
            tpch_dir: Some(tpch.to_path_buf()),
            ..SessionOptions::default()
        })
        .expect("a session in cluster mode connects")
    }
}

fn local_session(tpch: &Path) -> Session {
    Session::with_options(SessionOptions {
        tpch_dir: Some(tpch.to_path_buf()),
        ..SessionOptions::default()
    })
    .unwrap()
}

/// The rows of the last statement of `text` that returned rows.
async fn last_rows(session: &Session, text: &str) -> Result<Vec<Vec<String>>, String> {
    let results = session.sql(text).await.map_err(|e| e.message())?;
    let batches = results
        .iter()
        .rev()
        .find_map(StatementResult::batches)
        .ok_or("no rows")?;
    answers::rows(batches)
}

fn stagesql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stagesql"))
        .args(args)
        .env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_22_tpch_queries_on_a_two_executor_cluster_equal_local_mode() {
    // Push scheduling here (the lower latency between stages); the other tests use the default,
    // pull.
    let cluster = LocalCluster::start(2, 2, "push");
    let tpch = cluster.dir.path().join("tpch");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let local = local_session(&tpch);
        local.load_tpch(0.01).await.unwrap();
        let remote = cluster.session(&tpch);
        remote.load_tpch(0.01).await.unwrap();
        // Few shuffle partitions keep the cluster's tasks few on a 2-core machine.
        remote
            .sql("set spark.sql.shuffle.partitions = 4")
            .await
            .unwrap();
        let mut failures = Vec::new();
        for number in 1..=22 {
            let query = stagesql::tpch::query(number).unwrap();
            let expected = last_rows(&local, query).await.unwrap();
            match last_rows(&remote, query).await {
                Ok(actual) => {
                    if let Err(difference) = answers::compare(&expected, &actual) {
                        failures.push(format!("Q{number}: {difference}"));
                    }
                }
                Err(error) => failures.push(format!("Q{number}: {error}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of 22 queries differ on the cluster:\n{}\n{}",
            failures.len(),
            failures.join("\n"),
            cluster.logs()
        );
        // Each query's Ballista job is in the session's history, from the scheduler's record.
        let jobs = last_rows(
            &remote,
            "select status, count(*), min(stages), sum(case when tasks > 0 then 1 else 0 end) from system.jobs group by status",
        )
        .await
        .unwrap();
        assert_eq!(jobs, vec![vec!["succeeded".to_string(), "22".into(), jobs[0][2].clone(), "22".into()]]);
        assert!(jobs[0][2].parse::<u64>().unwrap() >= 1, "{jobs:?}");
    });
}

#[test]
fn the_cli_runs_on_the_cluster_and_refuses_what_cannot_run_there_by_name() {
    let cluster = LocalCluster::start(1, 2, "pull");
    let master = cluster.master();
    let dir = cluster.dir.path();
    let data = dir.join("t.csv");
    std::fs::write(&data, "k,v\n1,10\n2,20\n1,5\n").unwrap();
    let script = format!(
        "create external table t stored as csv location '{}' options ('format.has_header' 'true');\n\
         select k, sum(v) as s from t group by k order by k;\n",
        data.display()
    );
    let output = stagesql(&["--master", &master, "--format", "csv", "-q", "-c", &script]);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "k,s\n1,15\n2,20\n");

    // `stagesql test` runs a suite on the cluster: each file's session has the master.
    let suite = dir.join("on_cluster.slt");
    std::fs::write(
        &suite,
        format!(
            "statement ok\ncreate external table t stored as csv location '{}' options ('format.has_header' 'true')\n\n             query II\nselect k, sum(v) from t group by k order by k\n----\n1 15\n2 20\n\n             statement error cluster mode: .*CACHE TABLE is not supported on the cluster\ncache table c as select 1\n",
            data.display()
        ),
    )
    .unwrap();
    let output = stagesql(&[
        "test",
        "--conf",
        &format!("spark.master={master}"),
        suite.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && report.contains("3 passed, 0 failed"),
        "{report}"
    );

    // Writes the executors make: INSERT INTO a table over files, COPY … TO files; read back.
    let script = format!(
        "create external table t stored as csv location '{data}' options ('format.has_header' 'true');\n\
         create external table out (k bigint, s bigint) stored as parquet location '{out}/';\n\
         insert into out select k, sum(v) from t group by k;\n\
         insert into out values (9, 99);\n\
         copy (select k, v * 2 as w from t) to '{copied}/' stored as csv;\n\
         create external table c stored as csv location '{copied}/' options ('format.has_header' 'true');\n\
         select (select count(*) from out) as written, (select sum(s) from out) as s, (select sum(w) from c) as w;\n",
        data = data.display(),
        out = dir.join("out").display(),
        copied = dir.join("copied").display(),
    );
    let output = stagesql(&["--master", &master, "--format", "csv", "-c", &script]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", cluster.logs());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "written,s,w\n3,134,70\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("INSERT 2") && stderr.contains("INSERT 1") && stderr.contains("COPY 3"),
        "{stderr}"
    );
    // A write Ballista cannot make is refused, naming it.
    let output = stagesql(&[
        "--master",
        &master,
        "-c",
        &format!(
            "create external table out (k bigint, s bigint) stored as parquet location '{}/'; delete from out where k = 1",
            dir.join("out").display()
        ),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("DELETE on 'out' is not supported on a Ballista 55 cluster"),
        "{stderr}"
    );

    // An executor that would get its tasks the other way than the scheduler hands them out
    // never gets one: it is refused at start, naming both.
    let ports = free_ports(2);
    let output = Command::new(env!("CARGO_BIN_EXE_stagesql"))
        .args([
            "cluster",
            "executor",
            "--scheduler",
            &format!("127.0.0.1:{}", cluster.address.port),
            "--port",
            &ports[0].to_string(),
            "--grpc-port",
            &ports[1].to_string(),
            "--scheduling",
            "push",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("hands out tasks by pull scheduling")
            && stderr.contains("--scheduling push"),
        "{stderr}"
    );

    // An in-memory table cannot travel: the error names it and cluster mode.
    let output = stagesql(&["--master", &master, "-c", "create table m as select 1 as x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cluster mode") && stderr.contains("CREATE TABLE without LOCATION"),
        "{stderr}"
    );
    let output = stagesql(&["--master", &master, "-c", "cache table x as select 1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("CACHE TABLE is not supported on the cluster"),
        "{stderr}"
    );
    // A setting without a meaning there is an error when SET, named with why.
    let output = stagesql(&[
        "--master",
        &master,
        "-c",
        "set spark.sql.adaptive.skewJoin.enabled = false",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("has no meaning on the cluster"),
        "{stderr}"
    );
    // Ballista's own keys can be set, and bad values are refused by Ballista's validation.
    let output = stagesql(&[
        "--master",
        &master,
        "-q",
        "--format",
        "csv",
        "-c",
        "set ballista.planner.coalesce.enabled = true; set ballista.planner.coalesce.enabled",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ballista.planner.coalesce.enabled,true")
    );
}

#[test]
fn a_master_nothing_listens_on_is_a_clear_error() {
    let port = free_ports(1)[0];
    let master = format!("df://127.0.0.1:{port}");
    let output = stagesql(&["--master", &master, "-c", "select 1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("cannot reach the Ballista scheduler at {master}"))
            && stderr.contains("stagesql cluster scheduler"),
        "{stderr}"
    );
    let output = stagesql(&["--master", "yarn", "-c", "select 1"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected local, local[N]"));
}

/// The text lines of an EXPLAIN's rows.
fn lines(results: &[StatementResult]) -> Vec<String> {
    let batches = results.last().and_then(StatementResult::batches).unwrap();
    answers::rows(batches)
        .unwrap()
        .into_iter()
        .map(|row| row.join(" "))
        .collect()
}

/// `N` of a `Job: N stages, …` header.
fn stage_count(lines: &[String]) -> usize {
    let header = lines
        .iter()
        .find(|line| line.starts_with("Job"))
        .unwrap_or_else(|| panic!("no header in {lines:#?}"));
    header
        .split_once(": ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stage count in {header}"))
}

#[test]
fn explain_shows_ballistas_stages_and_explain_analyze_what_its_job_ran() {
    let cluster = LocalCluster::start(2, 1, "pull");
    let tpch = cluster.dir.path().join("tpch");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let session = cluster.session(&tpch);
        session.load_tpch(0.01).await.unwrap();
        // The static planner: the job runs the stages EXPLAIN shows.
        session
            .sql("set spark.sql.adaptive.enabled = false; set spark.sql.shuffle.partitions = 3")
            .await
            .unwrap();
        let query = "select n_name, count(*) as suppliers from supplier join nation on s_nationkey = n_nationkey group by n_name order by n_name";
        let explained = lines(&session.sql(&format!("explain {query}")).await.unwrap());
        let planned = stage_count(&explained);
        assert!(planned >= 2, "{explained:#?}");
        assert!(
            explained.iter().any(|l| l.contains("shuffle hash")),
            "{explained:#?}"
        );
        assert!(
            explained.iter().any(|l| l.contains("2 slots")),
            "the cluster's slots: {explained:#?}"
        );
        let analyzed = lines(&session.sql(&format!("explain analyze {query}")).await.unwrap());
        let job = analyzed[0]
            .strip_prefix("Ballista job ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("{analyzed:#?}"))
            .to_string();
        assert!(analyzed[0].contains("25 rows"), "{analyzed:#?}");
        let status = stagesql::cluster::rest::get_json(&cluster.address, &format!("/api/job/{job}"))
            .await
            .unwrap();
        assert_eq!(
            status["num_stages"].as_u64(),
            Some(planned as u64),
            "EXPLAIN's stages against the job's: {explained:#?}\n{status}"
        );
        assert_eq!(stage_count(&analyzed), planned, "{analyzed:#?}");
    });
}

/// How a query ended after one of two executors was killed while it ran.
#[derive(Debug, PartialEq)]
enum AfterLoss {
    RightAnswer,
    /// The statement failed with this error.
    Failed(String),
}

/// Runs TPC-H Q9 with `settings` (many partitions: many small tasks, so that the job runs for
/// seconds) on two 1-slot executors, kills one of them once the job has
/// finished a stage (some of whose shuffle output the killed executor holds), and waits for
/// the query to end, which it must within 90 s; then checks that the remaining executor still
/// runs queries.
fn kill_an_executor_while_q9_runs(settings: &str) -> AfterLoss {
    let mut cluster = LocalCluster::start(2, 1, "pull");
    let tpch = cluster.dir.path().join("tpch");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = local_session(&tpch);
    let query = stagesql::tpch::query(9).unwrap();
    let expected = runtime.block_on(async {
        local.load_tpch(0.01).await.unwrap();
        last_rows(&local, query).await.unwrap()
    });
    let session = std::sync::Arc::new(cluster.session(&tpch));
    runtime.block_on(async {
        session.load_tpch(0.01).await.unwrap();
        session.sql(settings).await.unwrap();
    });
    let running = {
        let session = session.clone();
        runtime.spawn(async move { last_rows(&session, query).await })
    };
    let started = Instant::now();
    loop {
        let jobs = runtime
            .block_on(stagesql::cluster::rest::get_json(
                &cluster.address,
                "/api/jobs",
            ))
            .unwrap();
        let midway = jobs.as_array().into_iter().flatten().any(|job| {
            job["status"] == "Running" && job["completed_stages"].as_u64().unwrap_or(0) >= 1
        });
        if midway {
            break;
        }
        assert!(
            !running.is_finished(),
            "the query ended before the executor was killed: it needs more work to test this"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.executors[1].kill();
    let started = Instant::now();
    let result = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(90), running)
            .await
            .map(Result::unwrap)
    });
    let result = result.unwrap_or_else(|_| {
        panic!(
            "the job did not end within 90 s of losing an executor\n{}",
            cluster.logs()
        )
    });
    let ended = match result {
        Ok(actual) => {
            answers::compare(&expected, &actual).unwrap();
            AfterLoss::RightAnswer
        }
        Err(error) => AfterLoss::Failed(error),
    };
    eprintln!(
        "the job ended {:.1} s after an executor was killed: {ended:?}",
        started.elapsed().as_secs_f64(),
    );
    // The remaining executor still serves queries: nothing of the lost job holds its slot.
    let rows = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            last_rows(&session, "select count(*) from nation"),
        )
        .await
    });
    let rows = rows.unwrap_or_else(|_| panic!("a query after the loss hangs\n{}", cluster.logs()));
    assert_eq!(rows.unwrap(), vec![vec!["25".to_string()]]);
    ended
}

#[test]
fn a_query_outlives_an_executor_killed_while_it_runs() {
    // Ballista's static planner, under pull scheduling: the lost executor's tasks, and the
    // shuffle output they had written, run again on the other one.
    let ended = kill_an_executor_while_q9_runs(
        "set spark.sql.shuffle.partitions = 50; set spark.sql.adaptive.enabled = false",
    );
    assert_eq!(ended, AfterLoss::RightAnswer);
}

#[test]
fn a_job_stalled_by_a_lost_executor_fails_with_a_clear_error_instead_of_waiting_for_ever() {
    // Ballista 55's adaptive planner (adaptive execution on, the default) does not always run
    // a lost executor's work again (apache/datafusion-ballista#1986): the job then waits for
    // ever. The session notices that none of its tasks runs or changes after the loss and
    // cancels it. When Ballista does recover, the answer must be right.
    let ended = kill_an_executor_while_q9_runs(
        "set spark.sql.shuffle.partitions = 100; set stagesql.cluster.stallTimeout = 5",
    );
    if let AfterLoss::Failed(error) = &ended {
        assert!(
            error.contains("stopped making progress after the cluster lost executor")
                && error.contains("stagesql.cluster.stallTimeout"),
            "not the stall's error: {error}"
        );
    }
}

/// Every event a session's listeners got.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(Instant, stagesql::events::Event)>>);

impl stagesql::events::Listener for Recorder {
    fn on_event(&self, event: &stagesql::events::Event) {
        self.0.lock().unwrap().push((Instant::now(), event.clone()));
    }
}

#[test]
fn a_cluster_jobs_progress_reaches_the_sessions_listeners_as_its_stages_run() {
    use stagesql::events::{Event, JobStatus};
    let cluster = LocalCluster::start(1, 2, "pull");
    let tpch = cluster.dir.path().join("tpch");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let session = cluster.session(&tpch);
    let recorder = std::sync::Arc::new(Recorder::default());
    session.add_listener(recorder.clone());
    runtime.block_on(async {
        session.load_tpch(0.01).await.unwrap();
        // 100 partitions: hundreds of tasks, so that the job runs for a while.
        session
            .sql("set spark.sql.shuffle.partitions = 100; set spark.sql.adaptive.enabled = false")
            .await
            .unwrap();
        let rows = last_rows(
            &session,
            "select o_orderpriority, count(*) from orders group by 1 order by 1",
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 5);
    });
    let timed = recorder.0.lock().unwrap().clone();
    // The events came as the job ran, not all at its end: its first stage was told complete
    // a while before the job was.
    let at = |f: &dyn Fn(&stagesql::events::Event) -> bool| {
        timed.iter().find(|(_, e)| f(e)).map(|(at, _)| *at).unwrap()
    };
    let first_stage_done = at(&|e| matches!(e, Event::StageCompleted { .. }));
    let job_done = at(&|e| matches!(e, Event::JobEnd { .. }));
    assert!(
        job_done.duration_since(first_stage_done) >= Duration::from_millis(100),
        "the first stage's completion was told only {:?} before the job's end",
        job_done.duration_since(first_stage_done)
    );
    let events: Vec<_> = timed.into_iter().map(|(_, e)| e).collect();
    let stages = match events.first() {
        Some(Event::JobStart {
            stages, planned, ..
        }) => {
            assert_eq!(*stages, planned.len());
            *stages
        }
        other => panic!("the job's start first, got {other:?}"),
    };
    assert!(stages >= 2, "{events:#?}");
    let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(
        count(&|e| matches!(e, Event::StageSubmitted { .. })),
        stages,
        "{events:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, Event::StageCompleted { .. })),
        stages,
        "{events:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, Event::TaskStart { .. })),
        count(&|e| matches!(e, Event::TaskEnd { error: None, .. })),
        "{events:#?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::JobEnd {
            status: JobStatus::Succeeded,
            ..
        })
    ));
    // The job is in the history too, with its stages' tasks.
    let jobs = session.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].stages.len(), stages);
}
