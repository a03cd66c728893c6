//! The Ballista scheduler's REST API (`/api/...`, on its gRPC port), read over plain HTTP/1.1.
//!
//! The API answers small JSON documents on loopback or a cluster's network; a request per
//! statement at most, so a connection per request is fine and keeps this free of an HTTP
//! client's dependencies.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::master::SchedulerAddress;
use crate::error::{Error, Result};

/// How long a request may take before the scheduler counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from the scheduler at `address`, as JSON.
pub async fn get_json(address: &SchedulerAddress, path: &str) -> Result<Value> {
    json(address, "GET", path).await
}

/// Cancels job `id` on the scheduler at `address` (`PATCH /api/job/{id}`); the job has then
/// failed there, and its client's stream ends with an error.
pub async fn cancel_job(address: &SchedulerAddress, id: &str) -> Result<()> {
    json(address, "PATCH", &format!("/api/job/{id}"))
        .await
        .map(drop)
}

/// `method path` on the scheduler at `address`, its answer as JSON.
async fn json(address: &SchedulerAddress, method: &str, path: &str) -> Result<Value> {
    let body = tokio::time::timeout(TIMEOUT, request(address, method, path))
        .await
        .map_err(|_| {
            Error::Cluster(format!(
                "the Ballista scheduler at {address} did not answer {method} {path} within {}s",
                TIMEOUT.as_secs()
            ))
        })??;
    serde_json::from_slice(&body).map_err(|e| {
        Error::Cluster(format!(
            "the Ballista scheduler at {address} answered {method} {path} with what is not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })
}

async fn request(address: &SchedulerAddress, method: &str, path: &str) -> Result<Vec<u8>> {
    let unreachable = |e: std::io::Error| {
        Error::Cluster(format!(
            "cannot reach the Ballista scheduler at {address}: {e}"
        ))
    };
    let mut stream = TcpStream::connect((address.host.as_str(), address.port))
        .await
        .map_err(unreachable)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        address.authority()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(unreachable)?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(unreachable)?;
    parse_response(&response).map_err(|problem| {
        Error::Cluster(format!(
            "the Ballista scheduler at {address} answered {method} {path}: {problem}"
        ))
    })
}

/// A stage's id in the API's stage list (a number, or a number in a string).
pub fn stage_id(stage: &Value) -> Option<usize> {
    let id = &stage["stage_id"];
    id.as_u64()
        .map(|id| id as usize)
        .or_else(|| id.as_str().and_then(|id| id.parse().ok()))
}

/// The partition a stage's `index`-th task reads.
pub fn task_partition(task: &Value, index: usize) -> usize {
    task["partition_id"][0]
        .as_u64()
        .map_or(index, |p| p as usize)
}

/// Why a task failed, if it did.
pub fn task_error(task: &Value) -> Option<String> {
    let failed = task["status"].get("Failed")?;
    Some(
        failed["error"]
            .as_str()
            .or_else(|| failed["reason"].as_str())
            .unwrap_or("failed")
            .to_string(),
    )
}

/// The body of an HTTP/1.1 response with status 200, de-chunked.
fn parse_response(response: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("an incomplete HTTP response")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    match chunked {
        false => Ok(body.to_vec()),
        true => dechunk(body),
    }
}

fn dechunk(mut body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a truncated chunked body")?;
        let size = String::from_utf8_lossy(&body[..line_end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("a bad chunk size '{size}'"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("a truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), b"{}");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), b"[1,2]");
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\nno such job";
        assert!(parse_response(missing).unwrap_err().contains("404"));
    }
}
