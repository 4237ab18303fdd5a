//! scan-gate Lambda: wiring only. The behaviour lives in `lib.rs` and `warden::gate`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use scan_gate::ScanGate;
use serde_json::Value;
use warden::aws::Clients;
use warden::config::Config;
use warden::invocation::Invocation;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let policy = warden::aws::policy_source::load(&sdk, &mut config).await?;
    let clients = Clients::new(&sdk);
    let inspector = clients.inspector(&sdk);
    let gate = ScanGate::new(policy, config, clients, inspector)?;
    let gate = &gate;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        gate.handle(event.payload, &Invocation::from(&event.context)).await
    }))
    .await
}
