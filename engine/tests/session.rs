//! The `Session` API as a program embedding stagesql uses it.

use stagesql::config::Source;
use stagesql::sql::Position;
use stagesql::{Completion, Error, Session, StatementResult};

fn single_value(results: &[StatementResult]) -> String {
    let batches = results
        .last()
        .and_then(StatementResult::batches)
        .expect("rows");
    let rows = stagesql::tpch::answers::rows(batches).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].join("|")
}

#[tokio::test]
async fn many_statements_return_one_result_each() {
    let session = Session::new().unwrap();
    let results = session
        .sql("create table t (x int); insert into t values (1), (2), (3); select sum(x) from t")
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        matches!(&results[0], StatementResult::Done(Completion { tag, rows: None }) if tag == "CREATE TABLE")
    );
    assert!(
        matches!(&results[1], StatementResult::Done(Completion { tag, rows: Some(3) }) if tag == "INSERT")
    );
    assert_eq!(single_value(&results), "6");
}

#[tokio::test]
async fn views_and_ctas_are_catalog_objects() {
    let session = Session::new().unwrap();
    session
        .sql("create table base as select * from (values (1, 'a'), (2, 'b')) as v(id, name); create view only_b as select * from base where name = 'b'")
        .await
        .unwrap();
    assert_eq!(
        single_value(&session.sql("select id from only_b").await.unwrap()),
        "2"
    );
    let tables: Vec<String> = session
        .tables()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(tables, vec!["base", "only_b"]);
}

#[tokio::test]
async fn syntax_errors_carry_positions_in_the_whole_text() {
    let session = Session::new().unwrap();
    let error = session
        .sql("select 1;\n\nselect * form t")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Syntax { .. }), "{error:?}");
    assert_eq!(
        error.position(),
        Some(Position {
            line: 3,
            column: 10
        })
    );
    assert!(session.check_syntax("select 1; select 2").is_ok());
    assert!(session.check_syntax("select 1; selec 2").is_err());
}

#[tokio::test]
async fn unknown_columns_point_at_their_place() {
    let session = Session::new().unwrap();
    let error = session
        .sql("select 1;\nselect x, nope from (select 1 as x)")
        .await
        .unwrap_err();
    assert!(error.message().contains("nope"), "{}", error.message());
    assert_eq!(error.position().map(|p| p.line), Some(2));
}

/// `sql` fails with an error whose message contains `expected`.
async fn assert_set_fails(session: &Session, sql: &str, expected: &str) {
    let error = session.sql(sql).await.unwrap_err();
    assert!(
        error.message().contains(expected),
        "{sql}: {}",
        error.message()
    );
}

#[tokio::test]
async fn settings_track_their_source_and_reset() {
    let session = Session::with_options(stagesql::SessionOptions {
        settings: vec![("datafusion.execution.batch_size".into(), "100".into())],
        ..Default::default()
    })
    .unwrap();
    let row = |session: &Session| {
        session
            .setting_rows(Some("datafusion.execution.batch_size"))
            .remove(0)
    };
    assert_eq!(
        (row(&session).value, row(&session).source),
        ("100".into(), Source::conf_flag())
    );
    session
        .sql("SET datafusion.execution.batch_size = 200")
        .await
        .unwrap();
    assert_eq!(
        (row(&session).value, row(&session).source),
        ("200".into(), Source::Session { at: None })
    );
    session
        .sql("RESET datafusion.execution.batch_size")
        .await
        .unwrap();
    assert_eq!(
        (row(&session).value, row(&session).source),
        ("100".into(), Source::conf_flag())
    );
    assert_eq!(
        single_value(
            &session
                .sql("SET datafusion.execution.batch_size")
                .await
                .unwrap()
        ),
        "datafusion.execution.batch_size|100"
    );
    let error = session.sql("SET spark.nonsense = 1").await.unwrap_err();
    assert!(
        error
            .message()
            .contains("unknown configuration key 'spark.nonsense'")
    );
    assert_set_fails(
        &session,
        "SET datafusion.execution.batch_size = lots",
        "invalid value 'lots'",
    )
    .await;
}

