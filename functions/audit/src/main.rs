//! audit Lambda: wiring only. The behaviour lives in `lib.rs` and `warden::audit`.

use audit::Audit;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use warden::{aws::Clients, config::Config, invocation::Invocation};

// One thread, the main one (its 8 MiB stack): Security Hub's finding type is 31 KB and deserialising it takes
// deep frames; the audit's concurrency is futures, not threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let policy = warden::aws::policy_source::load(&sdk, &mut config).await?;
    let clients = Clients::new(&sdk);
    let inspector = clients.inspector(&sdk);
    let hub = Config::flag_from_env(audit::SECURITY_HUB_ENV)?.then(|| clients.security_hub(&sdk));
    let audit = &Audit::new(policy, config, clients, inspector, hub)?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        audit.handle(event.payload, &Invocation::from(&event.context)).await
    }))
    .await
}
