//! A seeded generator of random, valid SQL queries over TPC-H and small edge-case tables,
//! for differential testing: every query runs in pipelined mode and in stages mode under
//! several configurations, and the answers must agree (`generated.rs`).
//!
//! The queries cover joins of every type (equi, non-equi, nested, cross), filters, grouping
//! (with grouping sets, ROLLUP, CUBE and HAVING), window functions with every frame kind,
//! set operations (ALL and DISTINCT), correlated and uncorrelated subqueries, DISTINCT and
//! DISTINCT ON, ORDER BY with LIMIT and OFFSET. A query whose answer depends on an order
//! the SQL leaves open is never generated: a LIMIT comes with an ORDER BY of every output
//! column, a window orders distinct rows by every column it outputs, DISTINCT ON orders the
//! rest.
//! Answers are compared as multisets, or in order when the query orders every column.

use std::fmt::Write;

/// A small, fast, seeded random number generator (SplitMix64): the same seed gives the
/// same queries on every machine and in every version of the dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A column's kind, which decides the expressions and literals it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    /// Exact decimals (TPC-H's money and quantities).
    Num,
    Str,
    Date,
}

#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    /// Columns of one key group join meaningfully (`cust`: customer and order keys).
    pub key: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [Col],
    /// Few rows: a non-equi or cross join of two such tables stays small.
    pub small: bool,
}

const fn col(name: &'static str, ty: Ty, key: Option<&'static str>) -> Col {
    Col { name, ty, key }
}

/// The tables queries read: a column subset of TPC-H (SF 0.01) and three edge-case tables
/// ([`SETUP`]).
pub const TABLES: &[Table] = &[
    Table {
        name: "nation",
        small: true,
        cols: &[
            col("n_nationkey", Ty::Int, Some("nation")),
            col("n_regionkey", Ty::Int, Some("region")),
            col("n_name", Ty::Str, None),
        ],
    },
    Table {
        name: "region",
        small: true,
        cols: &[
            col("r_regionkey", Ty::Int, Some("region")),
            col("r_name", Ty::Str, None),
        ],
    },
    Table {
        name: "customer",
        small: false,
        cols: &[
            col("c_custkey", Ty::Int, Some("cust")),
            col("c_nationkey", Ty::Int, Some("nation")),
            col("c_acctbal", Ty::Num, None),
            col("c_mktsegment", Ty::Str, None),
        ],
    },
    Table {
        name: "orders",
        small: false,
        cols: &[
            col("o_orderkey", Ty::Int, Some("order")),
            col("o_custkey", Ty::Int, Some("cust")),
            col("o_totalprice", Ty::Num, None),
            col("o_orderdate", Ty::Date, None),
            col("o_orderpriority", Ty::Str, None),
            col("o_shippriority", Ty::Int, None),
        ],
    },
    Table {
        name: "lineitem",
        small: false,
        cols: &[
            col("l_orderkey", Ty::Int, Some("order")),
            col("l_partkey", Ty::Int, Some("part")),
            col("l_suppkey", Ty::Int, Some("supp")),
            col("l_linenumber", Ty::Int, None),
            col("l_quantity", Ty::Num, None),
            col("l_extendedprice", Ty::Num, None),
            col("l_returnflag", Ty::Str, None),
            col("l_shipdate", Ty::Date, None),
        ],
    },
    Table {
        name: "part",
        small: false,
        cols: &[
            col("p_partkey", Ty::Int, Some("part")),
            col("p_size", Ty::Int, None),
            col("p_brand", Ty::Str, None),
            col("p_retailprice", Ty::Num, None),
        ],
    },
    Table {
        name: "supplier",
        small: true,
        cols: &[
            col("s_suppkey", Ty::Int, Some("supp")),
            col("s_nationkey", Ty::Int, Some("nation")),
            col("s_acctbal", Ty::Num, None),
        ],
    },
    Table {
        name: "partsupp",
        small: false,
        cols: &[
            col("ps_partkey", Ty::Int, Some("part")),
            col("ps_suppkey", Ty::Int, Some("supp")),
            col("ps_availqty", Ty::Int, None),
            col("ps_supplycost", Ty::Num, None),
        ],
    },
    Table {
        name: "e_nulls",
        small: true,
        cols: EDGE_COLS,
    },
    Table {
        name: "e_empty",
        small: true,
        cols: EDGE_COLS,
    },
    Table {
        name: "e_skew",
        small: true,
        cols: EDGE_COLS,
    },
];

