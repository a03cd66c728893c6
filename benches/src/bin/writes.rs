//! Writing TPC-H's lineitem to a warehouse table: a partitioned CTAS (tasks sort by the
//! partition column, write into staging, the driver commits) and an unpartitioned one, in
//! stages mode and pipelined mode, next to DataFusion's own writer (`COPY … TO`, which runs
//! on the driver) writing the same rows. Median of the runs, each on a fresh warehouse.
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin writes -- --sf 1 --runs 3 [--slots 2]
//! ```

use std::time::Instant;

use stagesql::{Session, SessionOptions};
use stagesql_benches::{Args, median};

const WRITES: [(&str, &str); 4] = [
    (
        "CTAS … USING parquet PARTITIONED BY (l_shipmode)",
        "CREATE TABLE li USING parquet PARTITIONED BY (l_shipmode) AS SELECT * FROM lineitem",
    ),
    (
        "CTAS … USING parquet",
        "CREATE TABLE li USING parquet AS SELECT * FROM lineitem",
    ),
    (
        "COPY … TO (DataFusion's writer) PARTITIONED BY (l_shipmode)",
        "COPY (SELECT * FROM lineitem) TO 'copy-out' STORED AS PARQUET PARTITIONED BY (l_shipmode)",
    ),
    (
        "COPY … TO (DataFusion's writer)",
        "COPY (SELECT * FROM lineitem) TO 'copy-out' STORED AS PARQUET",
    ),
];

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let args = Args::from_env();
    let sf = args.scale_factor(1.0);
    let runs = args.runs(3);
    let slots = args.slots();
    let out = std::env::temp_dir().join(format!("stagesql-writes-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("create the output directory");
    std::env::set_current_dir(&out).expect("enter the output directory");
    println!("TPC-H SF {sf} lineitem, {slots} slots, median of {runs} runs (after a warm-up)\n");
    println!("| write | stages (s) | pipelined (s) |\n|---|---:|---:|");
    for (name, sql) in WRITES {
        let mut times = [Vec::new(), Vec::new()];
        for run in 0..=runs {
            for (index, mode) in ["stages", "pipelined"].into_iter().enumerate() {
                let _ = std::fs::remove_dir_all("wh");
                let _ = std::fs::remove_dir_all("copy-out");
                let session = Session::with_options(SessionOptions {
                    settings: vec![
                        ("spark.executor.cores".into(), slots.to_string()),
                        ("spark.sql.warehouse.dir".into(), "wh".into()),
                        ("stagesql.execution.mode".into(), mode.into()),
                    ],
                    ..SessionOptions::default()
                })?;
                session.load_tpch(sf).await?;
                let started = Instant::now();
                session.sql(sql).await?;
                // Run 0 warms the file cache and is not counted.
                if run > 0 {
                    times[index].push(started.elapsed().as_secs_f64());
                }
            }
        }
        println!(
            "| {name} | {:.3} | {:.3} |",
            median(times[0].clone()),
            median(times[1].clone())
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
