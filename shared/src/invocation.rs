//! Who a function is and what it may act on: the account and region it serves (from the invoked function's
//! ARN, which Lambda hands every invocation), the invocation's deadline, and the door check every event passes
//! before anything is read or changed.
//!
//! EventBridge rules filter on the account too (infra/template.yaml), but anyone allowed to invoke the function
//! can hand it any payload, and a bus that admits other accounts delivers their genuine events. A function
//! acts on its own registry, so an event about another account's or region's registry is skipped: acting on
//! it would change the same-named repository here.

use crate::event::Event;
pub use crate::reach::{Home, Reach, is_account_id, is_region};
use std::time::{Duration, SystemTime};

/// Local emulators (`cargo lambda watch`) hand the function no ARN (it sends the literal `function-arn`).
/// There, and only there, this variable names the account the function serves; the region is `AWS_REGION`.
pub const LOCAL_ACCOUNT_ENV: &str = "WARDEN_LOCAL_ACCOUNT";

/// What the runtime says about one invocation.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The invoked function's ARN (`Lambda-Runtime-Invoked-Function-Arn`).
    pub function_arn: String,
    /// When the invocation is cut off; `None` when the runtime gives none (local emulators).
    pub deadline: Option<SystemTime>,
    /// Where the function runs when the ARN does not say (local emulators only, [`LOCAL_ACCOUNT_ENV`]).
    pub local_home: Option<Home>,
    /// Lambda's request id: the same for an asynchronous invocation and its retries, another for a duplicate
    /// delivery of the same event. A notification claim held by it is this invocation's own (see `aws::claims`).
    pub request_id: String,
}

impl Invocation {
    /// From the runtime's function ARN and deadline (epoch milliseconds; one in the past, as `cargo lambda
    /// watch` sends, is none), with the local fallback read from the environment.
    pub fn new(function_arn: &str, deadline_ms: u64, now: SystemTime) -> Self {
        let deadline = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)).filter(|d| *d > now);
        let local_home = std::env::var(LOCAL_ACCOUNT_ENV)
            .ok()
            .zip(std::env::var("AWS_REGION").ok())
            .map(|(account, region)| Home::new(account.trim(), region.trim()))
            .filter(|home| is_account_id(&home.account) && is_region(&home.region));
        Self { function_arn: function_arn.to_owned(), deadline, local_home, request_id: String::new() }
    }

    /// The same invocation under Lambda's request id.
    #[must_use]
    pub fn with_request_id(self, request_id: &str) -> Self {
        Self { request_id: request_id.to_owned(), ..self }
    }

    /// An invocation of a function serving `account` in `region`, as Lambda would hand it (tests, tools).
    pub fn serving(account: &str, region: &str) -> Self {
        Self {
            function_arn: format!("arn:aws:lambda:{region}:{account}:function:ecr-warden"),
            deadline: None,
            local_home: None,
            request_id: "local".into(),
        }
    }

    /// The account and region the function serves: its ARN's, or the local fallback where there is no ARN.
    pub fn home(&self) -> Option<Home> {
        Home::from_function_arn(&self.function_arn)
            .or_else(|| (!self.function_arn.starts_with("arn:")).then(|| self.local_home.clone()).flatten())
    }
}

#[cfg(feature = "aws")]
impl From<&lambda_runtime::Context> for Invocation {
    fn from(context: &lambda_runtime::Context) -> Self {
        Self::new(&context.invoked_function_arn, context.deadline, SystemTime::now())
            .with_request_id(&context.request_id)
    }
}