/// The edge tables' columns: `k` joins the nation keys (0 to 24) and beyond.
const EDGE_COLS: &[Col] = &[
    col("k", Ty::Int, Some("nation")),
    col("v", Ty::Int, None),
    col("s", Ty::Str, None),
    col("d", Ty::Num, None),
];

/// Creates the edge tables: NULLs in every column and duplicate rows (`e_nulls`), no rows
/// (`e_empty`), and one key holding most rows (`e_skew`).
pub const SETUP: &str = "
CREATE TABLE e_nulls (k BIGINT, v BIGINT, s VARCHAR, d DECIMAL(15, 2)) AS VALUES
  (1, 10, 'a', 1.50), (1, 10, 'a', 1.50), (2, NULL, 'b', NULL), (NULL, 3, NULL, 2.25),
  (NULL, NULL, NULL, NULL), (3, 30, 'c', -4.00), (3, 31, 'C', 0.00), (24, 7, '', 7.77),
  (30, 1, 'zz', 99.99), (2, 20, 'b', 3.10), (5, -5, 'e', 5.00), (NULL, 3, 'n', 2.25);
CREATE TABLE e_empty (k BIGINT, v BIGINT, s VARCHAR, d DECIMAL(15, 2)) AS
  SELECT * FROM e_nulls WHERE false;
CREATE TABLE e_skew AS
  SELECT CASE WHEN g % 10 < 8 THEN 1 ELSE g % 25 END AS k, g % 7 AS v,
         CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END AS s,
         CAST(g % 13 AS DECIMAL(15, 2)) AS d
  FROM generate_series(1, 400) AS t(g);
";

/// A generated query and how its answers compare.
#[derive(Debug, Clone)]
pub struct Query {
    pub sql: String,
    /// The query orders every output column: answers compare row by row, in order.
    pub ordered: bool,
}

/// A column in scope: how to name it, and its kind.
#[derive(Debug, Clone)]
struct Scoped {
    expr: String,
    ty: Ty,
    key: Option<&'static str>,
}

/// A FROM clause and the columns it gives.
struct From {
    sql: String,
    cols: Vec<Scoped>,
    small: bool,
}

/// The query of `seed`.
pub fn generate(seed: u64) -> Query {
    let mut g = Gen {
        rng: Rng::new(seed),
        aliases: 0,
    };
    g.query()
}

struct Gen {
    rng: Rng,
    aliases: usize,
}

impl Gen {
    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn query(&mut self) -> Query {
        match self.rng.below(100) {
            0..=14 => self.set_operation(),
            15..=29 => self.window_query(),
            30..=37 => self.distinct_on(),
            _ => self.select_query(),
        }
    }

    /// A base table under a new alias.
    fn table(&mut self, small_only: bool) -> From {
        let candidates: Vec<&Table> = TABLES.iter().filter(|t| t.small || !small_only).collect();
        let table = **self.rng.pick(&candidates);
        let alias = self.alias("t");
        From {
            sql: format!("{} AS {alias}", table.name),
            cols: table
                .cols
                .iter()
                .map(|c| Scoped {
                    expr: format!("{alias}.{}", c.name),
                    ty: c.ty,
                    key: c.key,
                })
                .collect(),
            small: table.small,
        }
    }

    /// A table, a join of two or three, or a derived table.
    fn from(&mut self, depth: usize) -> From {
        match self.rng.below(100) {
            0..=34 => self.table(false),
            35..=84 => {
                let left = self.leaf_relation(depth);
                let joined = self.join(left, depth);
                match self.rng.chance(25) {
                    true => self.join(joined, depth),
                    false => joined,
                }
            }
            _ if depth < 2 => self.derived(depth + 1),
            _ => self.table(false),
        }
    }

    fn leaf_relation(&mut self, depth: usize) -> From {
        match depth < 2 && self.rng.chance(15) {
            true => self.derived(depth + 1),
            false => self.table(false),
        }
    }

