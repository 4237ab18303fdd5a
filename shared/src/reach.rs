//! Which registries a function may act on: its own account and region (the default), or, as an organization's
//! hub, the accounts and regions an allow-list names, reached through a role each member account holds.
//!
//! The allow-list is the door every event passes (the invocation module's `admit`): anyone allowed to put events
//! on the hub's bus or to invoke a function can name any account, so an event about a registry outside the list is
//! skipped with the reason, before anything is read.

use crate::WardenError;
use std::collections::BTreeSet;

/// Hub mode: the accounts whose registries the hub governs, as 12-digit ids and/or the organization id
/// (`o-...`), comma-separated. Unset: the function acts on its own account only.
pub const ACCOUNTS_ENV: &str = "WARDEN_ACCOUNTS";
/// Hub mode: the regions governed, comma-separated. Unset: the hub's own region only.
pub const REGIONS_ENV: &str = "WARDEN_REGIONS";
/// Hub mode: the role the hub assumes in a member account, as an ARN template with `{account}` (and optionally
/// `{partition}`), e.g. `arn:aws:iam::{account}:role/ecr-warden-member`.
pub const MEMBER_ROLE_ENV: &str = "WARDEN_MEMBER_ROLE";

/// Where a function acts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    /// The function's own account and region only (single-account deployment).
    #[default]
    Home,
    /// An organization's hub: the allow-listed accounts and regions, through each member's role.
    Hub(Hub),
}

/// The allow-list of a hub and how it reaches a member's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    pub accounts: BTreeSet<String>,
    /// The organization whose every account is admitted (`o-...`); the member role's trust policy and the hub's
    /// own `aws:ResourceOrgID` condition on `sts:AssumeRole` keep that to the organization's accounts.
    pub organization: Option<String>,
    /// Empty: the hub's own region only.
    pub regions: BTreeSet<String>,
    pub member_role: String,
}

impl Reach {
    /// Reads the reach through `lookup` (the environment, or a table in tests).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, WardenError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(accounts_text) = var(ACCOUNTS_ENV) else {
            return match var(MEMBER_ROLE_ENV).or_else(|| var(REGIONS_ENV)) {
                Some(_) => Err(WardenError::Config(format!(
                    "{MEMBER_ROLE_ENV} / {REGIONS_ENV} are set but {ACCOUNTS_ENV} is not: name the accounts the hub \
                     governs (ids or the organization id)"
                ))),
                None => Ok(Self::Home),
            };
        };
        let (mut accounts, mut organization) = (BTreeSet::new(), None);
        for item in list(&accounts_text) {
            if is_account_id(item) {
                accounts.insert(item.to_owned());
            } else if is_organization_id(item) && organization.is_none() {
                organization = Some(item.to_owned());
            } else {
                return Err(WardenError::Config(format!(
                    "{ACCOUNTS_ENV}: `{item}` is neither a 12-digit account id nor an organization id (o-...); \
                     one organization at most"
                )));
            }
        }
        let mut regions = BTreeSet::new();
        for region in list(&var(REGIONS_ENV).unwrap_or_default()) {
            if !is_region(region) {
                return Err(WardenError::Config(format!("{REGIONS_ENV}: `{region}` is not a region name")));
            }
            regions.insert(region.to_owned());
        }
        let member_role = var(MEMBER_ROLE_ENV).map(|r| r.trim().to_owned()).unwrap_or_default();
        if !member_role.contains("{account}") || !member_role.starts_with("arn:") || !member_role.contains(":role/") {
            return Err(WardenError::Config(format!(
                "{MEMBER_ROLE_ENV} must be a role ARN template with {{account}} (e.g. \
                 arn:aws:iam::{{account}}:role/ecr-warden-member), not `{member_role}`"
            )));
        }
        Ok(Self::Hub(Hub { accounts, organization, regions, member_role }))
    }

    /// The registry a function serving `home` acts on for an event from `account` in `region`; `Err` says why
    /// it does not (the event is skipped).
    pub fn registry(&self, home: &Home, account: &str, region: &str) -> Result<Home, String> {
        match self {
            Self::Home if account != home.account => Err(format!(
                "the event comes from account {account} ({region}); this function serves account {} in {}: \
                 it does not act on other accounts' registries",
                home.account, home.region
            )),
            Self::Home if region != home.region => Err(format!(
                "the event comes from region {region}; this function serves {} in account {}: it does not act on \
                 other regions' registries",
                home.region, home.account
            )),
            Self::Home => Ok(home.clone()),
            Self::Hub(hub) => hub.admit(home, account, region),
        }
    }
}

