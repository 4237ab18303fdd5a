//! tag-guard Lambda: wiring only. The behaviour lives in `lib.rs` and `warden::tags`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use tag_guard::TagGuard;
use warden::aws::Clients;
use warden::config::Config;
use warden::invocation::Invocation;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let policy = warden::aws::policy_source::load(&sdk, &mut config).await?;
    let guard = TagGuard::new(policy, config, Clients::new(&sdk))?;
    let guard = &guard;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        guard.handle(event.payload, &Invocation::from(&event.context)).await
    }))
    .await
}
