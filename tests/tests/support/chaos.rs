//! Delivery as production has it, at its worst: each delivery of an event to a function runs in a sandbox of
//! its own (its own fault proxy in front of the stack, its own Lambda request id) with the deployed budget of
//! three invocations, and an invocation may die: killed at its n-th AWS request (before the request leaves it,
//! or after it took effect and before the answer), or timed out after a few milliseconds, wherever it is. On
//! top, every request may meet throttling, 5xx and lost answers; and an event may be delivered twice at once.
//!
//! Every decision is drawn from the run's seed and the delivery's name, so a seed replays the same deaths (a
//! timeout's point depends on timing). Deaths strike only the first two invocations of a delivery: the third
//! meets faults, not deaths, so a run tests recovery rather than counting exhausted budgets. Every failed
//! invocation and death is printed; `WARDEN_CHAOS_TRACE=1` also prints every outcome.

use super::{Function, Functions};
use integration_tests::Stack;
use integration_tests::fault_proxy::{Fault, FaultPlan, FaultProxy, Trigger, sdk_config_via};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use warden::outcome::Outcome;

/// The deployed budget: the first invocation and Lambda's two retries.
pub const ATTEMPTS: u32 = 3;

/// How hard a run is on the functions.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    pub seed: u64,
    /// Throttling per request (5xx half as often, 503 a quarter, lost answers of writes half).
    pub fault_rate: f64,
    /// The chance that an invocation (of the first two) dies: killed at a request or timed out.
    pub death_rate: f64,
    /// The chance that an event reaches a function twice at once.
    pub duplicate_rate: f64,
}

/// What a run did, summed over its deliveries.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub deliveries: u32,
    pub duplicated: u32,
    pub invocations: u32,
    pub errors_retried: u32,
    pub killed_before: u32,
    pub killed_after: u32,
    pub timed_out: u32,
    pub faults: u32,
    /// Messages published by an invocation that died before marking them sent: its retry sends them again.
    pub published_twice_by_nature: u32,
    /// Each death: the delivery, the invocation, how, and what went through the proxy (for a failing seed).
    pub deaths_seen: Vec<String>,
    /// Every AWS call each function made, as its outcomes count them (`ECR.PutImage`).
    pub calls: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl Figures {
    pub fn deaths(&self) -> u32 {
        self.killed_before + self.killed_after + self.timed_out
    }
}

/// splitmix64 over the seed and a name: the same draws for the same delivery in every run.
#[derive(Debug)]
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64, name: &str) -> Self {
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        for byte in name.bytes() {
            state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(state)
    }

    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 1..=n.
    pub fn upto(&mut self, n: u32) -> u32 {
        1 + (self.next() * f64::from(n)) as u32 % n
    }
}

/// How an invocation dies.
#[derive(Debug, Clone, Copy)]
enum Death {
    Kill(Fault, u32),
    Timeout(Duration),
}

/// Throttling, 5xx and lost answers on every service the functions call.
pub fn transient_faults(seed: u64, rate: f64) -> FaultPlan {
    let mut plan = FaultPlan::new(seed);
    for service in ["ecr", "dynamodb", "sns", "inspector2"] {
        plan = plan
            .fail(service, None, Fault::Throttle, Trigger::Probability(rate))
            .fail(service, None, Fault::ServerError, Trigger::Probability(rate / 2.0))
            .fail(service, None, Fault::Unavailable, Trigger::Probability(rate / 4.0));
    }
    // Lost answers (the write happened, the caller saw a 503) on every write but SNS Publish: SNS cannot tell
    // a retried publish from a new one (standard topics are at-least-once), so a lost Publish answer is a
    // duplicate message by nature.
    for (service, operation) in [
        ("ecr", "PutImage"),
        ("ecr", "BatchDeleteImage"),
        ("ecr", "PutImageTagMutability"),
        ("ecr", "PutLifecyclePolicy"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "PutItem"),
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "DeleteItem"),
    ] {
        plan = plan.fail(service, Some(operation), Fault::ResponseLost, Trigger::Probability(rate / 2.0));
    }
    plan
}

impl Chaos {
    fn death(&self, draws: &mut Draws) -> Option<Death> {
        if draws.next() >= self.death_rate {
            return None;
        }
        Some(match draws.upto(3) {
            1 => Death::Kill(Fault::KillBefore, draws.upto(12)),
            2 => Death::Kill(Fault::KillAfter, draws.upto(12)),
            _ => Death::Timeout(Duration::from_millis(u64::from(draws.upto(60)))),
        })
    }
}

