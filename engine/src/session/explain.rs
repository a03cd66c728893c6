//! EXPLAIN statements: the stage view before running, and EXPLAIN ANALYZE after.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use futures::TryStreamExt;

use super::{Session, StatementOutput};
use crate::error::Result;
use crate::explain::{self, ExplainKind};
use crate::sql::SqlStatement;
use crate::stages::StageGraph;

impl Session {
    /// Runs `EXPLAIN … query`, where the query starts at `query_offset` in the statement.
    /// The query may be a write of a warehouse table (INSERT, CREATE TABLE … AS,
    /// CHECKPOINT): its last stage's tasks write the files.
    pub(crate) async fn explain(
        &self,
        statement: &SqlStatement,
        kind: ExplainKind,
        query_offset: usize,
    ) -> Result<StatementOutput> {
        #[cfg(feature = "cluster")]
        if self.cluster().is_some() {
            return self.explain_on_cluster(statement, kind, query_offset).await;
        }
        if kind == ExplainKind::AnalyzeHtml {
            return self.explain_html(statement, query_offset).await;
        }
        let query = query_statement(statement, query_offset);
        let analyze = matches!(
            kind,
            ExplainKind::Analyze | ExplainKind::AnalyzeJson | ExplainKind::AnalyzeHtml
        );
        if let Some(crate::sql::Command::Table(command)) = crate::sql::Command::parse(&query.text)?
            && let Some(write) = self.prepare_write(&command, &query).await?
        {
            let (graph, report) = match analyze {
                true => match self.run_prepared(&write, true).await?.1 {
                    Some((graph, report)) => (graph, Some(report)),
                    None => {
                        return Err(crate::Error::Internal(
                            "a write forced to stages ran none".into(),
                        ));
                    }
                },
                false => (self.plan_write(&write).await?, None),
            };
            return Ok(plan_rows(self.explained(
                kind,
                &write.plan,
                &graph,
                report.as_ref(),
            )?));
        }
        let plan = self.logical_plan(&query).await?;
        // EXPLAIN runs nothing: a lazy cache not computed yet is shown as what it computes.
        let materialize = match analyze {
            true => super::cache::Materialize::Yes,
            false => super::cache::Materialize::No,
        };
        let plan = self.use_cached_data(plan, materialize).await?;
        if kind == ExplainKind::Codegen {
            return Ok(plan_rows(vec![
                "EXPLAIN CODEGEN does not apply: stagesql runs DataFusion's vectorized operators, there is no whole-stage generated code.".to_string(),
                "EXPLAIN FORMATTED shows every operator of every stage with its details.".to_string(),
            ]));
        }
        let (graph, report) = match analyze {
            true => {
                let ran = self.run_graph_to_end(&plan).await;
                // EXPLAIN ANALYZE of a write writes.
                self.invalidate_caches_after(&plan);
                let (graph, report) = ran?;
                (graph, Some(report))
            }
            false => (self.plan_stages(&plan).await?, None),
        };
        Ok(plan_rows(self.explained(
            kind,
            &plan,
            &graph,
            report.as_ref(),
        )?))
    }

    /// `EXPLAIN ANALYZE FORMAT HTML query`: runs the query as EXPLAIN ANALYZE does while
    /// recording its events, writes the report of its jobs to `stagesql.report.dir`, and
    /// returns the file's path.
    async fn explain_html(
        &self,
        statement: &SqlStatement,
        query_offset: usize,
    ) -> Result<StatementOutput> {
        let recording = super::events::Recording::start(self);
        Box::pin(self.explain(statement, ExplainKind::Analyze, query_offset)).await?;
        let events = recording.stop();
        // The jobs of this statement: those the calling task started (other statements of
        // the session may run jobs meanwhile).
        let sql = self.current_statement();
        let jobs: std::collections::HashSet<usize> = events
            .iter()
            .filter_map(|event| match event {
                crate::eventlog::LogEvent::JobStart {
                    job_id,
                    description,
                    ..
                } if *description == sql => Some(*job_id),
                _ => None,
            })
            .collect();
        let events: Vec<_> = events
            .into_iter()
            .filter(|event| event.job_id().is_none_or(|job| jobs.contains(&job)))
            .collect();
        let first = jobs.iter().min().copied().unwrap_or(0);
        let dir = std::path::PathBuf::from(self.setting(crate::config::keys::REPORT_DIR));
        let path = dir.join(format!("job-{first}.html"));
        let html =
            crate::report::render_events(&format!("EXPLAIN ANALYZE of job {first}"), &events);
        crate::report::write(&path, &html).map_err(|error| {
            crate::Error::Config(format!(
                "cannot write the report ({}): {error}",
                crate::config::keys::REPORT_DIR
            ))
        })?;
        Ok(plan_rows(vec![path.display().to_string()]))
    }