    /// A subquery in FROM: a filtered projection or an aggregate.
    fn derived(&mut self, depth: usize) -> From {
        let inner = self.from(depth);
        let alias = self.alias("d");
        let mut items = Vec::new();
        let mut cols = Vec::new();
        let where_clause = self.where_clause(&inner.cols, depth);
        if self.rng.chance(40) {
            // An aggregate: a key and a few aggregates of it.
            let group = self.rng.pick(&inner.cols).clone();
            items.push(format!("{} AS g", group.expr));
            cols.push(Scoped {
                expr: format!("{alias}.g"),
                ty: group.ty,
                key: group.key,
            });
            let aggregates = 1 + self.rng.below(2);
            for i in 0..aggregates {
                let (sql, ty) = self.aggregate(&inner.cols);
                items.push(format!("{sql} AS a{i}"));
                cols.push(Scoped {
                    expr: format!("{alias}.a{i}"),
                    ty,
                    key: None,
                });
            }
            From {
                sql: format!(
                    "(SELECT {} FROM {}{} GROUP BY {}) AS {alias}",
                    items.join(", "),
                    inner.sql,
                    where_clause,
                    group.expr
                ),
                cols,
                small: inner.small,
            }
        } else {
            let count = 2 + self.rng.below(inner.cols.len().clamp(2, 4) - 1);
            for i in 0..count {
                let column = self.rng.pick(&inner.cols).clone();
                items.push(format!("{} AS x{i}", column.expr));
                cols.push(Scoped {
                    expr: format!("{alias}.x{i}"),
                    ty: column.ty,
                    key: column.key,
                });
            }
            From {
                sql: format!(
                    "(SELECT {} FROM {}{}) AS {alias}",
                    items.join(", "),
                    inner.sql,
                    where_clause
                ),
                cols,
                small: inner.small,
            }
        }
    }

    /// `left` joined with another relation: an equi-join on a key group when one is shared,
    /// else (both small) a non-equi or cross join.
    fn join(&mut self, left: From, depth: usize) -> From {
        let right = self.leaf_relation(depth);
        let pairs: Vec<(Scoped, Scoped)> = left
            .cols
            .iter()
            .flat_map(|l| {
                right
                    .cols
                    .iter()
                    .filter(move |r| l.key.is_some() && l.key == r.key)
                    .map(move |r| (l.clone(), r.clone()))
            })
            .collect();
        let small = left.small && right.small;
        let kind = *self.rng.pick(&[
            "JOIN",
            "JOIN",
            "LEFT JOIN",
            "RIGHT JOIN",
            "FULL JOIN",
            "LEFT JOIN",
        ]);
        let condition = if !pairs.is_empty() && (!small || self.rng.chance(70)) {
            let (l, r) = self.rng.pick(&pairs).clone();
            let mut on = format!("{} = {}", l.expr, r.expr);
            if self.rng.chance(25) {
                // An extra condition on the join: a filter the join evaluates.
                let extra = self.predicate(&[l, r], 0);
                let _ = write!(on, " AND {extra}");
            }
            Some(on)
        } else if small {
            // A non-equi join of two small relations.
            let comparable: Vec<(Scoped, Scoped)> = left
                .cols
                .iter()
                .flat_map(|l| {
                    right
                        .cols
                        .iter()
                        .filter(move |r| r.ty == l.ty && l.ty != Ty::Str)
                        .map(move |r| (l.clone(), r.clone()))
                })
                .collect();
            match comparable.is_empty() || self.rng.chance(15) {
                true => None,
                false => {
                    let (l, r) = self.rng.pick(&comparable).clone();
                    let op = *self.rng.pick(&["<", "<=", ">", "<>", ">="]);
                    Some(format!("{} {op} {}", l.expr, r.expr))
                }
            }
        } else {
            // Nothing to join on and too big to cross: join a small table instead.
            let right = self.table(true);
            let mut cols = left.cols;
            cols.extend(right.cols.iter().cloned());
            let first_int_left = cols.iter().find(|c| c.ty == Ty::Int).cloned();
            let first_int_right = right.cols.iter().find(|c| c.ty == Ty::Int).cloned();
            let on = match (first_int_left, first_int_right) {
                (Some(l), Some(r)) => format!("{} = {}", l.expr, r.expr),
                _ => "true".to_string(),
            };
            return From {
                sql: format!("{} LEFT JOIN {} ON {on}", left.sql, right.sql),
                cols,
                small: false,
            };
        };
        let sql = match condition {
            Some(on) => format!("{} {kind} {} ON {on}", left.sql, right.sql),
            None => format!("{} CROSS JOIN {}", left.sql, right.sql),
        };
        let mut cols = left.cols;
        cols.extend(right.cols);
        From { sql, cols, small }
    }

