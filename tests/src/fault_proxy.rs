//! A fault-injecting HTTP proxy in front of the local stack: the functions' SDK clients talk to it, it talks to
//! moto, and on the requests a [`FaultPlan`] picks it answers with what AWS answers under pressure instead:
//! throttling, 5xx, or a response lost after the request took effect. Decisions come from a seeded generator
//! in request order, so a run is reproducible.
//!
//! It also plays the Lambda sandbox dying: a kill ([`Fault::KillBefore`], [`Fault::KillAfter`]) answers nothing
//! and signals [`FaultProxy::killed`], on which the test drops the invocation, as Lambda does a killed or timed
//! out sandbox. And it can make requests meet: [`FaultPlan::gather`] holds the answers of matching requests
//! until several have been applied, so two invocations read the same state before either acts.
//!
//! One request per connection (the proxy answers `Connection: close`), plain HTTP/1.1 with `Content-Length`
//! bodies: exactly what the AWS SDK sends to a local `http://` endpoint.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does instead of (or after) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The service's throttling error: ECR `ThrottlingException`, DynamoDB
    /// `ProvisionedThroughputExceededException`, SNS `Throttling`, Inspector `ThrottlingException` (HTTP 429).
    Throttle,
    /// HTTP 500 with the service's internal error (`ServerException`, `InternalServerError`, `InternalError`,
    /// `InternalServerException`).
    ServerError,
    /// HTTP 503 `ServiceUnavailable` with no modeled error.
    Unavailable,
    /// Forwarded (moto applies it) but the client gets a 503: the write happened, the caller does not know.
    ResponseLost,
    /// The invocation dies before the request leaves it: not forwarded, no answer, [`FaultProxy::killed`] fires.
    KillBefore,
    /// The invocation dies after the request took effect, before its answer: forwarded, no answer, killed.
    KillAfter,
    /// HTTP 403 `AccessDenied` (a role or policy refuses the caller).
    Denied,
}

/// When a rule fires among the requests it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Each matching request with this probability (the plan's seeded generator decides).
    Probability(f64),
    /// The first `n` matching requests.
    First(u32),
    /// The `n`-th matching request only (1-based).
    Nth(u32),
    /// Every matching request: retries are exhausted every time.
    Always,
}

#[derive(Debug, Clone)]
struct Rule {
    service: String,
    operation: Option<String>,
    /// Only requests whose body contains this (an account id in a role ARN, say).
    body_contains: Option<String>,
    fault: Fault,
    trigger: Trigger,
    matched: u32,
}

/// Requests whose answers wait for each other (see [`FaultPlan::gather`]).
#[derive(Debug, Clone)]
struct Gather {
    service: String,
    operation: String,
    count: usize,
    wait: std::time::Duration,
}

/// Which requests fail and how. Rules are tried in order; the first that fires decides.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    gathers: Vec<Gather>,
    rng: u64,
}

