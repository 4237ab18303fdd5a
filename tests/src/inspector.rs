//! Amazon Inspector for the local stack, as far as moto cannot be: moto 5.2.5 does not implement ListCoverage
//! (Inspector's view of each image: whether it scans it, why not, when it last did, whether it runs), which
//! scan-gate reads before it promotes on enhanced scanning and lifecycle's retention before it deletes. The
//! stand-in answers ListCoverage from the coverage a test (or the demo) records, filtered as Inspector filters
//! (repository name, resource id: the image's ARN); every other request (ListFindings) goes to moto unchanged.
//! The functions' Inspector client points here; production code never knows.

use crate::fault_proxy::{forward, read_request};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Where the recorded coverage lives: in memory (tests) or in a file another process writes (the demo).
#[derive(Debug, Clone)]
pub enum CoverageStore {
    Memory(Arc<Mutex<Vec<Value>>>),
    File(PathBuf),
}

impl CoverageStore {
    fn all(&self) -> Vec<Value> {
        match self {
            Self::Memory(resources) => resources.lock().map(|r| r.clone()).unwrap_or_default(),
            Self::File(path) => {
                std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
            }
        }
    }

    /// Records a covered resource (replacing an earlier record of the same resource).
    pub fn record(&self, resource: Value) {
        let mut all = self.all();
        all.retain(|r| r["resourceId"] != resource["resourceId"]);
        all.push(resource);
        match self {
            Self::Memory(resources) => {
                if let Ok(mut resources) = resources.lock() {
                    *resources = all;
                }
            }
            Self::File(path) => {
                if let Err(e) = std::fs::write(path, Value::Array(all).to_string()) {
                    eprintln!("cannot write {}: {e}", path.display());
                }
            }
        }
    }
}

/// How Inspector covers one image.
#[derive(Debug, Clone)]
pub struct ImageCoverage<'a> {
    pub repository: &'a str,
    pub digest: &'a str,
    pub tags: &'a [&'a str],
    /// `ACTIVE` / `INACTIVE`.
    pub status: &'a str,
    /// `SUCCESSFUL`, `SCAN_ELIGIBILITY_EXPIRED`, `PENDING_INITIAL_SCAN`, ...
    pub reason: &'a str,
    /// Epoch seconds of the last scan.
    pub last_scanned_at: Option<u64>,
    /// How many running workloads use it (`ecrImage.inUseCount`), and when it was last in use.
    pub in_use: Option<(i64, u64)>,
}

impl ImageCoverage<'_> {
    /// The `coveredResources` entry ListCoverage returns for it (account 123456789012, us-east-1).
    pub fn resource(&self) -> Value {
        let mut image = json!({"tags": self.tags});
        if let Some((count, at)) = self.in_use {
            image["inUseCount"] = count.into();
            image["lastInUseAt"] = at.into();
        }
        let mut resource = json!({
            "accountId": crate::ACCOUNT,
            "resourceId": format!("arn:aws:ecr:us-east-1:{}:repository/{}/{}", crate::ACCOUNT, self.repository, self.digest),
            "resourceType": "AWS_ECR_CONTAINER_IMAGE",
            "scanType": "PACKAGE",
            "scanStatus": {"statusCode": self.status, "reason": self.reason},
            "resourceMetadata": {"ecrImage": image}
        });
        if let Some(at) = self.last_scanned_at {
            resource["lastScannedAt"] = at.into();
        }
        resource
    }
}

/// The ListCoverage answer for a request body: the recorded resources its filters select.
pub fn list_coverage(request: &[u8], store: &CoverageStore) -> Value {
    let request: Value = serde_json::from_slice(request).unwrap_or_default();
    let criteria = &request["filterCriteria"];
    let equals = |key: &str, value: &Value| {
        criteria[key].as_array().is_none_or(|filters| filters.iter().any(|f| f["value"] == *value))
    };
    let covered: Vec<Value> = store
        .all()
        .into_iter()
        .filter(|r| {
            let repository = r["resourceId"]
                .as_str()
                .and_then(|id| id.split_once(":repository/"))
                .and_then(|(_, rest)| rest.rsplit_once('/'))
                .map(|(name, _)| Value::from(name))
                .unwrap_or_default();
            equals("ecrRepositoryName", &repository) && equals("resourceId", &r["resourceId"])
        })
        .collect();
    json!({ "coveredResources": covered })
}

/// The stand-in: an HTTP endpoint for the functions' Inspector client.
#[derive(Debug)]
pub struct InspectorStandIn {
    endpoint: String,
    pub store: CoverageStore,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InspectorStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InspectorStandIn {
    /// Starts one on 127.0.0.1 (a free port) in front of moto (`upstream`), answering from `store`.
    pub async fn start(upstream: &str, store: CoverageStore) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the Inspector stand-in");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(serve(listener, upstream.to_owned(), store.clone()));
        Self { endpoint, store, task }
    }

    /// The URL to give the Inspector client.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Records how Inspector covers an image.
    pub fn cover(&self, image: &ImageCoverage<'_>) {
        self.store.record(image.resource());
    }
}

/// Serves connections on `listener` until the task is dropped: ListCoverage from `store`, the rest from moto.
pub async fn serve(listener: TcpListener, upstream: String, store: CoverageStore) {
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
    while let Ok((client, _)) = listener.accept().await {
        let (upstream, store) = (upstream.clone(), store.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(client, &upstream, &store).await {
                eprintln!("inspector stand-in: {e}");
            }
        });
    }
}

async fn answer(mut client: TcpStream, upstream: &str, store: &CoverageStore) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else { return Ok(()) };
    let response = if request.operation().1 == "ListCoverage" {
        let body = list_coverage(&request.body, store).to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             x-amzn-RequestId: inspector-stand-in\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    } else {
        forward(&request, upstream).await?
    };
    client.write_all(&response).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_coverage_filters_like_inspector() {
        let store = CoverageStore::Memory(Arc::default());
        for (repository, digest) in [("prod/a", "sha256:1"), ("prod/a", "sha256:2"), ("prod/b", "sha256:1")] {
            let image = ImageCoverage {
                repository,
                digest,
                tags: &[],
                status: "ACTIVE",
                reason: "SUCCESSFUL",
                last_scanned_at: Some(1),
                in_use: None,
            };
            store.record(image.resource());
        }
        let by_repository =
            json!({"filterCriteria": {"ecrRepositoryName": [{"comparison": "EQUALS", "value": "prod/a"}]}});
        assert_eq!(
            list_coverage(by_repository.to_string().as_bytes(), &store)["coveredResources"].as_array().map(Vec::len),
            Some(2)
        );
        let arn = format!("arn:aws:ecr:us-east-1:{}:repository/prod/a/sha256:2", crate::ACCOUNT);
        let by_arn =
            json!({"filterCriteria": {"ecrRepositoryName": [{"value": "prod/a"}], "resourceId": [{"value": arn}]}});
        let answer = list_coverage(by_arn.to_string().as_bytes(), &store);
        assert_eq!(answer["coveredResources"][0]["resourceId"], arn.as_str());
        assert_eq!(answer["coveredResources"].as_array().map(Vec::len), Some(1));
    }
}