    fn literal(&mut self, ty: Ty) -> String {
        match ty {
            Ty::Int => (self.rng.below(40) as i64 - 5).to_string(),
            Ty::Num => format!("{}.{:02}", self.rng.below(3000), self.rng.below(100)),
            Ty::Str => format!(
                "'{}'",
                self.rng.pick(&[
                    "a",
                    "b",
                    "x",
                    "BUILDING",
                    "MACHINERY",
                    "1-URGENT",
                    "R",
                    "N",
                    "Brand#13",
                    "ALGERIA",
                    ""
                ])
            ),
            Ty::Date => format!(
                "DATE '199{}-{:02}-{:02}'",
                2 + self.rng.below(7),
                1 + self.rng.below(12),
                1 + self.rng.below(28)
            ),
        }
    }

    /// A predicate over `cols`; with `depth` left, subqueries too.
    fn predicate(&mut self, cols: &[Scoped], depth: usize) -> String {
        let column = self.rng.pick(cols).clone();
        match self.rng.below(100) {
            0..=39 => {
                let op = *self.rng.pick(&["=", "<", "<=", ">", ">=", "<>"]);
                format!("{} {op} {}", column.expr, self.literal(column.ty))
            }
            40..=49 => format!(
                "{} IS {}NULL",
                column.expr,
                if self.rng.chance(50) { "NOT " } else { "" }
            ),
            50..=57 => {
                let values: Vec<String> = (0..1 + self.rng.below(4))
                    .map(|_| self.literal(column.ty))
                    .collect();
                format!(
                    "{} {}IN ({})",
                    column.expr,
                    if self.rng.chance(30) { "NOT " } else { "" },
                    values.join(", ")
                )
            }
            58..=63 if column.ty != Ty::Str => {
                let (a, b) = (self.literal(column.ty), self.literal(column.ty));
                format!("{} BETWEEN {a} AND {b}", column.expr)
            }
            64..=69 if column.ty == Ty::Str => {
                let pattern = *self.rng.pick(&["%a%", "B%", "%1%", "_", "%"]);
                format!("{} LIKE '{pattern}'", column.expr)
            }
            70..=79 => {
                let (a, b) = (self.predicate(cols, 0), self.predicate(cols, 0));
                let op = *self.rng.pick(&["AND", "OR"]);
                format!("({a} {op} {b})")
            }
            80..=94 if depth < 2 => self.subquery_predicate(&column, depth),
            _ => format!("{} IS NOT NULL", column.expr),
        }
    }

    /// EXISTS / IN / a scalar subquery, correlated on a key when the column has one.
    fn subquery_predicate(&mut self, column: &Scoped, depth: usize) -> String {
        let inner = self.table(false);
        let same_key: Vec<Scoped> = inner
            .cols
            .iter()
            .filter(|c| column.key.is_some() && c.key == column.key)
            .cloned()
            .collect();
        let same_type: Vec<Scoped> = inner
            .cols
            .iter()
            .filter(|c| c.ty == column.ty)
            .cloned()
            .collect();
        let filter = match self.rng.chance(50) {
            true => format!(" AND {}", self.predicate(&inner.cols, depth + 1)),
            false => String::new(),
        };
        match self.rng.below(4) {
            0 if !same_key.is_empty() => {
                let key = self.rng.pick(&same_key).clone();
                format!(
                    "{}EXISTS (SELECT 1 FROM {} WHERE {} = {}{filter})",
                    if self.rng.chance(30) { "NOT " } else { "" },
                    inner.sql,
                    key.expr,
                    column.expr
                )
            }
            1 if !same_key.is_empty() => {
                // A correlated scalar subquery: an aggregate of the matching rows.
                let key = self.rng.pick(&same_key).clone();
                let counted = self.rng.pick(&inner.cols).clone();
                let op = *self.rng.pick(&["<", ">=", "="]);
                format!(
                    "(SELECT count({}) FROM {} WHERE {} = {}{filter}) {op} {}",
                    counted.expr,
                    inner.sql,
                    key.expr,
                    column.expr,
                    self.rng.below(4)
                )
            }
            2 if !same_type.is_empty() && column.ty != Ty::Str => {
                // An uncorrelated scalar subquery.
                let other = self.rng.pick(&same_type).clone();
                let aggregate = *self.rng.pick(&["max", "min"]);
                let op = *self.rng.pick(&["<", ">=", "<>"]);
                format!(
                    "{} {op} (SELECT {aggregate}({}) FROM {} WHERE true{filter})",
                    column.expr, other.expr, inner.sql
                )
            }
            _ if !same_type.is_empty() => {
                let other = self.rng.pick(&same_type).clone();
                format!(
                    "{} {}IN (SELECT {} FROM {} WHERE true{filter})",
                    column.expr,
                    if self.rng.chance(30) { "NOT " } else { "" },
                    other.expr,
                    inner.sql
                )
            }
            _ => format!("{} IS NULL", column.expr),
        }
    }