impl FaultPlan {
    /// An empty plan (a transparent proxy) whose probabilities draw from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rules: Vec::new(), gathers: Vec::new(), rng: seed ^ 0x9e37_79b9_7f4a_7c15 }
    }

    /// Kills the invocation at its `n`-th request, whatever it is (`fault`: [`Fault::KillBefore`] or
    /// [`Fault::KillAfter`]); before every other rule.
    #[must_use]
    pub fn kill_at(mut self, n: u32, fault: Fault) -> Self {
        let rule = Rule {
            service: "*".into(),
            operation: None,
            body_contains: None,
            fault,
            trigger: Trigger::Nth(n),
            matched: 0,
        };
        self.rules.insert(0, rule);
        self
    }

    /// Holds the answer of each `service` `operation` request (after moto applied it) until `count` of them
    /// have been applied, or `wait` has passed: invocations running at once read the same state before any of
    /// them acts on it, the interleaving races are made of.
    #[must_use]
    pub fn gather(mut self, service: &str, operation: &str, count: usize, wait: std::time::Duration) -> Self {
        self.gathers.push(Gather { service: service.to_owned(), operation: operation.to_owned(), count, wait });
        self
    }

    /// Adds a rule: `service` is the SigV4 signing name (`ecr`, `dynamodb`, `sns`, `inspector2`; `*`: any),
    /// `operation` the API name (`PutImage`, `Publish`, `ListFindings`) or `None` for all.
    #[must_use]
    pub fn fail(mut self, service: &str, operation: Option<&str>, fault: Fault, trigger: Trigger) -> Self {
        self.rules.push(Rule {
            service: service.to_owned(),
            operation: operation.map(str::to_owned),
            body_contains: None,
            fault,
            trigger,
            matched: 0,
        });
        self
    }

    /// [`FaultPlan::fail`] for requests whose body contains `text` only.
    #[must_use]
    pub fn fail_if(self, service: &str, operation: &str, text: &str, fault: Fault, trigger: Trigger) -> Self {
        let mut plan = self.fail(service, Some(operation), fault, trigger);
        if let Some(rule) = plan.rules.last_mut() {
            rule.body_contains = Some(text.to_owned());
        }
        plan
    }

    fn next_random(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn decide(&mut self, service: &str, operation: &str, body: &str) -> Option<Fault> {
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let service_matches = rule.service == "*" || rule.service == service;
            if !service_matches || rule.operation.as_deref().is_some_and(|op| op != operation) {
                continue;
            }
            if rule.body_contains.as_deref().is_some_and(|text| !body.contains(text)) {
                continue;
            }
            self.rules[i].matched += 1;
            let fires = match self.rules[i].trigger {
                Trigger::Always => true,
                Trigger::First(n) => self.rules[i].matched <= n,
                Trigger::Nth(n) => self.rules[i].matched == n,
                Trigger::Probability(p) => self.next_random() < p,
            };
            if fires {
                return Some(self.rules[i].fault);
            }
        }
        None
    }
}

/// What went through the proxy: requests and injected faults per `service.Operation`.
#[derive(Debug, Clone, Default)]
pub struct ProxyStats {
    pub requests: BTreeMap<String, u32>,
    pub faults: BTreeMap<(String, Fault), u32>,
    /// Since the plan was last set: SNS publishes that reached the topic, and notification claims marked
    /// `sent` in the ledger. An invocation that dies with more of the first than of the second published a
    /// message its retry sends again (SNS cannot tell a repeated publish from a new one).
    pub publishes_applied: u32,
    pub marks_applied: u32,
}

impl ProxyStats {
    pub fn total_faults(&self) -> u32 {
        self.faults.values().sum()
    }

    /// Faults injected into one `service.Operation` (e.g. `sns.Publish`).
    pub fn faults_of(&self, operation: &str) -> u32 {
        self.faults.iter().filter(|((op, _), _)| op == operation).map(|(_, n)| n).sum()
    }

    /// Messages published but not marked sent since the plan was set (see [`ProxyStats::publishes_applied`]).
    pub fn unmarked_publishes(&self) -> u32 {
        self.publishes_applied.saturating_sub(self.marks_applied)
    }
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    stats: ProxyStats,
    /// Requests applied so far per gathered `service.Operation`.
    gathered: BTreeMap<String, usize>,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
    killed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// What a connection needs of its proxy.
#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    killed: Arc<tokio::sync::Notify>,
    gathered: Arc<tokio::sync::Notify>,
    upstream: String,
    routes: Arc<BTreeMap<String, String>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> Self {
        Self::start_routed(upstream, &[], plan).await
    }

