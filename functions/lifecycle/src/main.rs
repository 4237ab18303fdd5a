//! lifecycle Lambda: wiring only. The behaviour lives in `lib.rs` and `warden::lifecycle`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use lifecycle::Lifecycle;
use serde_json::Value;
use warden::{aws::Clients, config::Config, invocation::Invocation};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let policy = warden::aws::policy_source::load(&sdk, &mut config).await?;
    let clients = Clients::new(&sdk);
    let inspector = clients.inspector(&sdk);
    let lifecycle = &Lifecycle::new(policy, config, clients, inspector)?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        lifecycle.handle(event.payload, &Invocation::from(&event.context)).await
    }))
    .await
}