    /// The lines of an EXPLAIN of `plan`, cut into `graph` (and run, with `report`).
    fn explained(
        &self,
        kind: ExplainKind,
        plan: &LogicalPlan,
        graph: &StageGraph,
        report: Option<&crate::scheduler::JobReport>,
    ) -> Result<Vec<String>> {
        if let Some(report) = report {
            let view = explain::describe(graph, report.slots, &self.aqe_settings(), Some(report));
            let mut advisories = explain::advise(&view, self.stage_planning().broadcast_threshold);
            advisories.extend(explain::recompute_advice(
                &self.recomputed_by(report.job),
                true,
            ));
            return Ok(match kind {
                ExplainKind::AnalyzeJson => vec![explain::render_json(&view, &advisories)],
                _ => explain::render_text(&view, &advisories),
            });
        }
        let view = explain::describe(graph, self.slots(), &self.aqe_settings(), None);
        // Stages that would compute again what an earlier job computed.
        let lineage = self.job_lineage(plan, graph);
        let recomputes =
            explain::recompute_advice(&self.lineage.recomputations(&lineage, None), false);
        Ok(match kind {
            ExplainKind::Json => vec![explain::render_json(&view, &recomputes)],
            ExplainKind::Dot => vec![explain::render_dot(&view)],
            ExplainKind::Extended => {
                let mut lines = self.logical_plans(plan)?;
                lines.push("== Stages ==".to_string());
                lines.extend(explain::render_text(&view, &recomputes));
                lines
            }
            ExplainKind::Formatted => {
                formatted(graph, explain::render_text(&view, &recomputes), false)
            }
            ExplainKind::Cost => formatted(graph, explain::render_text(&view, &recomputes), true),
            _ => explain::render_text(&view, &recomputes),
        })
    }

    /// Parses and plans one statement; errors carry their position in the original text.
    pub(crate) async fn logical_plan(&self, statement: &SqlStatement) -> Result<LogicalPlan> {
        self.logical_plan_with(statement, |_| {}).await
    }

    /// [`Session::logical_plan`] with `change` applied to the parsed statement.
    pub(crate) async fn logical_plan_with(
        &self,
        statement: &SqlStatement,
        change: impl FnOnce(&mut datafusion::sql::parser::Statement),
    ) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut parsed = state
            .sql_to_statement(&statement.positioned_text(), &dialect)
            .map_err(super::syntax_error)?;
        if self.schema_named("default").is_none() {
            spark_default_database(&mut parsed);
        }
        change(&mut parsed);
        let plan = state
            .statement_to_plan(parsed)
            .await
            .map_err(super::missing_file)?;
        self.distribute_by_as_shuffle(plan)
    }

    /// `DISTRIBUTE BY e, …` (Spark's, also in DataFusion's plans) as what Spark does with
    /// it: a hash shuffle of the rows on `e, …` into `spark.sql.shuffle.partitions`
    /// partitions, the stage boundary a user asks for.
    fn distribute_by_as_shuffle(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::{Partitioning, Repartition};
        let partitions: usize = self
            .setting(crate::config::keys::SHUFFLE_PARTITIONS)
            .parse()
            .unwrap_or(200)
            .max(1);
        Ok(plan
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::Repartition(Repartition {
                    input,
                    partitioning_scheme: Partitioning::DistributeBy(exprs),
                }) => Ok(Transformed::yes(LogicalPlan::Repartition(Repartition {
                    input,
                    partitioning_scheme: Partitioning::Hash(exprs, partitions),
                }))),
                other => Ok(Transformed::no(other)),
            })?
            .data)
    }

    fn logical_plans(&self, plan: &LogicalPlan) -> Result<Vec<String>> {
        let optimized = self.ctx.state().optimize(plan)?;
        let mut lines = vec!["== Parsed Logical Plan ==".to_string()];
        lines.extend(
            plan.display_indent()
                .to_string()
                .lines()
                .map(str::to_string),
        );
        lines.push("== Optimized Logical Plan ==".to_string());
        lines.extend(
            optimized
                .display_indent()
                .to_string()
                .lines()
                .map(str::to_string),
        );
        Ok(lines)
    }

    /// Runs `plan` as a job and reads its result to the end; returns the stages and report.
    async fn run_graph_to_end(
        &self,
        plan: &LogicalPlan,
    ) -> Result<(StageGraph, crate::scheduler::JobReport)> {
        let (graph, stream, report) = self
            .run_job_with_graph(plan, super::jobs::ResultLimit::Unchecked)
            .await?;
        let _: Vec<RecordBatch> = stream.try_collect().await?;
        Ok((graph, report))
    }
}