/// Delivers `event` to `function` the way EventBridge and Lambda do: through `chaos` (`None`: straight to
/// the stack, nothing fails), each copy of a duplicated delivery concurrently with its own budget. Returns the
/// outcome of the first copy. Panics if a delivery exhausts its budget.
pub async fn deliver(
    stack: &Stack,
    policy: &str,
    function: Function,
    (name, event): (&str, &Value),
    chaos: Option<Chaos>,
    figures: &Mutex<Figures>,
) -> Outcome {
    let Some(chaos) = chaos else {
        let functions = Functions::with_policy(stack, &stack.sdk, policy);
        let (outcome, failures) = Box::pin(functions.deliver(function, event, ATTEMPTS)).await;
        assert_eq!(failures, 0, "{name}: nothing fails without chaos");
        let calls = outcome.aws_calls.keys().cloned();
        figures.lock().expect("figures").calls.entry(format!("{function:?}")).or_default().extend(calls);
        return outcome;
    };
    let key = format!("{name}/{function:?}");
    let twice = Draws::new(chaos.seed, &format!("{key}/duplicate")).next() < chaos.duplicate_rate;
    let (one, two) = (format!("{key}/1"), format!("{key}/2"));
    // Boxed: the functions' futures are large, and a test thread's stack is not.
    let first = Box::pin(sandboxed(stack, policy, function, event, chaos, &one, figures));
    if !twice {
        return first.await;
    }
    let second = Box::pin(sandboxed(stack, policy, function, event, chaos, &two, figures));
    figures.lock().expect("figures").duplicated += 1;
    tokio::join!(first, second).0
}

/// One copy of a delivery: up to [`ATTEMPTS`] invocations under one request id, in a sandbox of its own.
async fn sandboxed(
    stack: &Stack,
    policy: &str,
    function: Function,
    event: &Value,
    chaos: Chaos,
    key: &str,
    figures: &Mutex<Figures>,
) -> Outcome {
    let proxy = FaultProxy::in_front_of(stack, FaultPlan::new(0)).await;
    let functions = Functions::with_policy(stack, &sdk_config_via(&proxy).await, policy);
    let invocation = integration_tests::invocation().with_request_id(&integration_tests::unique("request-"));
    figures.lock().expect("figures").deliveries += 1;
    for attempt in 1..=ATTEMPTS {
        let mut draws = Draws::new(chaos.seed, &format!("{key}/{attempt}"));
        let mut plan =
            transient_faults(chaos.seed ^ u64::from(attempt) ^ (draws.next() * 1e9) as u64, chaos.fault_rate);
        let death = if attempt < ATTEMPTS { chaos.death(&mut draws) } else { None };
        if let Some(Death::Kill(fault, n)) = death {
            plan = plan.kill_at(n, fault);
        }
        proxy.set_plan(plan);
        let killed = proxy.killed();
        let killed = killed.notified();
        let limit = match death {
            Some(Death::Timeout(after)) => after,
            _ => Duration::from_secs(120),
        };
        let run = Box::pin(functions.invoke_as(function, event, &invocation));
        let result = tokio::select! {
            result = run => Some(result),
            () = killed => None,
            () = tokio::time::sleep(limit) => None,
        };
        if result.is_none() {
            // A request on the wire when the invocation died still reaches the proxy (and AWS): let it land
            // before counting what was published.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let stats = proxy.stats();
        let busy = {
            let mut figures = figures.lock().expect("figures");
            figures.invocations += 1;
            match result {
                Some(Ok(outcome)) => {
                    if std::env::var_os("WARDEN_CHAOS_TRACE").is_some() {
                        let items: Vec<_> =
                            outcome.items.iter().map(|i| (&i.repository, &i.decision, &i.actions)).collect();
                        eprintln!("{key} invocation {attempt}: {} {:?} {items:?}", outcome.decision, outcome.reasons);
                    }
                    // The proxy's count covers every invocation of this delivery; deaths are counted apart.
                    let deaths = [Fault::KillBefore, Fault::KillAfter];
                    figures.faults +=
                        stats.faults.iter().filter(|((_, f), _)| !deaths.contains(f)).map(|(_, n)| n).sum::<u32>();
                    return outcome;
                }
                Some(Err(error)) => {
                    assert!(error.is_retryable(), "{key}: a non-retryable error under faults: {error}");
                    eprintln!("{key} invocation {attempt} failed, retried: {error}");
                    figures.errors_retried += 1;
                    matches!(error, warden::WardenError::Busy(_))
                }
                None => {
                    match death {
                        Some(Death::Kill(Fault::KillBefore, _)) => figures.killed_before += 1,
                        Some(Death::Kill(_, _)) => figures.killed_after += 1,
                        _ => figures.timed_out += 1,
                    }
                    figures.published_twice_by_nature += stats.unmarked_publishes();
                    eprintln!("{key} invocation {attempt} died: {death:?} after {:?}", stats.requests);
                    figures.deaths_seen.push(format!(
                        "{key} invocation {attempt}: {death:?}, {} published unmarked, requests {:?}",
                        stats.unmarked_publishes(),
                        stats.requests
                    ));
                    false
                }
            }
        };
        if busy {
            // Another delivery holds the lease (or held it and died): Lambda's retry comes a minute later, past it.
            tokio::time::sleep(super::LEASE_LOST_AFTER).await;
        }
    }
    panic!("{key}: still failing after {ATTEMPTS} invocations (the deployed budget)");
}