    /// [`FaultProxy::start`], with the requests of some services (by SigV4 signing name) going to another
    /// upstream: `inspector2` to the stack's Inspector stand-in, say.
    pub async fn start_routed(upstream: &str, routes: &[(&str, &str)], plan: FaultPlan) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let authority = |url: &str| url.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let upstream = authority(upstream);
        let routes: Arc<BTreeMap<String, String>> =
            Arc::new(routes.iter().map(|(service, url)| ((*service).to_owned(), authority(url))).collect());
        let state = Arc::new(Mutex::new(State { plan, stats: ProxyStats::default(), gathered: BTreeMap::new() }));
        let shared = Shared {
            state: Arc::clone(&state),
            killed: Arc::new(tokio::sync::Notify::new()),
            gathered: Arc::new(tokio::sync::Notify::new()),
            upstream,
            routes,
        };
        let killed = Arc::clone(&shared.killed);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(client, &shared).await;
                });
            }
        });
        Self { endpoint, state, killed, task }
    }

    /// Fires when a kill fault hits a request: the invocation that sent it must be dropped (it never gets an
    /// answer). One notification per kill.
    pub fn killed(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.killed)
    }

    /// In front of the moto server the tests use (`WARDEN_TEST_ENDPOINT`).
    pub async fn in_front_of_moto(plan: FaultPlan) -> Self {
        Self::start(&std::env::var("WARDEN_TEST_ENDPOINT").expect("WARDEN_TEST_ENDPOINT"), plan).await
    }

    /// In front of a stack: moto, with Amazon Inspector's requests going to the stack's stand-in.
    pub async fn in_front_of(stack: &crate::Stack, plan: FaultPlan) -> Self {
        let moto = std::env::var("WARDEN_TEST_ENDPOINT").expect("WARDEN_TEST_ENDPOINT");
        Self::start_routed(&moto, &[("inspector2", stack.inspector.endpoint())], plan).await
    }

    /// The URL to give the SDK instead of moto's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn stats(&self) -> ProxyStats {
        self.state.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }

    /// Replaces the plan (e.g. to heal the stack: `FaultPlan::new(0)`).
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut state) = self.state.lock() {
            state.plan = plan;
            state.gathered.clear();
            state.stats.publishes_applied = 0;
            state.stats.marks_applied = 0;
        }
    }
}

/// A request's head and body as read off the wire.
pub(crate) struct Request {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The SigV4 signing name (`ecr`, `dynamodb`, `sns`, `inspector2`, `sqs`) and the operation.
    pub(crate) fn operation(&self) -> (String, String) {
        let service = self
            .header("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(3))
            .unwrap_or("unknown")
            .to_owned();
        let operation = if let Some(target) = self.header("x-amz-target") {
            target.rsplit('.').next().unwrap_or(target).to_owned()
        } else if let Some(action) = String::from_utf8_lossy(&self.body)
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action=").map(str::to_owned))
        {
            action
        } else {
            let path = self.head.split_whitespace().nth(1).unwrap_or("/");
            match path {
                "/findings/list" => "ListFindings".to_owned(),
                "/coverage/list" => "ListCoverage".to_owned(),
                other => other.to_owned(),
            }
        };
        (service, operation)
    }
}

pub(crate) async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request { head, body }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The head with `Connection: close` instead of whatever it said.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head.trim_end_matches("\r\n").split("\r\n").collect();
    lines.retain(|line| !line.to_ascii_lowercase().starts_with("connection:"));
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else { return Ok(()) };
    let (service, operation) = request.operation();
    let upstream = shared.routes.get(&service).map_or(shared.upstream.as_str(), String::as_str);
    let key = format!("{service}.{operation}");
    let (fault, gather) = match shared.state.lock() {
        Ok(mut state) => {
            *state.stats.requests.entry(key.clone()).or_default() += 1;
            let fault = state.plan.decide(&service, &operation, &String::from_utf8_lossy(&request.body));
            if let Some(fault) = fault {
                *state.stats.faults.entry((key.clone(), fault)).or_default() += 1;
            }
            let gather = state.plan.gathers.iter().find(|g| g.service == service && g.operation == operation).cloned();
            (fault, gather)
        }
        Err(_) => (None, None),
    };
    let applied = |state: &Mutex<State>| {
        if let Ok(mut state) = state.lock() {
            if key == "sns.Publish" {
                state.stats.publishes_applied += 1;
            } else if key == "dynamodb.UpdateItem"
                && String::from_utf8_lossy(&request.body).contains("SET #state = :sent")
            {
                state.stats.marks_applied += 1;
            }
        }
    };
    // Counted as it is forwarded, not once answered: an invocation dropped meanwhile (a timeout) still had it
    // applied.
    if matches!(fault, None | Some(Fault::ResponseLost | Fault::KillAfter)) {
        applied(&shared.state);
    }
    let response = match fault {
        Some(Fault::KillBefore | Fault::KillAfter) => {
            if fault == Some(Fault::KillAfter) {
                forward(&request, upstream).await?;
            }
            shared.killed.notify_one();
            // The sandbox is gone: nobody reads an answer. Hold the connection until the client drops it.
            let _ = client.read(&mut [0u8; 1]).await;
            return Ok(());
        }
        Some(Fault::ResponseLost) => {
            forward(&request, upstream).await?;
            fault_response(&service, Fault::Unavailable)
        }
        Some(fault) => fault_response(&service, fault),
        None => {
            let response = forward(&request, upstream).await?;
            if let Some(gather) = gather {
                meet(shared, &key, &gather).await;
            }
            response
        }
    };
    client.write_all(&response).await?;
    client.shutdown().await
}