/// Spark's names of databases in table names as DataFusion's: `spark_catalog.db.t` is
/// `db.t`, and the default database (`default.t`, `spark_catalog.default.t`) is `public.t`.
fn spark_default_database(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, visit_relations_mut};
    let datafusion::sql::parser::Statement::Statement(statement) = statement else {
        return;
    };
    let _ = visit_relations_mut(statement.as_mut(), |name| {
        let part =
            |name: &datafusion::sql::sqlparser::ast::ObjectName, i: usize| match name.0.get(i) {
                Some(ObjectNamePart::Identifier(ident)) => ident.value.to_ascii_lowercase(),
                _ => String::new(),
            };
        if name.0.len() == 3 && part(name, 0) == "spark_catalog" {
            name.0.remove(0);
        }
        if name.0.len() == 2 && part(name, 0) == "default" {
            name.0[0] = ObjectNamePart::Identifier(Ident::new("public"));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// The query of an EXPLAIN as a statement of its own, positioned where it stands.
pub(crate) fn query_statement(statement: &SqlStatement, offset: usize) -> SqlStatement {
    let prefix = &statement.text[..offset];
    let newlines = prefix.matches('\n').count();
    let column = match prefix.rfind('\n') {
        Some(i) => prefix[i + 1..].chars().count() + 1,
        None => statement.start.column + prefix.chars().count(),
    };
    SqlStatement {
        text: statement.text[offset..].to_string(),
        start: crate::sql::Position {
            line: statement.start.line + newlines,
            column,
        },
        origin: statement.origin.clone(),
    }
}

/// EXPLAIN FORMATTED (and COST): the stages, then each stage's operators numbered in the
/// order data flows through them, with DataFusion's details (and estimates).
fn formatted(graph: &StageGraph, mut lines: Vec<String>, cost: bool) -> Vec<String> {
    let mut number = 0;
    for stage in &graph.stages {
        lines.push(format!("== Stage {} operators ==", stage.id));
        let plan: Arc<dyn ExecutionPlan> = stage.plan.clone();
        let mut operators = Vec::new();
        let _ = plan.apply(|node| {
            operators.push(node.clone());
            Ok(TreeNodeRecursion::Continue)
        });
        for node in operators.iter().rev() {
            number += 1;
            let mut line = format!(
                "({number}) {}",
                displayable(node.as_ref()).one_line().to_string().trim_end()
            );
            if cost {
                line.push_str(&format!("  [{}]", estimate(node)));
            }
            lines.push(line);
        }
    }
    lines
}

fn estimate(node: &Arc<dyn ExecutionPlan>) -> String {
    let args = StatisticsArgs::new();
    match StatisticsContext::default().compute(node.as_ref(), &args) {
        Ok(stats) => {
            let rows = stats
                .num_rows
                .get_value()
                .map_or("?".to_string(), |r| r.to_string());
            let bytes = stats
                .total_byte_size
                .get_value()
                .map_or("?".to_string(), |b| explain::human_bytes(*b as u64));
            format!("rows≈{rows}, size≈{bytes}")
        }
        Err(_) => "no estimate".to_string(),
    }
}

/// One `plan` column, a row per line.
pub(super) fn plan_rows(lines: Vec<String>) -> StatementOutput {
    let schema = Arc::new(Schema::new(vec![Field::new("plan", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])
        .expect("one string column");
    StatementOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter([Ok(batch)]),
    )))
}
