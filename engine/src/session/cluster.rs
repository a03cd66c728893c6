//! A session in cluster mode (`spark.master = df://host:port`): its queries run on the
//! Ballista cluster; its catalog, settings and DDL stay here (docs/cluster.md).

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use super::{Session, StatementOutput};
use crate::cluster::progress::JobWatch;
use crate::cluster::report::JobContext;
use crate::cluster::settings::{Meaning, cluster_keys, meaning};
use crate::cluster::{Cluster, ClusterRun, Placement};
use crate::config::{Source, keys};
use crate::error::{Error, Result};
use crate::explain::{self, ExplainKind};
use crate::sql::{Command, SqlStatement, TableCommand};

impl Session {
    /// The cluster this session's queries run on, in cluster mode.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Refuses a statement of ours that cannot run on a cluster, naming it and the mode.
    pub(super) async fn check_command_on_cluster(&self, command: &Command) -> Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let refused = match command {
            Command::CacheTable { .. } | Command::UncacheTable { .. } | Command::ClearCache => {
                "CACHE TABLE keeps blocks in this process's block store, which a cluster's executors do not share"
            }
            // The catalog is this session's: reading it runs here.
            Command::Table(
                TableCommand::Describe { .. }
                | TableCommand::DescribeExtended { .. }
                | TableCommand::DescribeDatabase { .. }
                | TableCommand::ShowTables { .. }
                | TableCommand::ShowDatabases
                | TableCommand::Use { .. },
            ) => return Ok(()),
            // DataFusion's INSERT and DROP TABLE, on a table of the session (an INSERT into a
            // table over files then runs on the cluster).
            Command::Table(
                TableCommand::Insert { table, .. } | TableCommand::DropTable { name: table, .. },
            ) if self.warehouse_table(table).await?.is_none() => return Ok(()),
            Command::Table(_) => {
                "managed tables (spark.sql.warehouse.dir) are written and read in local mode; on a cluster, define tables over files with CREATE EXTERNAL TABLE … LOCATION"
            }
            _ => return Ok(()),
        };
        Err(Error::Cluster(format!(
            "{} is not supported on the cluster at {}: {refused}",
            statement_name(command),
            cluster.address()
        )))
    }

    /// Runs `plan` in cluster mode: DDL defines the session's catalog here; a query runs on
    /// the cluster (or here, if it reads only tables that describe this session).
    pub(super) async fn execute_on_cluster(
        &self,
        plan: LogicalPlan,
        tag: Option<&'static str>,
    ) -> Result<StatementOutput> {
        let cluster = self.cluster.as_ref().expect("cluster mode");
        let refuse = |what: &str, why: &str| {
            Err(Error::Cluster(format!(
                "{what} is not supported on the cluster at {}: {why}",
                cluster.address()
            )))
        };
        match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)) => {
                return refuse(
                    "CREATE TABLE without LOCATION",
                    "its rows would be held in this process, where the cluster's executors cannot read them; write them to files (COPY (query) TO 'dir/' STORED AS PARQUET) and CREATE EXTERNAL TABLE over them",
                );
            }
            // The catalog is this session's.
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::DescribeTable(_) => {
                return self.execute_pipelined(plan, tag).await;
            }
            _ => {}
        }
        let writes = matches!(plan, LogicalPlan::Dml(_) | LogicalPlan::Copy(_));
        match Cluster::placement(&plan)? {
            Placement::Here => self.execute_pipelined(plan, tag).await,
            Placement::Cluster => {
                let state = self.ctx.state();
                let keys = self.cluster_session_keys();
                let slots = cluster.slots().await?;
                let planned = cluster.plan_stages(&state, &plan, &keys, slots).await.ok();
                let job = self.next_job_id();
                let name = job_name(job, &self.current_statement());
                let run = cluster.run(&state, &plan, &keys, &name).await?;
                let context = JobContext {
                    job,
                    name,
                    sql: self.current_statement(),
                    at: self.current_statement_at(),
                    planned,
                    slots,
                };
                let rows = self.reported(cluster, run, context);
                match tag {
                    // A write's job answers the rows it wrote.
                    Some(tag) if writes => {
                        let batches: Vec<RecordBatch> = rows.try_collect().await?;
                        Ok(StatementOutput::Done(super::Completion {
                            tag: tag.to_string(),
                            rows: Some(super::count_column_total(&batches)),
                        }))
                    }
                    _ => Ok(StatementOutput::Rows(self.limit_result(rows))),
                }
            }
        }
    }

    /// EXPLAIN in cluster mode: the stages Ballista cuts the query into, in our format; with
    /// ANALYZE, after running it on the cluster, what its stages and tasks did there.
    pub(super) async fn explain_on_cluster(
        &self,
        statement: &SqlStatement,
        kind: ExplainKind,
        query_offset: usize,
    ) -> Result<StatementOutput> {
        let cluster = self.cluster.as_ref().expect("cluster mode");
        let query = super::explain::query_statement(statement, query_offset);
        let plan = self.logical_plan(&query).await?;
        if Cluster::placement(&plan)? == Placement::Here {
            return Err(Error::Cluster(
                "EXPLAIN of a query that reads only this session's own tables (information_schema, system): it runs here, not as a cluster job".into(),
            ));
        }
        let state = self.ctx.state();
        let keys = self.cluster_session_keys();
        let slots = cluster.slots().await?;
        let planned = cluster.plan_stages(&state, &plan, &keys, slots).await?;
        let analyze = matches!(
            kind,
            ExplainKind::Analyze | ExplainKind::AnalyzeJson | ExplainKind::AnalyzeHtml
        );
        let (view, first) = match analyze {
            false => (
                planned,
                format!(
                    "On the Ballista cluster at {} (before it runs: Ballista's adaptive planner may change joins and partition counts as the job runs)",
                    cluster.address()
                ),
            ),
            true => {
                let job = self.next_job_id();
                let name = job_name(job, &self.current_statement());
                let run = cluster.run(&state, &plan, &keys, &name).await?;
                let handle = run.job.clone();
                let context = JobContext {
                    job,
                    name,
                    sql: self.current_statement(),
                    at: self.current_statement_at(),
                    planned: Some(planned.clone()),
                    slots,
                };
                let batches: Vec<RecordBatch> =
                    self.reported(cluster, run, context).try_collect().await?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let job = handle.and_then(|job| job.id()).ok_or_else(|| {
                    Error::Cluster("the query ran without a Ballista job to report on".into())
                })?;
                (
                    cluster.ran_stages(&job, planned).await?,
                    format!(
                        "Ballista job {job} on the cluster at {}: {rows} rows (its stages and tasks: {}/api/job/{job}/stages)",
                        cluster.address(),
                        cluster.address().http_url()
                    ),
                )
            }
        };
        let advisories = match analyze {
            true => explain::advise(&view, None),
            false => Vec::new(),
        };
        let lines = match kind {
            ExplainKind::Json | ExplainKind::AnalyzeJson => {
                vec![explain::render_json(&view, &advisories)]
            }
            ExplainKind::Dot => vec![explain::render_dot(&view)],
            _ => std::iter::once(first)
                .chain(explain::render_text(&view, &advisories))
                .collect(),
        };
        Ok(super::explain::plan_rows(lines))
    }

    /// `run`'s rows, then, once they all arrived, its Ballista job recorded in the session's
    /// job history (`system.jobs`, `--summary`) from the scheduler's REST API.
    fn reported(
        &self,
        cluster: &Cluster,
        run: ClusterRun,
        context: JobContext,
    ) -> SendableRecordBatchStream {
        let schema = run.stream.schema();
        let record = self.job_recorder();
        let cluster = cluster.clone();
        let job = run.job;
        // The job's progress, told to the session's listeners while it runs; a job left
        // waiting for ever after an executor was lost is cancelled, and `watch` says why.
        let alive = std::sync::Arc::new(());
        let watch = JobWatch::default();
        let stall = match self.setting(keys::CLUSTER_STALL_TIMEOUT).parse::<u64>() {
            Ok(0) | Err(_) => None,
            Ok(seconds) => Some(std::time::Duration::from_secs(seconds)),
        };
        let follower = job.clone().map(|handle| {
            tokio::spawn(crate::cluster::progress::follow(
                cluster.clone(),
                handle,
                context.clone(),
                self.listeners(),
                std::sync::Arc::downgrade(&alive),
                stall,
                watch.clone(),
            ))
        });
        let verdict = watch.clone();
        let stream = run.stream.map(move |batch| {
            batch.map_err(|error| match verdict.verdict() {
                Some(why) => DataFusionError::External(Box::new(Error::Cluster(why))),
                None => error,
            })
        });
        let tail = futures::stream::once(async move {
            let _alive = alive;
            // The job has ended by now; its last events may still be on their way.
            watch.statement_ended();
            if let Some(follower) = follower {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), follower).await;
            }
            let Some(id) = job.and_then(|job| job.id()) else {
                return;
            };
            // The job ran: its rows are here. A scheduler that cannot say more leaves it out of
            // the history rather than failing the query.
            if let Ok(report) = cluster.job_report(&id, context).await {
                record(report);
            }
        })
        .filter_map(|()| async { None });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream.chain(tail)))
    }

    /// The cluster session's keys for the current settings: our mapped settings, except
    /// where the session set the target key itself.
    fn cluster_session_keys(&self) -> Vec<(&'static str, String)> {
        let settings = self.settings();
        cluster_keys(|key| self.setting(key))
            .into_iter()
            .filter(|(target, _)| matches!(settings.source(target), Source::Default))
            .collect()
    }

    /// In cluster mode, a setting without a meaning on the cluster: an error when a statement
    /// sets it, a warning (kept for [`Session::warnings`]) when it comes from startup.
    pub(super) fn check_setting_on_cluster(&self, key: &str, source: &Source) -> Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        if keys::definition(key).is_none() {
            return Ok(());
        }
        let Meaning::Unsupported(why) = meaning(key) else {
            return Ok(());
        };
        let message = format!(
            "'{key}' has no meaning on the cluster at {}: {why} (docs/cluster.md lists what each setting does in cluster mode)",
            cluster.address()
        );
        match source {
            Source::Session { .. } => Err(Error::Cluster(message)),
            _ => {
                self.warn(format!("cluster mode: {message}; it is ignored"));
                Ok(())
            }
        }
    }
}

/// The statement's words as a user would name it.
fn statement_name(command: &Command) -> &'static str {
    match command {
        Command::CacheTable { .. } => "CACHE TABLE",
        Command::UncacheTable { .. } => "UNCACHE TABLE",
        Command::ClearCache => "CLEAR CACHE",
        Command::Table(_) => "this managed-table statement",
        _ => "this statement",
    }
}

/// The name of the session's job `job` in the scheduler: unique (the session finds the job
/// by it), then the statement's text, on one line and not too long.
fn job_name(job: crate::events::JobId, statement: &str) -> String {
    let line: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = match line.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("stagesql job {job} ({}): {line}", &unique[..12])
}
