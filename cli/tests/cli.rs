//! The non-interactive CLI, driven as a user drives it: arguments, files and stdin in, stdout,
//! stderr and the exit code out.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn stagesql() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stagesql"));
    command.env_remove("STAGESQL_TPCH_DIR");
    // No user's stagesql-defaults.conf changes what the tests see.
    command.env("STAGESQL_CONF_DIR", "/nonexistent/stagesql-conf");
    command
}

fn run(args: &[&str]) -> Output {
    stagesql()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("stagesql runs")
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = stagesql()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stagesql starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("stagesql finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const QUERY: &str = "select 1 as id, 'a,b' as name union all select 2, NULL order by id";

#[test]
fn table_format_prints_a_box_and_a_footer() {
    let output = run(&["-c", QUERY]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("| id | name |"), "{text}");
    assert!(text.contains("| 1  | a,b  |"), "{text}");
    assert!(text.contains("| 2  | NULL |"), "{text}");
    assert!(text.contains("2 rows in "), "{text}");
}

#[test]
fn machine_formats_are_exact_and_footers_go_to_stderr() {
    let cases = [
        ("csv", "id,name\n1,\"a,b\"\n2,\n"),
        ("tsv", "id\tname\n1\ta,b\n2\t\n"),
        ("json", "[{\"id\":1,\"name\":\"a,b\"},{\"id\":2}]\n"),
        ("ndjson", "{\"id\":1,\"name\":\"a,b\"}\n{\"id\":2}\n"),
    ];
    for (format, expected) in cases {
        let output = run(&["--format", format, "-c", QUERY]);
        assert!(output.status.success(), "{format}: {}", stderr(&output));
        assert_eq!(stdout(&output), expected, "format {format}");
        assert!(
            stderr(&output).contains("2 rows"),
            "{format}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn markdown_format() {
    let output = run(&["--format", "markdown", "-q", "-c", QUERY]);
    assert_eq!(
        stdout(&output),
        "| id | name |\n|---|---|\n| 1 | a,b |\n| 2 | NULL |\n"
    );
}

#[test]
fn empty_json_result_is_an_empty_array() {
    let output = run(&["--format", "json", "-q", "-c", "select 1 as x where false"]);
    assert_eq!(stdout(&output), "[]\n");
}

#[test]
fn quiet_prints_only_results() {
    let output = run(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "create table t as select 1 as x; select x from t",
    ]);
    assert_eq!(stdout(&output), "x\n1\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn maxrows_cuts_tables_and_says_how_many_were_not_shown() {
    let output = run(&[
        "--maxrows",
        "3",
        "-c",
        "select * from generate_series(1, 10)",
    ]);
    let text = stdout(&output);
    assert_eq!(
        text.matches("\n| ").count(),
        3 + 1,
        "header plus three rows: {text}"
    );
    assert!(text.contains("10 rows (7 not shown"), "{text}");
}

#[test]
fn statements_without_rows_print_their_tag() {
    let output = run(&[
        "-c",
        "create table t (x int); insert into t values (1), (2); select * from t",
    ]);
    let text = stdout(&output);
    assert!(text.contains("CREATE TABLE"), "{text}");
    assert!(text.contains("INSERT 2"), "{text}");
}

#[test]
fn script_stops_at_first_error_with_file_line_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.sql");
    std::fs::write(
        &script,
        "select 1 as first;\n\nselect *\n  fro t;\nselect 3 as never;\n",
    )
    .unwrap();
    let output = run(&["-f", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains(&format!("{}:4:", script.display())), "{err}");
    assert!(err.contains("4 |   fro t"), "{err}");
    assert!(err.contains('^'), "{err}");
    let out = stdout(&output);
    assert!(out.contains("first"), "{out}");
    assert!(!out.contains("never"), "{out}");
}

#[test]
fn continue_on_error_runs_the_rest_but_still_fails() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "select * from missing_table;\nselect 3 as after;\n",
    )
    .unwrap();
    let output = run(&["--continue-on-error", "-f", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("after"));
    let err = stderr(&output);
    assert!(err.contains("missing_table"), "{err}");
    assert!(err.contains(&format!("{}:1:", script.display())), "{err}");
}

#[test]
fn several_files_run_in_order_in_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("1.sql");
    let second = dir.path().join("2.sql");
    std::fs::write(&first, "create table t as select 42 as answer;").unwrap();
    std::fs::write(&second, "select answer from t;").unwrap();
    let output = run(&[
        "-q",
        "--format",
        "csv",
        "-f",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "answer\n42\n");
}

#[test]
fn missing_script_file_is_named() {
    let output = run(&["-f", "/no/such/file.sql"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read '/no/such/file.sql'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sql_from_stdin_when_it_is_not_a_terminal() {
    let output = with_stdin(&["--format", "csv", "-q"], "select 6 * 7 as answer;\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "answer\n42\n");
}

#[test]
fn syntax_error_from_command_shows_position_and_caret() {
    let output = run(&["-c", "select 1;\nselec 2"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("--> <command>:2:1"), "{err}");
    assert!(err.contains("2 | selec 2\n  | ^"), "{err}");
}

#[test]
fn unknown_column_and_file_are_named() {
    let output = run(&["-c", "select nope from (select 1 as x)"]);
    assert!(stderr(&output).contains("nope"), "{}", stderr(&output));
    let output = run(&["-c", "select * from '/no/such/data.parquet'"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/no/such/data.parquet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn set_and_conf_flag_report_their_source() {
    let output = run(&[
        "--conf",
        "datafusion.execution.batch_size=1024",
        "--format",
        "csv",
        "-q",
        "-c",
        "set datafusion.execution.target_partitions = 3; set -v",
    ]);
    let text = stdout(&output);
    assert!(
        text.contains("datafusion.execution.batch_size,1024,8192,--conf,"),
        "{text}"
    );
    assert!(
        text.contains("datafusion.execution.target_partitions,3,"),
        "{text}"
    );
    let bad = run(&["-c", "set datafusion.execution.batch_sise = 3"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("did you mean 'datafusion.execution.batch_size'"),
        "{}",
        stderr(&bad)
    );
    let bad_flag = run(&["--conf", "no_equals_sign", "-c", "select 1"]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(
        stderr(&bad_flag).contains("expected KEY=VALUE"),
        "{}",
        stderr(&bad_flag)
    );
}

#[test]
fn broken_pipe_is_not_an_error() {
    let mut child = stagesql()
        .args([
            "--format",
            "csv",
            "-q",
            "-c",
            "select * from generate_series(1, 2000000)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn help_documents_flags_with_defaults_and_version_prints() {
    let help = stdout(&run(&["--help"]));
    for flag in [
        "--file",
        "--command",
        "--tpch",
        "--tpch-dir",
        "--format",
        "--maxrows",
        "--quiet",
        "--continue-on-error",
        "--conf",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("[default: table]"), "{help}");
    let version = stdout(&run(&["--version"]));
    assert!(version.starts_with("stagesql "), "{version}");
}

#[test]
fn tpch_data_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let query = "select count(*) as n from nation; select count(*) > 0 as some from lineitem";
    let first = run(&[
        "--tpch",
        "0.01",
        "--tpch-dir",
        cache,
        "--format",
        "csv",
        "-c",
        query,
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), "n\n25\nsome\ntrue\n");
    let marker = Path::new(cache).join("sf0.01").join("_SUCCESS");
    let generated = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let second = run(&[
        "--tpch",
        "0.01",
        "--tpch-dir",
        cache,
        "-q",
        "--format",
        "csv",
        "-c",
        "select count(*) as n from region",
    ]);
    assert_eq!(stdout(&second), "n\n5\n");
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        generated
    );
    // The environment variable is the other way to choose the directory.
    let by_env = stagesql()
        .env("STAGESQL_TPCH_DIR", cache)
        .args([
            "--tpch",
            "0.01",
            "-q",
            "--format",
            "csv",
            "-c",
            "select count(*) as n from region",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&by_env), "n\n5\n");
}

#[test]
fn bad_scale_factor_is_a_clear_error() {
    let output = run(&["--tpch", "zero", "-c", "select 1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("invalid scale factor 'zero'"),
        "{}",
        stderr(&output)
    );
}

const PASSING_AND_FAILING: &str = "\
# a suite with one passing and one failing query
statement ok
create table t as select * from (values (1), (2)) as v(x)

query I rowsort
select x from t
----
1
2

query I
select sum(x) from t
----
4

onlyif other_engine
query I
select 'never runs'
----
0

halt

query I
select 'after halt is not run'
----
0
";

#[test]
fn test_command_counts_records_and_reports_failures_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.slt");
    std::fs::write(&suite, PASSING_AND_FAILING).unwrap();
    let output = run(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("suite.slt:11"), "{text}");
    assert!(text.contains("select sum(x) from t"), "{text}");
    assert!(text.ends_with("2 passed, 1 failed, 1 skipped\n"), "{text}");
}

#[test]
fn test_command_complete_rewrites_expected_results() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.slt");
    std::fs::write(&suite, PASSING_AND_FAILING).unwrap();
    let completed = run(&["test", "--complete", suite.to_str().unwrap()]);
    assert!(completed.status.success(), "{}", stderr(&completed));
    assert!(
        std::fs::read_to_string(&suite)
            .unwrap()
            .contains("----\n3\n")
    );
    let rerun = run(&["test", suite.to_str().unwrap()]);
    assert!(rerun.status.success(), "{}", stdout(&rerun));
    assert!(
        stdout(&rerun).ends_with("3 passed, 0 failed, 1 skipped\n"),
        "{}",
        stdout(&rerun)
    );
}

#[test]
fn test_command_resolves_paths_and_includes_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("suites")).unwrap();
    std::fs::write(dir.path().join("data/n.csv"), "n\n5\n6\n").unwrap();
    std::fs::write(
        dir.path().join("suites/setup.slt.part"),
        "statement ok\ncreate external table n stored as csv location '../data/n.csv' options ('format.has_header' 'true')\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("suites/main.slt"),
        "include ./setup.slt.part\n\nquery I\nselect sum(n) from n\n----\n11\n",
    )
    .unwrap();
    // Started from elsewhere: the file's own directory anchors its paths.
    let output = stagesql()
        .current_dir(std::env::temp_dir())
        .args(["test", dir.path().join("suites").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).ends_with("2 passed, 0 failed\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn test_command_names_a_missing_path() {
    let output = run(&["test", "/no/such/suite"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/no/such/suite"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn settings_rank_default_file_flags_and_set_and_say_where_each_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stagesql-defaults.conf"),
        "# team defaults\nspark.executor.memory 2g\nspark.sql.shuffle.partitions=16\nspark.executor.cores 3\nspark.memory.fraction 0.5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("queries.sql"),
        "select 1;\nSET spark.sql.shuffle.partitions = 8;\nSET -v;\n",
    )
    .unwrap();
    let output = stagesql()
        .current_dir(dir.path())
        .args([
            "--executor-memory",
            "3g",
            "--conf",
            "spark.executor.cores=5",
            "--conf",
            "spark.executor.memory=1g",
            "--format",
            "csv",
            "-q",
            "-f",
            "queries.sql",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let row = |key: &str| -> String {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("{key},")))
            .unwrap_or_else(|| panic!("{key} not in {text}"));
        line.split(',').take(4).collect::<Vec<_>>().join(",")
    };
    // default → file → --conf → flag → SET, each naming where the value came from.
    assert_eq!(
        row("spark.executor.instances"),
        "spark.executor.instances,1,1,default"
    );
    assert_eq!(
        row("spark.memory.fraction"),
        "spark.memory.fraction,0.5,0.6,file stagesql-defaults.conf:5"
    );
    assert_eq!(
        row("spark.executor.cores"),
        "spark.executor.cores,5,0,--conf"
    );
    assert_eq!(
        row("spark.executor.memory"),
        "spark.executor.memory,3g,4g,--executor-memory"
    );
    assert_eq!(
        row("spark.sql.shuffle.partitions"),
        "spark.sql.shuffle.partitions,8,200,SET at queries.sql:2"
    );

    // --properties-file replaces the file in the working directory.
    let other = dir.path().join("other.conf");
    std::fs::write(&other, "spark.sql.shuffle.partitions 12\n").unwrap();
    let output = stagesql()
        .current_dir(dir.path())
        .args(["--properties-file", other.to_str().unwrap()])
        .args([
            "--format",
            "csv",
            "-q",
            "-c",
            "SET spark.sql.shuffle.partitions; SET spark.executor.memory",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        stdout(&output),
        "key,value\nspark.sql.shuffle.partitions,12\nkey,value\nspark.executor.memory,4g\n",
        "{}",
        stderr(&output)
    );

    // A setting fixed at startup is refused by SET, naming where its value came from.
    let output = stagesql()
        .current_dir(dir.path())
        .args(["-c", "SET spark.executor.memory = 8g"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("cannot modify the value of 'spark.executor.memory' with SET")
            && error.contains("its value 2g comes from file stagesql-defaults.conf:2")
            && error.contains("--executor-memory"),
        "{error}"
    );

    // A bad line of the file, a missing file and a bad flag value are named.
    std::fs::write(&other, "spark.sql.shuffle.partitions zero\n").unwrap();
    let output = run(&[
        "--properties-file",
        other.to_str().unwrap(),
        "-c",
        "select 1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("other.conf:1: invalid value 'zero' for 'spark.sql.shuffle.partitions'"),
        "{}",
        stderr(&output)
    );
    let output = run(&["--properties-file", "/nonexistent/x.conf", "-c", "select 1"]);
    assert!(
        stderr(&output)
            .contains("properties file '/nonexistent/x.conf' (--properties-file) does not exist"),
        "{}",
        stderr(&output)
    );
    let output = run(&["--executor-memory", "lots", "-c", "select 1"]);
    assert!(
        stderr(&output).contains("invalid value 'lots' for 'spark.executor.memory'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn master_local_n_sets_the_slots() {
    let output = run(&[
        "--master",
        "local[3]",
        "--format",
        "csv",
        "-q",
        "-c",
        "set spark.executor.cores",
    ]);
    assert_eq!(stdout(&output), "key,value\nspark.executor.cores,3\n");
    let bad = run(&["--master", "yarn", "-c", "select 1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("expected local, local[N] (N ≥ 1), local[*] or df://host:port"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn execution_modes_give_the_same_rows() {
    let query = "select n_regionkey, count(*) as n from nation group by 1 order by 1";
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let staged = run(&[
        "--tpch",
        "0.01",
        "--tpch-dir",
        cache,
        "-q",
        "--format",
        "csv",
        "-c",
        query,
    ]);
    let pipelined = run(&[
        "--tpch",
        "0.01",
        "--tpch-dir",
        cache,
        "-q",
        "--format",
        "csv",
        "--conf",
        "stagesql.execution.mode=pipelined",
        "-c",
        query,
    ]);
    assert_eq!(stdout(&staged), "n_regionkey,n\n0,5\n1,5\n2,5\n3,5\n4,5\n");
    assert_eq!(stdout(&staged), stdout(&pipelined));
}

#[test]
fn concurrent_files_run_side_by_side_each_in_order_in_a_pool_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sql");
    let b = dir.path().join("b.sql");
    // Each file creates its own table, then reads it: in order within the file.
    std::fs::write(
        &a,
        "create table ta as select v from generate_series(1, 1000) t(v);\nselect 'a' as file, count(*) as n from ta;\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        "set spark.scheduler.pool = mine;\ncreate table tb as select v from generate_series(1, 2000) t(v);\nselect 'b' as file, sum(v) as n from tb;\n",
    )
    .unwrap();
    let output = run(&[
        "-q",
        "--format",
        "csv",
        "--conf",
        "spark.scheduler.mode=FAIR",
        "--concurrent",
        "-f",
        a.to_str().unwrap(),
        "-f",
        b.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("a,1000\n"), "{out}");
    assert!(out.contains("b,2001000\n"), "{out}");

    // A failing file fails the run with its own location; the other one still runs.
    std::fs::write(&a, "select 1;\nselect * from no_such_table;\n").unwrap();
    let output = run(&[
        "-q",
        "--format",
        "csv",
        "--concurrent",
        "-f",
        a.to_str().unwrap(),
        "-f",
        b.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("a.sql:2"), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("b,2001000\n"),
        "{}",
        stdout(&output)
    );
}

/// A file written for DataFusion's runner: paths relative to the working directory, its
/// scratch directory, DataFusion's column letters and renderings, a count row for INSERT
/// and COPY, errors as `DataFusion error: …`, EXPLAIN counted apart.
const DATAFUSION_STYLE: &str = "\
statement ok
create external table n stored as csv location 'data/n.csv' options ('format.has_header' 'true')

query I
select sum(n) from n
----
11

statement ok
create table t (a int, d decimal(10, 2), b boolean, day date)

query I
insert into t values (1, 1.50, true, '2024-01-02'), (2, 2.00, false, '2024-01-03')
----
2

query IRBD
select * from t order by a
----
1 1.5 true 2024-01-02
2 2 false 2024-01-03

query I
COPY (select a from t) TO 'test_files/scratch/df_style/a.csv' STORED AS CSV
----
2

statement error DataFusion error: Error during planning: table 'datafusion.public.nope' not found
select * from nope

query TT
explain select 1
----
logical_plan DataFusion's own text
";

#[test]
fn test_command_runs_datafusion_suites_with_compat() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test_files")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/n.csv"), "n\n5\n6\n").unwrap();
    std::fs::write(dir.path().join("test_files/df_style.slt"), DATAFUSION_STYLE).unwrap();
    // Left by an earlier run: the scratch directory is emptied first.
    std::fs::create_dir_all(dir.path().join("test_files/scratch/df_style/old")).unwrap();
    let compat = stagesql()
        .current_dir(dir.path())
        .args(["test", "--compat", "datafusion", "test_files"])
        .output()
        .unwrap();
    let text = stdout(&compat);
    assert!(compat.status.success(), "{text}");
    assert!(
        text.ends_with(
            "7 passed, 0 failed, 1 EXPLAIN records not compared (DataFusion's plan text)\n"
        ),
        "{text}"
    );
    assert!(
        dir.path()
            .join("test_files/scratch/df_style/a.csv")
            .exists()
    );
    assert!(!dir.path().join("test_files/scratch/df_style/old").exists());
    // Without it, the same file fails where the conventions differ.
    let plain = stagesql()
        .current_dir(dir.path())
        .args(["test", "test_files"])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(1), "{}", stdout(&plain));
}
