//! `scimtrail verify`: the pair test. Plays the bundled scenario of a route's IdP through the
//! route (in process, its rules, credentials and pacing) against the application — a test
//! tenant: it writes —, with every user and group renamed `scimtrail-probe-<run>-…`; checks
//! each deactivation, reactivation and deletion by reading the resource back, then the
//! scenario's intended state, then deprovisions on its own step every resource it made and
//! checks each is gone. Every exchange is recorded and marked synthetic (`verify`).

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use scimtrail_demo::play::{check, with_content_type, Answer, Sender};
use scimtrail_demo::scenario::{self, fill, fill_json, Scenario};
use scimtrail_proxy::Replayer;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

/// What marks verify's exchanges synthetic.
const MADE_BY: &str = "verify";

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The configuration file the proxy serves with: its routes, rules and credentials.
    #[arg(long)]
    config: PathBuf,
    /// The route to verify.
    #[arg(long)]
    route: String,
    /// The bundled scenario to play (default: the one of the route's IdP; `google`, the RFC
    /// baseline, for `generic`).
    #[arg(long)]
    scenario: Option<String>,
    /// sqlite://FILE or postgres://… (default: the configuration's, else sqlite://scimtrail.db).
    #[arg(long)]
    store: Option<String>,
    /// Says that verify may create, change and delete users and groups named
    /// `scimtrail-probe-*` in the route's application. Required.
    #[arg(long)]
    i_understand_this_writes: bool,
}

/// One line of the report: what was checked, and what went wrong.
struct Outcome {
    what: String,
    detail: String,
    failure: Option<String>,
}

/// The route, in process: each request a synthetic exchange.
struct Through<'a> {
    replayer: &'a Replayer,
    /// Each exchange's outcome, by id.
    outcomes: RefCell<HashMap<String, String>>,
}

impl Sender for Through<'_> {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let headers = with_content_type(headers, body);
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let answer = self
            .replayer
            .send_synthetic(MADE_BY, method, url, &headers, bytes)
            .await?;
        self.outcomes
            .borrow_mut()
            .insert(answer.exchange_id.clone(), answer.outcome.clone());
        Ok(Answer {
            status: answer.status,
            body: Answer::body_of(&answer.body),
            exchange_id: Some(answer.exchange_id),
        })
    }
}

impl Through<'_> {
    fn outcome(&self, answer: &Answer) -> String {
        answer
            .exchange_id
            .as_ref()
            .and_then(|id| self.outcomes.borrow().get(id).cloned())
            .unwrap_or_else(|| "-".to_owned())
    }
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if !args.i_understand_this_writes {
        anyhow::bail!(
            "verify writes to the route's application: it creates, changes and deletes users and groups named scimtrail-probe-*; \
             point the route at a test tenant and give --i-understand-this-writes"
        );
    }
    let settings = crate::route_settings(&args.config, args.store.clone())?;
    let Some(route) = settings.proxy.routes.iter().find(|r| r.name == args.route) else {
        let names: Vec<&str> = settings.proxy.routes.iter().map(|r| r.name.as_str()).collect();
        anyhow::bail!(
            "no route is named {:?}; the configuration has {}",
            args.route,
            names.join(", ")
        );
    };
    let scenarios = scenario::bundled().map_err(anyhow::Error::msg)?;
    let wanted = args.scenario.clone().unwrap_or_else(|| match route.idp.as_str() {
        "generic" => "google".to_owned(),
        idp => idp.to_owned(),
    });
    let Some(chosen) = scenarios.iter().find(|s| s.name == wanted) else {
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no bundled scenario is named {wanted:?} (route {} serves IdP {}); give --scenario, one of {}",
            route.name,
            route.idp,
            names.join(", ")
        );
    };
    let run = format!("scimtrail-probe-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let renamed = scenario::renamed(chosen, &run).map_err(anyhow::Error::msg)?;
    let prefix = route.path_prefix.trim_end_matches('/').to_owned();
    println!(
        "scimtrail verify: route {} ({} profile) → {}",
        route.name, route.idp, route.upstream
    );
    println!(
        "  scenario {}: {} — resources named {run}-*",
        renamed.name, renamed.title
    );

    let store = crate::exchanges::open(Some(settings.store_url.clone())).await?;
    let replayer = Replayer::new(settings.proxy.clone(), store)
        .await
        .context("cannot prepare the verification")?;
    let through = Through {
        replayer: &replayer,
        outcomes: RefCell::new(HashMap::new()),
    };
    let outcomes = verify(&through, &prefix, &renamed).await;
    replayer.finish().await;
    let outcomes = outcomes.map_err(anyhow::Error::msg)?;
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    for outcome in &outcomes {
        let mark = if outcome.failure.is_some() { "✗" } else { "✓" };
        match outcome.detail.is_empty() {
            true => println!("{mark} {}", crate::exchanges::escape(&outcome.what)),
            false => println!(
                "{mark} {}  {}",
                crate::exchanges::escape(&outcome.what),
                crate::exchanges::escape(&outcome.detail)
            ),
        }
        if let Some(why) = &outcome.failure {
            println!("    {}", crate::exchanges::escape(why));
        }
    }
    println!(
        "{} checks, {} failed; every exchange is recorded as synthetic ({MADE_BY}): `scimtrail exchanges list --synthetic` shows them",
        outcomes.len(),
        failed
    );
    if failed > 0 {
        anyhow::bail!("verify failed: {failed} of {} checks", outcomes.len());
    }
    Ok(())
}

