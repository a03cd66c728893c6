//! The interactive prompt, driven through a pseudo-terminal as a person would type.

use rexpect::session::{PtySession, spawn_command};

const PROMPT: &str = "stagesql> ";

/// How long any one expectation may wait: generous, because a debug build on a busy 2-core
/// machine is slow, and an expectation that is met returns at once.
const PATIENCE_MS: u64 = 180_000;

/// Waits for the prompt. rustyline switches the terminal to raw mode before it draws the
/// prompt, so from here on keys (Ctrl-C, Ctrl-D, Tab) reach the line editor, not the
/// terminal's line discipline: no extra pause is needed. Every interaction therefore waits
/// for the prompt before it sends a control key.
fn at_prompt(repl: &mut PtySession) {
    repl.exp_string(PROMPT).expect("the prompt appears");
}

/// Progress appears as soon as a job starts, however fast the machine: a test waits for
/// it as the sign that a job is running.
const PROGRESS_AT_ONCE: (&str, &str) = ("STAGESQL_PROGRESS_DELAY_MS", "0");

fn start(home: &std::path::Path) -> PtySession {
    start_with(home, &[])
}

fn start_with(home: &std::path::Path, env: &[(&str, &str)]) -> PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stagesql"));
    command.envs(env.iter().copied());
    command
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let mut session = spawn_command(command, Some(PATIENCE_MS)).expect("stagesql starts in a pty");
    at_prompt(&mut session);
    session
}

#[test]
fn multi_line_statements_run_when_terminated() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start(home.path());
    repl.send_line("select 40").unwrap();
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
    let mut repl = start_with(home.path(), &[PROGRESS_AT_ONCE]);
    // At the prompt: the half-typed statement is discarded.
    // The echo shows the line editor has read the keys before Ctrl-C arrives.
    repl.send("select 'discarded'").unwrap();
    repl.flush().unwrap();
    repl.exp_string("select 'discarded'").unwrap();
    repl.send_control('c').unwrap();
    at_prompt(&mut repl);
    // While running: a statement that would take hours is cancelled. The progress line
    // shows the job has started (and the terminal is back in cooked mode, where Ctrl-C is
    // a signal) before Ctrl-C is sent.
    repl.send_line("select count(*) from generate_series(1, 100000000000) a;")
        .unwrap();
    repl.exp_string("[Stage ").unwrap();
    repl.send_control('c').unwrap();
    repl.exp_string("cancelled").unwrap();
    at_prompt(&mut repl);
    repl.send_line("select 'after cancel' as state;").unwrap();
    repl.exp_string("after cancel").unwrap();
    at_prompt(&mut repl);
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
    // Keys sent as a person types them: each group waits for the line editor to show it,
    // so a Tab is never part of one burst with the text before it.
    let typing = [
        ("SELEC", "SELEC"),
        ("\t", "stagesql> SELECT"),
        (" 'k' as k from flights_by", "from flights_by"),
        ("\t", "from flights_by_airport"),
        (";\r", "0 rows"),
    ];
    for (keys, shown) in typing {
        repl.send(keys).unwrap();
        repl.flush().unwrap();
        repl.exp_string(shown)
            .unwrap_or_else(|e| panic!("after {keys:?}: {e}"));
    }
    at_prompt(&mut repl);
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn a_long_job_shows_spark_style_stage_progress() {
    let home = tempfile::tempdir().unwrap();
    let mut repl = start_with(home.path(), &[PROGRESS_AT_ONCE]);
    repl.send_line("select k, count(*) from (select v % 7 as k from generate_series(1, 40000000) t(v)) group by k;")
        .unwrap();
    repl.exp_string("[Stage 1:").unwrap();
    repl.exp_string("(0 + 1) / 1]").unwrap();
    repl.exp_string("7 rows").unwrap();
    at_prompt(&mut repl);
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}