/// The registry a function serving `home` with `reach` acts on for `event`; `Err` says why it acts on none (the
/// event is skipped).
pub fn admit(event: &Event, home: Option<&Home>, reach: &Reach) -> Result<Home, String> {
    let Some(home) = home else {
        return Err(format!(
            "this function cannot tell which account and region it serves (the runtime gave no function ARN and \
             {LOCAL_ACCOUNT_ENV} is not set): it acts on no event"
        ));
    };
    match (event.account.as_deref(), event.region.as_deref()) {
        (Some(account), Some(region)) => reach.registry(home, account, region),
        _ => Err("the event names no account or region (EventBridge always does): it is not acted on".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(account: Option<&str>, region: Option<&str>) -> Event {
        let mut value = serde_json::json!({
            "version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "time": "2026-12-01T00:00:00Z", "resources": [], "detail": {}
        });
        if let Some(account) = account {
            value["account"] = account.into();
        }
        if let Some(region) = region {
            value["region"] = region.into();
        }
        crate::event::parse(value).expect("event")
    }

    #[test]
    fn home_from_function_arns() {
        let table = [
            ("arn:aws:lambda:us-east-1:123456789012:function:tag-guard", Some(("123456789012", "us-east-1"))),
            (
                "arn:aws:lambda:eu-central-2:210987654321:function:scan-gate:live",
                Some(("210987654321", "eu-central-2")),
            ),
            ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", Some(("123456789012", "us-gov-west-1"))),
            ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:7", Some(("123456789012", "cn-north-1"))),
            ("function-arn", None),
            ("", None),
            ("arn:aws:lambda:us-east-1:123456789012:function:", None),
            ("arn:aws:lambda:us-east-1:12345678901:function:f", None),
            ("arn:aws:lambda:us-east-1:12345678901x:function:f", None),
            ("arn:aws:sns:us-east-1:123456789012:function:f", None),
            ("arn:aws:lambda:us-east-1:123456789012:layer:f", None),
            ("arn:aws:lambda:US-EAST-1:123456789012:function:f", None),
            ("arn:aws:lambda:useast1:123456789012:function:f", None),
        ];
        for (arn, expected) in table {
            let home = Home::from_function_arn(arn);
            let got = home.as_ref().map(|h| (h.account.as_str(), h.region.as_str()));
            assert_eq!(got, expected, "{arn}");
        }
    }

    #[test]
    fn the_local_fallback_only_applies_without_an_arn() {
        let local = Some(Home::new("123456789012", "us-east-1"));
        let emulated = Invocation {
            function_arn: "function-arn".into(),
            deadline: None,
            local_home: local.clone(),
            ..Invocation::default()
        };
        assert_eq!(emulated.home(), local);
        // A real ARN always wins, and a malformed ARN is not an emulator: no fallback.
        let real = Invocation { function_arn: "arn:aws:lambda:eu-west-1:210987654321:function:f".into(), ..emulated };
        assert_eq!(real.home().map(|h| h.account), Some("210987654321".to_owned()));
        let broken = Invocation { function_arn: "arn:aws:lambda:eu-west-1:2109:function:f".into(), ..real };
        assert_eq!(broken.home(), None);
        assert_eq!(Invocation::default().home(), None);
    }

    #[test]
    fn deadlines_in_the_past_are_none() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(Invocation::new("function-arn", 0, now).deadline, None);
        let later = 1_800_000_000_000 + 900_000;
        assert_eq!(Invocation::new("f", later, now).deadline, Some(now + Duration::from_secs(900)));
    }

    #[test]
    fn the_door_admits_only_the_home_account_and_region() {
        let home = Home::new("123456789012", "us-east-1");
        assert_eq!(admit(&event(Some("123456789012"), Some("us-east-1")), Some(&home), &Reach::Home), Ok(home.clone()));
        let foreign =
            admit(&event(Some("999999999999"), Some("us-east-1")), Some(&home), &Reach::Home).expect_err("foreign");
        assert!(foreign.contains("account 999999999999") && foreign.contains("serves account 123456789012"));
        let elsewhere =
            admit(&event(Some("123456789012"), Some("eu-west-1")), Some(&home), &Reach::Home).expect_err("region");
        assert!(elsewhere.contains("region eu-west-1"), "{elsewhere}");
        assert!(admit(&event(None, Some("us-east-1")), Some(&home), &Reach::Home).is_err());
        assert!(admit(&event(Some("123456789012"), None), Some(&home), &Reach::Home).is_err());
        let unknown = admit(&event(Some("123456789012"), Some("us-east-1")), None, &Reach::Home).expect_err("no home");
        assert!(unknown.contains(LOCAL_ACCOUNT_ENV), "{unknown}");
    }

    #[test]
    fn image_arns_are_what_inspector_reports() {
        let home = Home::new("123456789012", "us-east-1");
        assert_eq!(
            home.image_arn("prod/api", "sha256:ab"),
            "arn:aws:ecr:us-east-1:123456789012:repository/prod/api/sha256:ab"
        );
    }
}