/// Plays the scenario step by step, each lifecycle change read back; then its intended state;
/// then the deprovisioning of everything it made.
async fn verify(through: &Through<'_>, prefix: &str, scenario: &Scenario) -> Result<Vec<Outcome>, String> {
    let mut saved: HashMap<String, String> = HashMap::new();
    let mut made: Vec<(String, String, String)> = Vec::new();
    let mut outcomes = Vec::new();
    for step in &scenario.steps {
        let path = fill(&step.path, &saved);
        let query = step.query.as_deref().map(|q| fill(q, &saved));
        let body = step.body.as_ref().map(|b| fill_json(b, &saved));
        let mut target = format!("{prefix}{path}");
        if let Some(query) = &query {
            target.push('?');
            target.push_str(query);
        }
        let answer = through
            .send(&step.method, &target, &step.headers, body.as_ref())
            .await?;
        let outcome = through.outcome(&answer);
        if let (Some(name), Some(id)) = (&step.save, answer.body.get("id").and_then(Value::as_str)) {
            saved.insert(name.clone(), id.to_owned());
            let endpoint = if path.trim_end_matches('/').ends_with("/Groups") {
                "Groups"
            } else {
                "Users"
            };
            made.push((endpoint.to_owned(), id.to_owned(), name.clone()));
        }
        // A lookup that finds nothing may be answered 404 (Okta and OneLogin accept it).
        let lookup_miss = step.method == "GET" && answer.status == 404;
        let failure = match (answer.status, outcome.as_str()) {
            (_, "ok") if answer.status < 400 => None,
            _ if lookup_miss => None,
            (status, outcome) => Some(format!("{}; recorded {outcome}", describe(status, &answer.body))),
        };
        outcomes.push(Outcome {
            what: step.name.clone(),
            detail: format!(
                "{} {path} → {} {outcome}  [{}]",
                step.method,
                answer.status,
                answer.exchange_id.as_deref().unwrap_or("-")
            ),
            failure,
        });
        // A deactivation, reactivation or deletion is read back on its own.
        let class = scimtrail_analysis::classify::classify(&step.method, &path, query.as_deref(), body.as_ref());
        if let (Some(lifecycle), Some(resource), Some(id)) = (class.lifecycle, class.resource_type, class.resource_id) {
            if let Some(read_back) = read_back(through, prefix, lifecycle, &resource, &id, &step.name).await? {
                outcomes.push(read_back);
            }
        }
    }
    for result in check(through, prefix, scenario, &saved).await? {
        outcomes.push(Outcome {
            what: format!("intended state: {}", result.what),
            detail: String::new(),
            failure: result.mismatch,
        });
    }
    // Deprovisioning on its own: everything the scenario made and did not delete, groups first.
    made.sort_by_key(|(endpoint, _, _)| endpoint != "Groups");
    for (endpoint, id, name) in made {
        let target = format!("{prefix}/{endpoint}/{id}");
        let before = through.send("GET", &target, &[], None).await?;
        if before.status == 404 {
            continue;
        }
        let deleted = through.send("DELETE", &target, &[], None).await?;
        let after = through.send("GET", &target, &[], None).await?;
        let failure = match (deleted.status, after.status) {
            (200..=299, 404) => None,
            (200..=299, status) => Some(format!(
                "DELETE answered {}, but it reads back {status}: not deleted",
                deleted.status
            )),
            (status, _) => Some(describe(status, &deleted.body)),
        };
        outcomes.push(Outcome {
            what: format!("deprovision {name} ({endpoint}/{id})"),
            detail: format!(
                "DELETE → {} {}, then GET → {}",
                deleted.status,
                through.outcome(&deleted),
                after.status
            ),
            failure,
        });
    }
    Ok(outcomes)
}

/// The resource a lifecycle step changed, read back through the route: inactive after a
/// deactivation, active after a reactivation, gone after a deletion.
async fn read_back(
    through: &Through<'_>,
    prefix: &str,
    lifecycle: &str,
    resource: &str,
    id: &str,
    step: &str,
) -> Result<Option<Outcome>, String> {
    let target = format!("{prefix}/{resource}/{id}");
    let (wanted, failure) = match lifecycle {
        "deactivate" | "reactivate" => {
            let active = lifecycle == "reactivate";
            let read = through.send("GET", &target, &[], None).await?;
            let found = read.body.get("active").cloned().unwrap_or(Value::Null);
            let failure = (read.status != 200 || found != json!(active))
                .then(|| format!("it reads back {} with active {found}", read.status));
            (format!("active {active}"), failure)
        }
        "deprovision" => {
            let read = through.send("GET", &target, &[], None).await?;
            let failure = (read.status != 404).then(|| format!("it reads back {}: still there", read.status));
            ("gone (404)".to_owned(), failure)
        }
        _ => return Ok(None),
    };
    Ok(Some(Outcome {
        what: format!("after \"{step}\": {resource}/{id} is {wanted}"),
        detail: String::new(),
        failure,
    }))
}

/// An answer's status with its SCIM `detail` when it has one.
fn describe(status: u16, body: &Value) -> String {
    match body.get("detail").and_then(Value::as_str) {
        Some(detail) => format!("answered {status}: {detail}"),
        None => format!("answered {status}"),
    }
}