    fn where_clause(&mut self, cols: &[Scoped], depth: usize) -> String {
        match self.rng.chance(60) {
            true => format!(" WHERE {}", self.predicate(cols, depth)),
            false => String::new(),
        }
    }

    /// An aggregate over `cols` and its result kind. Averages are of exact numbers, and
    /// rounded: a float's last digits depend on the order rows are added in.
    fn aggregate(&mut self, cols: &[Scoped]) -> (String, Ty) {
        let column = self.rng.pick(cols).clone();
        match self.rng.below(8) {
            0 => ("count(*)".into(), Ty::Int),
            1 => (format!("count({})", column.expr), Ty::Int),
            2 => (format!("count(DISTINCT {})", column.expr), Ty::Int),
            3 => (format!("min({})", column.expr), column.ty),
            4 => (format!("max({})", column.expr), column.ty),
            5 | 6 if matches!(column.ty, Ty::Int | Ty::Num) => {
                (format!("sum({})", column.expr), column.ty)
            }
            7 if matches!(column.ty, Ty::Int | Ty::Num) => (
                format!("CAST(avg({}) AS DECIMAL(20, 4))", column.expr),
                Ty::Num,
            ),
            _ => ("count(*)".into(), Ty::Int),
        }
    }

    /// SELECT [DISTINCT] … FROM … [WHERE] [GROUP BY … [HAVING]] [ORDER BY all [LIMIT]].
    fn select_query(&mut self) -> Query {
        let from = self.from(0);
        let where_clause = self.where_clause(&from.cols, 0);
        let mut items: Vec<String> = Vec::new();
        let mut group_by = String::new();
        if self.rng.chance(45) {
            let keys: Vec<Scoped> = (0..1 + self.rng.below(2))
                .map(|_| self.rng.pick(&from.cols).clone())
                .collect();
            for (i, key) in keys.iter().enumerate() {
                items.push(format!("{} AS k{i}", key.expr));
            }
            for i in 0..1 + self.rng.below(3) {
                let (sql, _) = self.aggregate(&from.cols);
                items.push(format!("{sql} AS a{i}"));
            }
            let exprs: Vec<&str> = keys.iter().map(|k| k.expr.as_str()).collect();
            group_by = match (keys.len(), self.rng.below(10)) {
                (2, 0) => format!(" GROUP BY ROLLUP ({})", exprs.join(", ")),
                (2, 1) => format!(" GROUP BY CUBE ({})", exprs.join(", ")),
                (2, 2) => format!(
                    " GROUP BY GROUPING SETS (({}), ({}), ())",
                    exprs[0], exprs[1]
                ),
                _ => format!(" GROUP BY {}", exprs.join(", ")),
            };
            if self.rng.chance(30) {
                let op = *self.rng.pick(&[">", "<=", "<>"]);
                let _ = write!(group_by, " HAVING count(*) {op} {}", self.rng.below(3));
            }
        } else {
            for i in 0..1 + self.rng.below(4) {
                let column = self.rng.pick(&from.cols).clone();
                let item = match (column.ty, self.rng.below(6)) {
                    (Ty::Int | Ty::Num, 0) => {
                        format!("{} + {}", column.expr, self.literal(column.ty))
                    }
                    (Ty::Str, 0) => format!("upper({})", column.expr),
                    (_, 1) => format!("coalesce({}, {})", column.expr, self.literal(column.ty)),
                    (Ty::Int, 2) => format!(
                        "CASE WHEN {} > {} THEN 'hi' ELSE 'lo' END",
                        column.expr,
                        self.literal(Ty::Int)
                    ),
                    _ => column.expr.clone(),
                };
                items.push(format!("{item} AS c{i}"));
            }
        }
        let distinct = if group_by.is_empty() && self.rng.chance(15) {
            "DISTINCT "
        } else {
            ""
        };
        let mut sql = format!(
            "SELECT {distinct}{} FROM {}{where_clause}{group_by}",
            items.join(", "),
            from.sql
        );
        let ordered = self.rng.chance(35);
        if ordered {
            self.order_all(&mut sql, items.len());
            if self.rng.chance(60) {
                let _ = write!(sql, " LIMIT {}", 1 + self.rng.below(20));
                if self.rng.chance(40) {
                    let _ = write!(sql, " OFFSET {}", self.rng.below(5));
                }
            }
        }
        Query { sql, ordered }
    }

