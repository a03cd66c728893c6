//! [`BroadcastReadExec`]: the build side of a broadcast join, read from its own stage.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use super::StageId;
use super::shuffle_read::{PartitionSpec, ReadMetrics, read_blocks, store_of};

/// Presents everything the build stage wrote as one partition. The join above collects it
/// once per stage (DataFusion's `CollectLeft` build is shared by all partitions of one plan
/// instance), so every probe task of the stage uses the same hash table:
///
/// ```text
///   build stage tasks ──▶ store[(stage, m, 0)] ──BroadcastReadExec──▶ HashJoinExec(CollectLeft)
///                                                                     ▲ probe task 0 … N-1
/// ```
#[derive(Debug)]
pub struct BroadcastReadExec {
    stage: StageId,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BroadcastReadExec {
    /// A reader of the build stage `stage`, whose rows have `eq_properties` (see
    /// [`super::shuffled`]: all of the build side's rows, from every partition).
    pub fn new(stage: StageId, eq_properties: EquivalenceProperties) -> Self {
        let properties = PlanProperties::new(
            eq_properties,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            stage,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn stage(&self) -> StageId {
        self.stage
    }
}

impl DisplayAs for BroadcastReadExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BroadcastReadExec: stage={}", self.stage)
    }
}

impl ExecutionPlan for BroadcastReadExec {
    fn name(&self) -> &str {
        "BroadcastReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// The same reader with metrics of its own (a retried task runs on a reset copy).
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            stage: self.stage,
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let store = store_of(&context)?;
        let metrics = ReadMetrics::new(&self.metrics, "broadcast", partition);
        let everything = PartitionSpec {
            reduce: 0..1,
            maps: None,
        };
        Ok(read_blocks(
            store,
            self.stage,
            everything,
            self.schema(),
            context.session_config().batch_size(),
            metrics,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
