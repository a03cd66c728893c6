//! Reading a warehouse table: the files of its latest committed version, the partitions a
//! filter on partition columns cannot exclude, as one Parquet scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::{TableMeta, Warehouse};

/// Where a scanned file comes from, attached to each file of a warehouse table's scan so
/// EXPLAIN can say which table it reads and how many of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOrigin {
    /// `database.table`.
    pub table: String,
    /// Partitions read and partitions the table has (0 and 0 when it is not partitioned).
    pub partitions_read: usize,
    pub partitions_total: usize,
    /// Whether the table is a CHECKPOINT's files: the plan's lineage starts here.
    pub checkpoint: bool,
}

/// A table of the warehouse, as DataFusion sees it. It holds no files: every scan plans from
/// the latest committed version, so a commit by this or another process is seen by the next
/// query, and a query never sees part of a commit.
#[derive(Debug)]
pub struct WarehouseTable {
    warehouse: Arc<Warehouse>,
    database: String,
    name: String,
    schema: SchemaRef,
    partition_columns: Vec<String>,
}

impl WarehouseTable {
    pub fn new(warehouse: Arc<Warehouse>, meta: &TableMeta) -> crate::Result<Self> {
        Ok(Self {
            warehouse,
            database: meta.database.clone(),
            name: meta.name.clone(),
            schema: meta.schema()?,
            partition_columns: meta.partition_columns.clone(),
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's latest committed version.
    pub fn meta(&self) -> crate::Result<TableMeta> {
        self.warehouse
            .table(&self.database, &self.name)?
            .ok_or_else(|| super::table_not_found(&format!("{}.{}", self.database, self.name)))
    }

    fn partition_fields(&self) -> Vec<FieldRef> {
        self.partition_columns
            .iter()
            .filter_map(|name| self.schema.field_with_name(name).ok())
            .map(|field| Arc::new(field.clone()))
            .collect()
    }
}

/// A partition value from the catalog as a value of its column's type.
pub(crate) fn partition_scalar(
    value: &Option<String>,
    data_type: &DataType,
) -> Result<ScalarValue> {
    match value {
        None => ScalarValue::try_from(data_type),
        Some(text) => ScalarValue::Utf8(Some(text.clone())).cast_to(data_type),
    }
}

#[async_trait]
impl TableProvider for WarehouseTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let names: Vec<&str> = self.partition_columns.iter().map(String::as_str).collect();
        Ok(filters
            .iter()
            .map(
                |filter| match !names.is_empty() && expr_applicable_for_cols(&names, filter) {
                    // Whole partitions are skipped: nothing of what the filter rejects is read.
                    true => TableProviderFilterPushDown::Exact,
                    false => TableProviderFilterPushDown::Inexact,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let meta = self
            .meta()
            .map_err(|e| DataFusionError::Plan(e.message()))?;
        let partition_fields = self.partition_fields();
        let names: Vec<&str> = self.partition_columns.iter().map(String::as_str).collect();
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| !names.is_empty() && expr_applicable_for_cols(&names, f))
            .cloned()
            .collect();
        let keep = PartitionFilter::new(state, &partition_fields, &partition_filters)?;
        let mut chosen = Vec::new();
        for partition in &meta.partitions {
            let values = partition_fields
                .iter()
                .zip(&partition.values)
                .map(|(field, value)| partition_scalar(value, field.data_type()))
                .collect::<Result<Vec<_>>>()?;
            if keep.admits(&values)? {
                chosen.push((partition, values));
            }
        }
        let origin = ScanOrigin {
            table: meta.qualified(),
            partitions_read: if meta.is_partitioned() {
                chosen.len()
            } else {
                0
            },
            partitions_total: if meta.is_partitioned() {
                meta.partitions.len()
            } else {
                0
            },
            checkpoint: meta.kind == super::TableKind::Checkpoint,
        };
        let mut files = Vec::new();
        let mut total_rows = 0;
        for (partition, values) in chosen {
            for file in &partition.files {
                total_rows += file.rows as usize;
                let path = meta.file_path(partition, file);
                // The path as object_store writes it (`%` of an escaped partition value
                // encoded once); handed over as a location, not re-parsed from text.
                let location = object_store::path::Path::from_absolute_path(&path)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                files.push(
                    PartitionedFile::new_from_meta(object_store::ObjectMeta {
                        location,
                        last_modified: Default::default(),
                        size: file.size,
                        e_tag: None,
                        version: None,
                    })
                    .with_partition_values(values.clone())
                    .with_extension(origin.clone()),
                );
            }
        }
        let projected = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => self.schema.clone(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let total_bytes: usize = files.iter().map(|f| f.object_meta.size as usize).sum();
        // Files largest first into the group with the fewest bytes; the stage planner
        // re-splits them as Spark would.
        files.sort_by_key(|file| std::cmp::Reverse(file.object_meta.size));
        let group_count = files.len().min(state.config().target_partitions().max(1));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); group_count];
        for file in files {
            let smallest = groups
                .iter_mut()
                .min_by_key(|(bytes, _)| *bytes)
                .expect("at least one group");
            smallest.0 += file.object_meta.size;
            smallest.1.push(file);
        }
        let file_schema = meta
            .file_schema()
            .map_err(|e| DataFusionError::Plan(e.message()))?;
        let table_schema = TableSchema::builder(file_schema)
            .with_table_partition_cols(partition_fields)
            .build();
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = Precision::Inexact(total_rows);
        statistics.total_byte_size = Precision::Inexact(total_bytes);
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::local_filesystem(),
            format.file_source(table_schema),
        )
        .with_file_groups(
            groups
                .into_iter()
                .map(|(_, files)| FileGroup::new(files))
                .collect(),
        )
        .with_statistics(statistics)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
        format.create_physical_plan(state, config).await
    }
}

/// The filters on partition columns, evaluated against each partition's values.
struct PartitionFilter {
    schema: SchemaRef,
    predicate: Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>,
}

impl PartitionFilter {
    fn new(state: &dyn CatalogSession, fields: &[FieldRef], filters: &[Expr]) -> Result<Self> {
        let schema = Arc::new(Schema::new(fields.to_vec()));
        let predicate = match conjunction(filters.iter().cloned()) {
            None => None,
            Some(filter) => {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                Some(state.create_physical_expr(filter, &df_schema)?)
            }
        };
        Ok(Self { schema, predicate })
    }

    fn admits(&self, values: &[ScalarValue]) -> Result<bool> {
        let Some(predicate) = &self.predicate else {
            return Ok(true);
        };
        let columns = values
            .iter()
            .map(|v| v.to_array())
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let result = predicate.evaluate(&batch)?.into_array(1)?;
        let admitted = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .is_some_and(|b| b.is_valid(0) && b.value(0));
        Ok(admitted)
    }
}