    /// ` ORDER BY 1 …, n`, every output column, each direction and NULL placement at random.
    fn order_all(&mut self, sql: &mut String, columns: usize) {
        let keys: Vec<String> = (1..=columns)
            .map(|i| {
                format!(
                    "{i} {} NULLS {}",
                    self.rng.pick(&["ASC", "DESC"]),
                    self.rng.pick(&["FIRST", "LAST"])
                )
            })
            .collect();
        let _ = write!(sql, " ORDER BY {}", keys.join(", "));
    }

    /// Window functions over a projection, ordered by every column they output.
    fn window_query(&mut self) -> Query {
        let from = self.from(1);
        let where_clause = self.where_clause(&from.cols, 1);
        let count = 2 + self.rng.below(2);
        let picked: Vec<Scoped> = (0..count)
            .map(|_| self.rng.pick(&from.cols).clone())
            .collect();
        let inner_items: Vec<String> = picked
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} AS x{i}", c.expr))
            .collect();
        let names: Vec<String> = (0..count).map(|i| format!("x{i}")).collect();
        let mut items = names.clone();
        for w in 0..1 + self.rng.below(3) {
            let partition = match self.rng.chance(70) {
                true => format!("PARTITION BY {} ", self.rng.pick(&names)),
                false => String::new(),
            };
            // Every column the query outputs, the first at random: a total order of the
            // rows that differ.
            let first = self.rng.below(count);
            let mut order: Vec<String> = vec![format!(
                "{} {}",
                names[first],
                self.rng
                    .pick(&["ASC NULLS FIRST", "DESC NULLS LAST", "ASC NULLS LAST"])
            )];
            order.extend(
                names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != first)
                    .map(|(_, n)| format!("{n} ASC NULLS FIRST")),
            );
            let target = self.rng.below(count);
            let numeric = matches!(picked[target].ty, Ty::Int | Ty::Num);
            let value = &names[target];
            let (function, framed) = match self.rng.below(12) {
                0 => ("row_number()".to_string(), false),
                1 => ("rank()".to_string(), false),
                2 => ("dense_rank()".to_string(), false),
                3 => ("ntile(3)".to_string(), false),
                4 => (format!("lag({value}, 1)"), false),
                5 => (format!("lead({value}, 2)"), false),
                6 => (format!("first_value({value})"), true),
                7 => (format!("last_value({value})"), true),
                8 => (format!("nth_value({value}, 2)"), true),
                9 if numeric => (format!("sum({value})"), true),
                10 => (format!("count({value})"), true),
                _ => (format!("max({value})"), true),
            };
            let frame = match (framed, self.rng.below(7)) {
                (false, _) | (true, 0) => String::new(),
                (true, 1) => " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".into(),
                (true, 2) => format!(
                    " ROWS BETWEEN {} PRECEDING AND {} FOLLOWING",
                    self.rng.below(3),
                    self.rng.below(3)
                ),
                (true, 3) => " ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING".into(),
                (true, 4) => " RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".into(),
                (true, 5) => " RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING".into(),
                _ => format!(
                    " GROUPS BETWEEN {} PRECEDING AND CURRENT ROW",
                    self.rng.below(2)
                ),
            };
            items.push(format!(
                "{function} OVER ({partition}ORDER BY {}{frame}) AS w{w}",
                order.join(", ")
            ));
        }
        // DISTINCT rows: ordered by every column, each row has a place of its own, so two
        // windows of different orders pair their values with the rows in one way only.
        let mut sql = format!(
            "SELECT {} FROM (SELECT DISTINCT {} FROM {}{where_clause}) AS wq",
            items.join(", "),
            inner_items.join(", "),
            from.sql
        );
        let ordered = self.rng.chance(30);
        if ordered {
            self.order_all(&mut sql, items.len());
            if self.rng.chance(50) {
                let _ = write!(sql, " LIMIT {}", 1 + self.rng.below(10));
            }
        }
        Query { sql, ordered }
    }

    /// DISTINCT ON (a) a, b, c … ORDER BY a, b, c: the row kept is the first by the rest.
    fn distinct_on(&mut self) -> Query {
        let from = self.from(1);
        let where_clause = self.where_clause(&from.cols, 1);
        let count = 2 + self.rng.below(2);
        let items: Vec<String> = (0..count)
            .map(|i| format!("{} AS c{i}", self.rng.pick(&from.cols).expr))
            .collect();
        let order: Vec<String> = (1..=count)
            .map(|i| {
                format!(
                    "{i} {}",
                    self.rng.pick(&["ASC NULLS FIRST", "DESC NULLS LAST"])
                )
            })
            .collect();
        Query {
            sql: format!(
                "SELECT DISTINCT ON (c0) {} FROM {}{where_clause} ORDER BY {}",
                items.join(", "),
                from.sql,
                order.join(", ")
            ),
            ordered: true,
        }
    }

    /// Two (or three) SELECTs of an integer and a string, combined.
    fn set_operation(&mut self) -> Query {
        let mut parts = Vec::new();
        for _ in 0..2 + usize::from(self.rng.chance(20)) {
            parts.push(self.int_str_select());
        }
        let mut sql = parts[0].clone();
        for part in &parts[1..] {
            let op = *self.rng.pick(&[
                "UNION ALL",
                "UNION",
                "INTERSECT",
                "EXCEPT",
                "INTERSECT ALL",
                "EXCEPT ALL",
                "UNION ALL",
            ]);
            sql = format!("{sql} {op} {part}");
        }
        let ordered = self.rng.chance(30);
        if ordered {
            sql = format!("SELECT * FROM ({sql}) AS so");
            self.order_all(&mut sql, 2);
            if self.rng.chance(50) {
                let _ = write!(sql, " LIMIT {}", 1 + self.rng.below(10));
            }
        }
        Query { sql, ordered }
    }

    /// `SELECT <int> AS i, <string> AS s FROM …`, plain or aggregated.
    fn int_str_select(&mut self) -> String {
        let from = self.from(1);
        let where_clause = self.where_clause(&from.cols, 1);
        let ints: Vec<Scoped> = from
            .cols
            .iter()
            .filter(|c| c.ty == Ty::Int)
            .cloned()
            .collect();
        let strs: Vec<Scoped> = from
            .cols
            .iter()
            .filter(|c| c.ty == Ty::Str)
            .cloned()
            .collect();
        let s = match strs.is_empty() {
            true => "CAST(NULL AS VARCHAR)".to_string(),
            false => self.rng.pick(&strs).expr.clone(),
        };
        match (ints.is_empty(), self.rng.chance(40)) {
            (false, false) => format!(
                "(SELECT CAST({} AS BIGINT) AS i, {s} AS s FROM {}{where_clause})",
                self.rng.pick(&ints).expr,
                from.sql
            ),
            _ => format!(
                "(SELECT count(*) AS i, {s} AS s FROM {}{where_clause} GROUP BY {s})",
                from.sql
            ),
        }
    }
}

/// A cell as answers compare it: numbers with a fraction are compared to nine significant
/// digits, so that a float summed in another order is the same answer.
pub fn normalize(cell: &str) -> String {
    match cell.contains(['.', 'e', 'E']) {
        true => cell
            .parse::<f64>()
            .map_or_else(|_| cell.to_string(), |value| format!("{value:.9e}")),
        false => cell.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_query() {
        for seed in 0..50 {
            assert_eq!(generate(seed).sql, generate(seed).sql);
        }
        assert_ne!(generate(1).sql, generate(2).sql);
    }

    #[test]
    fn floats_compare_to_nine_digits() {
        assert_eq!(normalize("0.30000000000000004"), normalize("0.3"));
        assert_eq!(normalize("-1.5"), normalize("-1.50"));
        assert_eq!(normalize("1995-01-02"), "1995-01-02");
        assert_eq!(normalize("abc"), "abc");
    }
}