#[tokio::test]
async fn our_settings_live_in_datafusion_configuration() {
    let session = Session::with_options(stagesql::SessionOptions {
        settings: vec![
            ("spark.sql.shuffle.partitions".into(), "16".into()),
            ("spark.memory.fraction".into(), "0.5".into()),
        ],
        ..Default::default()
    })
    .unwrap();
    // DataFusion's own configuration carries them (what a task's context and a serialized
    // plan carry), so its settings table lists them.
    let listed = session
        .sql("select name, value from information_schema.df_settings where name in ('spark.sql.shuffle.partitions', 'spark.memory.fraction', 'stagesql.execution.mode') order by name")
        .await
        .unwrap();
    let rows = stagesql::tpch::answers::rows(listed.last().unwrap().batches().unwrap()).unwrap();
    assert_eq!(
        rows,
        [
            ["spark.memory.fraction", "0.5"],
            ["spark.sql.shuffle.partitions", "16"],
            ["stagesql.execution.mode", "stages"],
        ]
    );
    let options = session.context().state().config().options().clone();
    assert_eq!(
        stagesql::config::options::get(&options, "spark.sql.shuffle.partitions"),
        "16"
    );
    // Values are checked as before, and RESET returns to the startup value.
    assert_set_fails(
        &session,
        "SET spark.sql.adaptive.skewJoin.skewedPartitionFactor = -2",
        "a number of at least 0",
    )
    .await;
    session
        .sql("SET spark.sql.shuffle.partitions = 4")
        .await
        .unwrap();
    session.sql("RESET").await.unwrap();
    assert_eq!(session.setting("spark.memory.fraction"), "0.5");
    assert_eq!(session.setting("spark.sql.shuffle.partitions"), "16");
}

#[tokio::test]
async fn a_result_larger_than_max_result_size_fails_before_the_driver_reads_it() {
    let session = Session::with_options(stagesql::SessionOptions {
        settings: vec![
            ("spark.driver.maxResultSize".into(), "64k".into()),
            ("spark.sql.shuffle.partitions".into(), "4".into()),
        ],
        ..Default::default()
    })
    .unwrap();
    let error = session
        .sql("select v, v * 2 as w from generate_series(1, 100000) as t(v)")
        .await
        .unwrap_err()
        .message();
    assert!(
        error.contains("Total size of results of")
            && error.contains("is bigger than spark.driver.maxResultSize (64.0 KiB)"),
        "{error}"
    );
    let failed = session.jobs().pop().unwrap();
    assert_eq!(failed.status, stagesql::scheduler::JobStatus::Failed);
    // A small result of the same data passes, and EXPLAIN ANALYZE shows its size.
    let explained = session
        .sql("EXPLAIN ANALYZE select count(*), sum(v) from generate_series(1, 100000) as t(v)")
        .await
        .unwrap();
    let text = stagesql::tpch::answers::rows(explained[0].batches().unwrap())
        .unwrap()
        .concat()
        .join("\n");
    assert!(text.contains("result: 1 rows, "), "{text}");
    // Writes send their rows to files, not to the user: no limit.
    session
        .sql("create table big as select v from generate_series(1, 100000) as t(v)")
        .await
        .unwrap();
    // The limit is fixed for the session, as Spark's driver settings are.
    assert_set_fails(
        &session,
        "SET spark.driver.maxResultSize = 0",
        "cannot modify the value of 'spark.driver.maxResultSize' with SET",
    )
    .await;
}

/// A panic inside DataFusion's operators (here its `first_value` accumulator's assertion,
/// see docs/known-issues.md) is the statement's error in every mode: it escaped `sql` as a
/// panic in pipelined mode, where the operator runs in the caller's task.
#[tokio::test]
async fn a_panic_in_an_operator_is_the_statements_error() {
    for mode in ["pipelined", "stages"] {
        let session = Session::with_options(stagesql::SessionOptions {
            settings: vec![
                ("stagesql.execution.mode".into(), mode.into()),
                ("spark.executor.cores".into(), "1".into()),
                ("spark.task.maxFailures".into(), "1".into()),
            ],
            ..Default::default()
        })
        .unwrap();
        let error = session
            .sql(
                "CREATE TABLE t (a INT, c INT) AS VALUES (1, 2), (1, 3), (2, 5);
                 SELECT DISTINCT ON (a) a, a AS b, c
                 FROM (SELECT t.a, max(u.c) AS c FROM t JOIN t AS u ON t.a = u.a GROUP BY t.a)
                 ORDER BY a, b, c",
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{mode}: the query ran"));
        assert!(
            error.message().contains("assertion"),
            "{mode}: {}",
            error.message()
        );
        // The session goes on.
        let results = session.sql("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(single_value(&results), "3", "{mode}");
    }
}
