-- medallion.sql with a deliberate error at gold (a misspelt column, usr_id, at line 43),
-- for the failure-and-resume story of docs/pipelines.md. Everything before it is the same
-- as medallion.sql, line for line.

SET spark.sql.sources.partitionOverwriteMode = dynamic;

CREATE DATABASE IF NOT EXISTS bronze;
CREATE DATABASE IF NOT EXISTS silver;
CREATE DATABASE IF NOT EXISTS gold;

-- Bronze: the run date's events as they arrived (generated here), defects included:
-- 20,000 events arrive twice, some amounts are missing, some kinds are unknown.
CREATE TABLE IF NOT EXISTS bronze.events (
  event_id BIGINT, user_id BIGINT, kind STRING, amount_cents BIGINT, run_date STRING
) USING parquet PARTITIONED BY (run_date);

-- Dynamic overwrite: replaces the partition the query writes (this run date), no other.
INSERT OVERWRITE bronze.events
SELECT id AS event_id,
       id * 7919 % 5000 AS user_id,
       CASE id % 10 WHEN 9 THEN 'unknown' WHEN 0 THEN 'refund' ELSE 'purchase' END AS kind,
       CASE WHEN id % 97 = 0 THEN NULL ELSE 100 + id * 31 % 9900 END AS amount_cents,
       '2024-06-01' AS run_date
FROM (SELECT value % 180000 AS id FROM generate_series(0, 199999));

-- Silver: the run date's events once each, with an amount and a known kind.
CREATE TABLE IF NOT EXISTS silver.events (
  event_id BIGINT, user_id BIGINT, kind STRING, amount_usd DECIMAL(10, 2), run_date STRING
) USING parquet PARTITIONED BY (run_date);

-- A static PARTITION clause: the query gives every column but run_date.
INSERT OVERWRITE silver.events PARTITION (run_date = '2024-06-01')
SELECT DISTINCT event_id, user_id, kind, amount_cents / 100.0
FROM bronze.events
WHERE run_date = '2024-06-01' AND amount_cents IS NOT NULL AND kind IN ('purchase', 'refund');

-- Gold: revenue by kind for the run date, and every customer's spend over all dates.
CREATE TABLE IF NOT EXISTS gold.daily_revenue (
  kind STRING, events BIGINT, customers BIGINT, revenue_usd DECIMAL(18, 2), run_date STRING
) USING parquet PARTITIONED BY (run_date);

INSERT OVERWRITE gold.daily_revenue
SELECT kind, count(*), count(DISTINCT usr_id),
       sum(CASE kind WHEN 'refund' THEN -amount_usd ELSE amount_usd END), run_date
FROM silver.events
WHERE run_date = '2024-06-01'
GROUP BY run_date, kind;

CREATE TABLE IF NOT EXISTS gold.customer_spend (
  user_id BIGINT, purchases BIGINT, spent_usd DECIMAL(18, 2)
) USING parquet;

-- Not partitioned: INSERT OVERWRITE replaces the whole table.
INSERT OVERWRITE gold.customer_spend
SELECT user_id, count(*), sum(amount_usd)
FROM silver.events
WHERE kind = 'purchase'
GROUP BY user_id;

SELECT * FROM gold.daily_revenue ORDER BY kind;
