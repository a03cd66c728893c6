//! `spark.master` (and `--master`): where a session's jobs run.
//!
//! `local`, `local[N]` and `local[*]` run them in this process on N slots (all cores for `*`),
//! as Spark's local master does. `df://host:port` runs them on an Apache DataFusion Ballista
//! cluster whose scheduler listens there (docs/cluster.md).

use std::fmt;

use crate::error::{Error, Result};

/// The port a Ballista scheduler listens on unless told otherwise.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// A parsed `spark.master`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// In this process on this many slots; `None` is `local[*]` (all cores).
    Local { slots: Option<usize> },
    /// On the Ballista cluster whose scheduler listens at `host:port`.
    Cluster(SchedulerAddress),
}

/// Where a Ballista scheduler listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerAddress {
    pub host: String,
    pub port: u16,
}

impl SchedulerAddress {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn authority(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    /// The scheduler's gRPC and REST endpoint.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.authority())
    }
}

impl fmt::Display for SchedulerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "df://{}", self.authority())
    }
}

impl fmt::Display for Master {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Master::Local { slots: None } => write!(f, "local[*]"),
            Master::Local { slots: Some(n) } => write!(f, "local[{n}]"),
            Master::Cluster(address) => address.fmt(f),
        }
    }
}

impl Master {
    /// Parses `local`, `local[N]`, `local[*]` or `df://host[:port]`.
    pub fn parse(text: &str) -> Result<Master> {
        let text = text.trim();
        let expected = || {
            Error::Config(format!(
                "invalid master '{text}': expected local, local[N] (N ≥ 1), local[*] or df://host:port (a Ballista scheduler)"
            ))
        };
        if text == "local" {
            return Ok(Master::Local { slots: None });
        }
        if let Some(inner) = text
            .strip_prefix("local[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return match inner.trim() {
                "*" => Ok(Master::Local { slots: None }),
                n => match n.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Master::Local { slots: Some(n) }),
                    _ => Err(expected()),
                },
            };
        }
        let Some(rest) = text.strip_prefix("df://") else {
            return Err(expected());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = split_host_port(rest).ok_or_else(expected)?;
        let port = match port {
            None => DEFAULT_SCHEDULER_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(Error::Config(format!(
                        "invalid master '{text}': port '{port}' is not a port number (1-65535)"
                    )));
                }
            },
        };
        Ok(Master::Cluster(SchedulerAddress {
            host: host.to_string(),
            port,
        }))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; `None` when the host is empty or malformed.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            match after {
                "" => (host, None),
                after => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    valid.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_parse_as_spark_and_ballista_write_them() {
        assert_eq!(
            Master::parse("local[*]").unwrap(),
            Master::Local { slots: None }
        );
        assert_eq!(
            Master::parse(" local[3] ").unwrap(),
            Master::Local { slots: Some(3) }
        );
        assert_eq!(
            Master::parse("df://10.0.0.5").unwrap().to_string(),
            "df://10.0.0.5:50050"
        );
        assert_eq!(
            Master::parse("df://[::1]:7000/").unwrap().to_string(),
            "df://[::1]:7000"
        );
        for bad in [
            "local[0]",
            "local[x]",
            "yarn",
            "df://",
            "df://host:0",
            "df://host:99999",
            "df://a b",
        ] {
            let message = Master::parse(bad).unwrap_err().to_string();
            assert!(message.contains(bad.trim()), "{bad}: {message}");
        }
    }
}
