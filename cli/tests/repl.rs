//! The interactive prompt, driven through a pseudo-terminal as a person would type.

use rexpect::session::{PtySession, spawn_command};

const PROMPT: &str = "stagesql> ";

/// Waits for the prompt, then a moment more: rustyline discards input typed before it has
/// switched the terminal to raw mode, as a person never types that fast.
fn at_prompt(repl: &mut PtySession) {
    repl.exp_string(PROMPT).expect("the prompt appears");
    std::thread::sleep(std::time::Duration::from_millis(250));
}

fn start(home: &std::path::Path) -> PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stagesql"));
    command
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let mut session = spawn_command(command, Some(30_000)).expect("stagesql starts in a pty");
    at_prompt(&mut session);
    session
}

#[test]
fn multi_line_statements_run_when_terminated() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    repl.send_line("select 40").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    repl.send_line("  + 2 as answer;").unwrap();
    repl.exp_string("| 42     |").unwrap();
    repl.exp_string("1 row").unwrap();
    at_prompt(&mut repl);
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
    let history = std::fs::read_to_string(home.path().join(".stagesql_history")).unwrap();
    assert!(history.contains("answer"), "{history}");
}

#[test]
fn errors_show_a_caret_and_the_prompt_survives() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    repl.send_line("select 1; selec 2;").unwrap();
    repl.exp_string("error: Expected").unwrap();
    repl.exp_string("1 | select 1; selec 2;").unwrap();
    repl.exp_string("^").unwrap();
    at_prompt(&mut repl);
    repl.send_line("select * from no_such_table;").unwrap();
    repl.exp_string("no_such_table").unwrap();
    at_prompt(&mut repl);
    repl.send_line("select 'still alive' as status;").unwrap();
    repl.exp_string("still alive").unwrap();
    at_prompt(&mut repl);
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn backslash_commands() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("setup.sql");
    std::fs::write(&script, "create table trips (id int, city varchar);\n").unwrap();
    let mut repl = start(home.path());
    let include = format!("\\i {}", script.display());
    let steps: [(&str, &str); 9] = [
        (&include, "CREATE TABLE"),
        ("\\d", "trips"),
        ("\\d trips", "city"),
        ("\\timing off", "timing is off"),
        ("\\format csv", ""),
        ("select 7 as seven;", "seven\r\n7\r\n"),
        (
            "\\conf datafusion.execution.batch",
            "datafusion.execution.batch_size,8192,default",
        ),
        ("\\bogus", "unknown command \\bogus"),
        ("\\?", "\\timing on|off"),
    ];
    for (input, expected) in steps {
        repl.send_line(input).unwrap();
        repl.exp_string(expected)
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        at_prompt(&mut repl);
    }
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn ctrl_c_clears_the_line_and_cancels_a_running_statement() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    // At the prompt: the half-typed statement is discarded.
    repl.send("select 'discarded'").unwrap();
    repl.send_control('c').unwrap();
    at_prompt(&mut repl);
    // While running: a statement that would take minutes is cancelled.
    repl.send_line("select count(*) from generate_series(1, 100000000000) a;")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    repl.send_control('c').unwrap();
    repl.exp_string("cancelled").unwrap();
    at_prompt(&mut repl);
    repl.send_line("select 'after cancel' as state;").unwrap();
    repl.exp_string("after cancel").unwrap();
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn tab_completes_tables_and_keywords() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    repl.send_line("create table flights_by_airport (origin varchar);")
        .unwrap();
    repl.exp_string("CREATE TABLE").unwrap();
    at_prompt(&mut repl);
    // Keys typed with pauses, as a person types: a tab inside one burst of input is read
    // as pasted text, not as a completion request.
    for keys in ["SELEC", "\t", " 'k' as k from flights_by", "\t", ";\r"] {
        repl.send(keys).unwrap();
        repl.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    repl.exp_string("stagesql> SELECT\r").unwrap();
    repl.exp_string("from flights_by_airport").unwrap();
    repl.exp_string("0 rows").unwrap();
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn a_long_job_shows_spark_style_stage_progress() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    repl.send_line("select k, count(*) from (select v % 7 as k from generate_series(1, 40000000) t(v)) group by k;")
        .unwrap();
    repl.exp_string("[Stage 1:").unwrap();
    repl.exp_string("(0 + 1) / 1]").unwrap();
    repl.exp_string("7 rows").unwrap();
    at_prompt(&mut repl);
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}