impl Hub {
    fn admit(&self, home: &Home, account: &str, region: &str) -> Result<Home, String> {
        if !is_account_id(account) || !is_region(region) {
            return Err(format!("the event names account `{account}` in `{region}`: not an account and a region"));
        }
        if !self.accounts.contains(account) && self.organization.is_none() {
            let listed = self.accounts.iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!(
                "account {account} is not one this hub governs ({ACCOUNTS_ENV}: {listed}): its registry is left alone"
            ));
        }
        let allowed = if self.regions.is_empty() { region == home.region } else { self.regions.contains(region) };
        if !allowed {
            let regions = self.regions();
            return Err(format!(
                "region {region} is not one this hub governs ({REGIONS_ENV}: {}): account {account}'s registry \
                 there is left alone",
                regions_of(&regions, home)
            ));
        }
        Ok(Home { partition: home.partition.clone(), account: account.to_owned(), region: region.to_owned() })
    }

    /// The member role's ARN in `registry`'s account.
    pub fn role_arn(&self, registry: &Home) -> String {
        self.member_role.replace("{account}", &registry.account).replace("{partition}", &registry.partition)
    }

    /// The regions governed as listed (empty: the hub's own).
    pub fn regions(&self) -> Vec<&str> {
        self.regions.iter().map(String::as_str).collect()
    }

    /// The registries a sweep of this hub covers, each once, in order: every listed account and every one of
    /// `members` (the organization's active accounts, when an organization is named) in every governed region.
    /// Accounts not 12 digits are left out (the door would refuse them anyway).
    pub fn sweep_items(&self, home: &Home, members: &[String]) -> Vec<Home> {
        let accounts: BTreeSet<&str> = self
            .accounts
            .iter()
            .chain(members.iter().filter(|_| self.organization.is_some()))
            .map(String::as_str)
            .filter(|account| is_account_id(account))
            .collect();
        let regions = if self.regions.is_empty() { vec![home.region.as_str()] } else { self.regions() };
        let mut items = Vec::with_capacity(accounts.len() * regions.len());
        for account in accounts {
            for region in &regions {
                items.push(Home {
                    partition: home.partition.clone(),
                    account: account.to_owned(),
                    region: (*region).to_owned(),
                });
            }
        }
        items
    }
}

fn regions_of(regions: &[&str], home: &Home) -> String {
    if regions.is_empty() { format!("unset, so {} only", home.region) } else { regions.join(", ") }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// `o-` and 10 to 32 lower-case letters or digits (Organizations' pattern).
fn is_organization_id(text: &str) -> bool {
    text.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The account and region a function serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub partition: String,
    pub account: String,
    pub region: String,
}

impl Home {
    /// From `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`; `None` for anything else.
    pub fn from_function_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.split(':');
        let (arn_, partition, service, region, account, kind) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = arn_ == "arn"
            && service == "lambda"
            && kind == "function"
            && parts.next().is_some_and(|name| !name.is_empty())
            && is_account_id(account)
            && is_region(region);
        valid.then(|| Self { partition: partition.to_owned(), account: account.to_owned(), region: region.to_owned() })
    }

    /// The ARN Amazon Inspector and ECR give an image of this registry.
    pub fn image_arn(&self, repository: &str, digest: &str) -> String {
        format!("arn:{}:ecr:{}:{}:repository/{repository}/{digest}", self.partition, self.region, self.account)
    }
}

impl Home {
    /// A home in the `aws` partition (local fallbacks and tests).
    pub fn new(account: &str, region: &str) -> Self {
        Self { partition: "aws".into(), account: account.to_owned(), region: region.to_owned() }
    }
}