/// Waits until `gather.count` requests of `key` have been applied (this one included), or `gather.wait`.
async fn meet(shared: &Shared, key: &str, gather: &Gather) {
    let arrived = shared.state.lock().map_or(gather.count, |mut state| {
        let n = state.gathered.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    });
    if arrived >= gather.count {
        shared.gathered.notify_waiters();
        return;
    }
    let deadline = tokio::time::Instant::now() + gather.wait;
    loop {
        let notified = shared.gathered.notified();
        let met = shared.state.lock().is_ok_and(|state| state.gathered.get(key).is_some_and(|n| *n >= gather.count));
        if met || tokio::time::timeout_at(deadline, notified).await.is_err() {
            return;
        }
    }
}

pub(crate) async fn forward(request: &Request, upstream: &str) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(closing(&request.head).as_bytes()).await?;
    server.write_all(&request.body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    // Tell the client not to reuse the connection: the proxy serves one request per connection.
    Ok(match find(&response, b"\r\n\r\n") {
        Some(at) => {
            let mut out = closing(&String::from_utf8_lossy(&response[..at + 4])).into_bytes();
            out.extend_from_slice(&response[at + 4..]);
            out
        }
        None => response,
    })
}

/// The error response the service sends for `fault`, in its protocol.
fn fault_response(service: &str, fault: Fault) -> Vec<u8> {
    let (status, content_type, headers, body) = match (service, fault) {
        (_, Fault::Unavailable | Fault::ResponseLost) => {
            (503, "text/plain", String::new(), "Service Unavailable".to_owned())
        }
        ("sns" | "sts", fault) => {
            let (status, kind, code) = match fault {
                Fault::Throttle => (400, "Sender", "Throttling"),
                Fault::Denied => (403, "Sender", "AccessDenied"),
                _ => (500, "Receiver", "InternalError"),
            };
            let body = format!(
                "<ErrorResponse xmlns=\"http://{service}.amazonaws.com/doc/\"><Error><Type>{kind}</Type>\
                 <Code>{code}</Code><Message>injected by the fault proxy</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>"
            );
            (status, "text/xml", String::new(), body)
        }
        ("inspector2", fault) => {
            let (status, code) = match fault {
                Fault::Throttle => (429, "ThrottlingException"),
                _ => (500, "InternalServerException"),
            };
            let body = r#"{"message":"injected by the fault proxy"}"#.to_owned();
            (status, "application/json", format!("x-amzn-ErrorType: {code}\r\n"), body)
        }
        (service, fault) => {
            let code = match (service, fault) {
                ("dynamodb", Fault::Throttle) => {
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
                }
                ("dynamodb", _) => "com.amazonaws.dynamodb.v20120810#InternalServerError",
                (_, Fault::Throttle) => "ThrottlingException",
                (_, Fault::Denied) => "AccessDeniedException",
                _ => "ServerException",
            };
            let status = match fault {
                Fault::Throttle | Fault::Denied => 400,
                _ => 500,
            };
            let body = format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#);
            (status, "application/x-amz-json-1.1", String::new(), body)
        }
    };
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         x-amzn-RequestId: fault-proxy\r\n{headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An SDK config for the functions' clients behind the proxy: moto's credentials and region, and the SDK's
/// standard retries (3 attempts) with millisecond backoff so tests stay fast.
pub async fn sdk_config_via(proxy: &FaultProxy) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecr::config::Credentials::new("test", "test", None, None, "moto"))
        .retry_config(fast_retries())
        .load()
        .await
}

/// The SDK's standard retry mode (3 attempts, throttling and transient errors) with millisecond backoff.
pub fn fast_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(2))
        .with_max_backoff(std::time::Duration::from_millis(20))
}
