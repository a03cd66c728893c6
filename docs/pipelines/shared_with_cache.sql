-- The same pipeline with the shared result cached: one job computes the join, the three
-- writes read its blocks, and the cache is released when the last one is done.
-- Run: stagesql --tpch 0.1 -f docs/pipelines/shared_with_cache.sql --summary

CACHE TABLE shared OPTIONS ('storageLevel' 'MEMORY_AND_DISK') AS
SELECT o_orderkey, o_orderdate, o_orderpriority, l_quantity, l_extendedprice, l_returnflag
FROM orders JOIN lineitem ON o_orderkey = l_orderkey
WHERE o_orderstatus = 'F' AND l_shipmode IN ('AIR', 'MAIL');

COPY (SELECT * FROM shared) TO 'pipeline-out/a/' STORED AS PARQUET;

COPY (SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS revenue
      FROM shared GROUP BY l_returnflag) TO 'pipeline-out/b/' STORED AS PARQUET;

COPY (SELECT * FROM shared WHERE l_quantity > 45) TO 'pipeline-out/c/' STORED AS PARQUET;

-- Unpersist when done: the blocks leave the block store.
UNCACHE TABLE shared;