/// Twelve digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: lower-case words and a number.
pub fn is_region(text: &str) -> bool {
    let mut parts = text.split('-').peekable();
    let mut words = 0;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let ok = if last {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
        } else {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase())
        };
        if !ok {
            return false;
        }
        words += 1;
    }
    words >= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::{account}:role/ecr-warden-member";

    fn reach(pairs: &[(&str, &str)]) -> Result<Reach, WardenError> {
        Reach::from_vars(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    fn hub(accounts: &str, regions: &str) -> Reach {
        reach(&[(ACCOUNTS_ENV, accounts), (REGIONS_ENV, regions), (MEMBER_ROLE_ENV, ROLE)]).expect("valid")
    }

    #[test]
    fn unset_is_the_home_registry_and_half_a_hub_is_an_error() {
        assert_eq!(reach(&[]).expect("valid"), Reach::Home);
        assert_eq!(reach(&[(ACCOUNTS_ENV, " ")]).expect("valid"), Reach::Home);
        let half = reach(&[(MEMBER_ROLE_ENV, ROLE)]).expect_err("no accounts");
        assert!(half.to_string().contains(ACCOUNTS_ENV), "{half}");
        for (accounts, role, regions) in [
            ("12345678901", ROLE, ""),
            ("123456789012,o-abc", ROLE, ""),
            ("o-abcdefghij,o-bcdefghijk", ROLE, ""),
            ("123456789012", "arn:aws:iam::123456789012:role/fixed", ""),
            ("123456789012", "", ""),
            ("123456789012", ROLE, "us-east-1,Mars"),
        ] {
            let got = reach(&[(ACCOUNTS_ENV, accounts), (MEMBER_ROLE_ENV, role), (REGIONS_ENV, regions)]);
            assert!(got.is_err(), "{accounts} / {role} / {regions}");
        }
    }

    #[test]
    fn the_home_reach_admits_only_its_account_and_region() {
        let home = Home::new("123456789012", "us-east-1");
        assert_eq!(Reach::Home.registry(&home, "123456789012", "us-east-1"), Ok(home.clone()));
        let foreign = Reach::Home.registry(&home, "999999999999", "us-east-1").expect_err("foreign");
        assert!(foreign.contains("account 999999999999") && foreign.contains("serves account 123456789012"));
        let elsewhere = Reach::Home.registry(&home, "123456789012", "eu-west-1").expect_err("region");
        assert!(elsewhere.contains("region eu-west-1"), "{elsewhere}");
    }

    #[test]
    fn a_hub_admits_its_allow_list_and_names_what_it_refuses() {
        let home = Home::new("111111111111", "us-east-1");
        let listed = hub("222222222222, 333333333333", "us-east-1,eu-west-1");
        let table = [
            ("222222222222", "us-east-1", true),
            ("333333333333", "eu-west-1", true),
            ("111111111111", "us-east-1", false), // the hub's own account only when listed
            ("444444444444", "us-east-1", false),
            ("222222222222", "ap-south-1", false),
            ("2222", "us-east-1", false),
            ("222222222222", "moon", false),
        ];
        for (account, region, admitted) in table {
            let got = listed.registry(&home, account, region);
            assert_eq!(got.is_ok(), admitted, "{account} {region}: {got:?}");
            if let Ok(registry) = got {
                assert_eq!((registry.account.as_str(), registry.region.as_str()), (account, region));
            }
        }
        let refused = listed.registry(&home, "444444444444", "us-east-1").expect_err("foreign");
        assert!(refused.contains("444444444444") && refused.contains(ACCOUNTS_ENV), "{refused}");
        let region = listed.registry(&home, "222222222222", "ap-south-1").expect_err("region");
        assert!(region.contains("ap-south-1") && region.contains("eu-west-1, us-east-1"), "{region}");
        // No regions listed: the hub's own region only.
        let own_region = hub("222222222222", "");
        assert!(own_region.registry(&home, "222222222222", "us-east-1").is_ok());
        let other = own_region.registry(&home, "222222222222", "eu-west-1").expect_err("region");
        assert!(other.contains("us-east-1 only"), "{other}");
        // The organization admits any account id (the role trust keeps it to the organization).
        let org = hub("o-a1b2c3d4e5", "us-east-1");
        assert!(org.registry(&home, "555555555555", "us-east-1").is_ok());
        assert!(org.registry(&home, "555555555555", "eu-west-1").is_err());
    }

    #[test]
    fn a_sweep_covers_every_governed_registry_once() {
        let home = Home::new("111111111111", "us-east-1");
        let Reach::Hub(listed) = hub("333333333333,222222222222", "us-east-1,eu-west-1") else { panic!("a hub") };
        let members = ["999999999999".to_owned()];
        let names =
            |items: Vec<Home>| items.into_iter().map(|h| format!("{} {}", h.account, h.region)).collect::<Vec<_>>();
        assert_eq!(
            names(listed.sweep_items(&home, &members)),
            ["222222222222 eu-west-1", "222222222222 us-east-1", "333333333333 eu-west-1", "333333333333 us-east-1"],
            "members count only for an organization"
        );
        let Reach::Hub(org) = hub("o-a1b2c3d4e5,222222222222", "") else { panic!("a hub") };
        let members = ["222222222222".to_owned(), "444444444444".to_owned(), "nonsense".to_owned()];
        assert_eq!(names(org.sweep_items(&home, &members)), ["222222222222 us-east-1", "444444444444 us-east-1"]);
        // Every item is one the door admits.
        for (hub, members) in [(&listed, &[][..]), (&org, &members[..])] {
            for item in hub.sweep_items(&home, members) {
                let admitted = Reach::Hub(hub.clone()).registry(&home, &item.account, &item.region);
                assert_eq!(admitted.as_ref(), Ok(&item));
            }
        }
    }

    #[test]
    fn the_member_role_is_named_per_account() {
        let Reach::Hub(hub) = hub("222222222222", "") else { panic!("a hub") };
        let registry = Home { partition: "aws-cn".into(), account: "222222222222".into(), region: "cn-north-1".into() };
        assert_eq!(hub.role_arn(&registry), "arn:aws:iam::222222222222:role/ecr-warden-member");
        let partitioned = Hub { member_role: "arn:{partition}:iam::{account}:role/m".into(), ..hub };
        assert_eq!(partitioned.role_arn(&registry), "arn:aws-cn:iam::222222222222:role/m");
    }
}
