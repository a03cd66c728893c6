//! Prints the stage graph of the last statement, after running the ones before it:
//! `cargo run --example stages -- <tpch scale factor> "<sql>; …"`.

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let session = stagesql::Session::new()?;
    session
        .load_tpch(args[1].parse().expect("scale factor"))
        .await?;
    let statements = session.statements(&args[2])?;
    let (last, setup) = statements.split_last().expect("a statement");
    for statement in setup {
        session.execute(statement).await?;
    }
    let plan = session
        .context()
        .state()
        .create_logical_plan(&last.text)
        .await?;
    println!("{}", session.plan_stages(&plan).await?);
    if std::env::var_os("RUN").is_some() {
        let results = session.sql(&last.text).await?;
        println!("{results:?}");
        for job in session.jobs() {
            for stage in &job.stages {
                for attempt in &stage.attempts {
                    println!("{attempt:?}");
                }
            }
        }
    }
    Ok(())
}
