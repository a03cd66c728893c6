-- The reference texts' pipeline: a filtered join used by three writes. Each write is an
-- action, so each is a job that computes the join again from the files.
-- Run: stagesql --tpch 0.1 -f docs/pipelines/shared_without_cache.sql --summary

CREATE VIEW shared AS
SELECT o_orderkey, o_orderdate, o_orderpriority, l_quantity, l_extendedprice, l_returnflag
FROM orders JOIN lineitem ON o_orderkey = l_orderkey
WHERE o_orderstatus = 'F' AND l_shipmode IN ('AIR', 'MAIL');

-- Job 1: write it as it is.
COPY (SELECT * FROM shared) TO 'pipeline-out/a/' STORED AS PARQUET;

-- Job 2: an aggregate of it.
COPY (SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS revenue
      FROM shared GROUP BY l_returnflag) TO 'pipeline-out/b/' STORED AS PARQUET;

-- Job 3: a filter of it.
COPY (SELECT * FROM shared WHERE l_quantity > 45) TO 'pipeline-out/c/' STORED AS PARQUET;
