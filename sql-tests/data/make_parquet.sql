-- Regenerates drivers.parquet (run from sql-tests/data/):
--   stagesql -f make_parquet.sql
COPY (
  SELECT driver, home_city, rating, active, CAST(since AS DATE) AS since
  FROM (VALUES
    ('alice', 'paris',  4.8,  true,  '2019-03-01'),
    ('bob',   'berlin', 4.1,  true,  '2021-06-15'),
    ('carol', 'london', 4.95, false, '2020-01-10'),
    ('dave',  'berlin', 3.7,  true,  '2022-11-30'),
    ('erin',  'paris',  NULL, true,  '2023-02-01'),
    ('grace', 'lyon',   4.5,  false, '2018-07-07')
  ) AS t(driver, home_city, rating, active, since)
  ORDER BY driver
) TO 'drivers.parquet' STORED AS PARQUET;
