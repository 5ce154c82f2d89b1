//! A run that nobody confirms (the daemon's), in batches of agents: each batch is loaded,
//! listed, planned and landed before the next one is decrypted, so the run holds the desired
//! secrets of one batch at a time, however many agents the repository has.
//!
//! The plan of an agent depends on that agent alone (its manifest, its key list, its state
//! records), so the batches' plans put together are the plan one pass would have made, and
//! each batch lands exactly as a whole run would have landed it. Each batch's outcome goes to
//! the caller's [`Tally`] as soon as it has landed: the daemon keeps counts and errors of it,
//! and `reconcile::reconcile` puts the batches together ([`absorb`]) without what would hold
//! the whole repository again: each agent's values (its findings and the shared groups it
//! uses are kept) and the key lists (`observed` is empty).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Observer, Outcome, Planned, ReconcileError, Run, Tally, land, observe_loaded, plan_loaded,
};
use crate::apply::ApplyReport;
use crate::deadline::TimedOut;
use crate::incremental::Selection;
use crate::load::{self, Loaded};
use crate::plan::Plan;
use crate::request::Request;
use crate::source::inputs::RunInputs;

/// The batch size, when this run goes in batches: asked for ([`Request::batch`]), and a run
/// that writes without asking, whose plan nobody needs whole before the first write (not a dry
/// run, no `--base`, no `--replace` target to check against every agent).
pub(super) fn size(req: &Request<'_>) -> Option<usize> {
    let whole = req.dry_run
        || req.base.is_some()
        || !req.replace.agents.is_empty()
        || !req.replace.keys.is_empty();
    req.batch.filter(|_| !whole).map(|n| n.max(1))
}

/// Loads, lists, plans and lands the agents `selection` refreshes, `size` at a time, in slug
/// order, handing `tally` the run's frame (its revision and coverage) and then each batch's
/// outcome as it lands. A shutdown stops it between batches: the agents not reached are left
/// out, and their state records (none, or older inputs) make the next run refresh them.
pub(super) async fn reconcile(
    req: &Request<'_>,
    run: Run,
    selection: Selection,
    inputs: RunInputs,
    observer: Arc<dyn Observer>,
    size: usize,
    tally: &mut dyn Tally,
) -> Result<(), ReconcileError> {
    let checkout = req.checkout;
    tally.add(Outcome {
        loaded: Loaded::default(),
        plan: Plan {
            agents: Vec::new(),
            coverage: selection.coverage,
        },
        report: None,
        revision: checkout.label(),
        declined: false,
        observed: BTreeMap::new(),
        timed_out: None,
        state_warning: None,
    });
    let agents: Vec<String> = selection.refresh.into_iter().collect();
    for batch in agents.chunks(size) {
        if req.cancel.is_cancelled() {
            break;
        }
        let env = &req.environment;
        let tree = checkout.tree();
        let loaded =
            load::load_agents(tree, &checkout.config, env, req.identities, batch.to_vec())?;
        let observed = observe_loaded(req, &run, &loaded, observer.as_ref()).await;
        if let Some(error) = super::run_ending(&observed) {
            return Err(ReconcileError::Unreachable(error));
        }
        let plan = plan_loaded(req, &loaded, &observed, None).await;
        let planned = Planned {
            loaded,
            plan,
            observed,
            inputs: inputs.only(batch),
        };
        let landed = land(req, run.clone(), planned, observer.clone()).await;
        let declined = landed.declined;
        tally.add(landed);
        if declined {
            break;
        }
    }
    Ok(())
}

/// Adds one batch's outcome to the run's, dropping its values and key lists.
pub(super) fn absorb(merged: &mut Outcome, batch: Outcome) {
    merged.loaded.absorb_without_values(batch.loaded);
    merged.plan.agents.extend(batch.plan.agents);
    if let Some(more) = batch.report {
        let report = merged.report.get_or_insert_with(ApplyReport::default);
        report.agents.extend(more.agents);
    }
    merged.declined |= batch.declined;
    TimedOut::absorb(&mut merged.timed_out, batch.timed_out);
    if merged.state_warning.is_none() {
        merged.state_warning = batch.state_warning;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use age::secrecy::ExposeSecret;
    use tokio::sync::Mutex;

    use crate::crypto::{self, Identities};
    use crate::platform::Platform;
    use crate::platform::local::LocalPlatform;
    use crate::platform::store::Store;
    use crate::reconcile::{self, Outcome, Unattended};
    use crate::request::{ApplySettings, ChangedSince, Request};
    use crate::source::Checkout;
    use crate::state::State;

    /// A repository at `root` of `n` agents with two keys each, encrypted to a new identity
    /// written in `keys`; the identity file.
    fn repository(root: &Path, keys: &Path, n: usize) -> PathBuf {
        let (identity, recipient) = crypto::generate_identity();
        let key = keys.join("key.txt");
        std::fs::write(&key, identity.expose_secret()).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = format!("version: 1\nrecipients:\n  - {recipient}\n");
        std::fs::write(root.join("castsync.yaml"), config).unwrap();
        let to = [crypto::parse_recipient(&recipient).unwrap()];
        for i in 0..n {
            let dir = root.join(format!("agents/agent-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let text = format!("agent: agent-{i}\nsecrets:\n  A: \"a{i}\"\n  B: \"b{i}\"\n");
            let sealed = crypto::encrypt(text.as_bytes(), &to).unwrap();
            std::fs::write(dir.join("secrets.yaml.age"), sealed).unwrap();
        }
        key
    }

    /// A repository of five agents, its checkout and identity, and a directory for targets.
    struct Fixture {
        _repo: tempfile::TempDir,
        _keys: tempfile::TempDir,
        out: tempfile::TempDir,
        checkout: Checkout,
        ids: Identities,
    }

    fn five_agents() -> Fixture {
        let (repo, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key = repository(repo.path(), keys.path(), 5);
        Fixture {
            checkout: Checkout::worktree(repo.path(), None).unwrap(),
            ids: Identities::discover(&[key]).unwrap(),
            out: tempfile::tempdir().unwrap(),
            _repo: repo,
            _keys: keys,
        }
    }

    struct Target {
        platform: Arc<dyn Platform>,
        store: PathBuf,
        state: Arc<Mutex<State>>,
    }

    impl Target {
        fn open(dir: &Path, name: &str, checkout: &Checkout) -> Target {
            let store = dir.join(format!("{name}.db"));
            let platform = LocalPlatform::open(&store, checkout.agents.clone()).unwrap();
            let state = State::open(&dir.join(format!("{name}-state.db"))).unwrap();
            Target {
                platform: Arc::new(platform),
                store,
                state: Arc::new(Mutex::new(state)),
            }
        }

        async fn reconcile(
            &self,
            checkout: &Checkout,
            ids: &Identities,
            batch: Option<usize>,
        ) -> Outcome {
            let request = Request {
                batch,
                changed: Some(ChangedSince::State),
                ..ApplySettings::default().request(
                    checkout,
                    ids,
                    self.platform.clone(),
                    self.state.clone(),
                )
            };
            reconcile::reconcile(request, Arc::new(Unattended))
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn agents_land_in_batches_as_they_land_in_one_pass() {
        let f = five_agents();
        let (out, checkout, ids) = (&f.out, &f.checkout, &f.ids);
        let whole = Target::open(out.path(), "whole", checkout);
        let batched = Target::open(out.path(), "batched", checkout);

        let one_pass = whole.reconcile(checkout, ids, None).await;
        let in_batches = batched.reconcile(checkout, ids, Some(2)).await;
        assert!(one_pass.ok() && in_batches.ok());
        assert_eq!(in_batches.plan.agents, one_pass.plan.agents);
        assert_eq!(in_batches.report, one_pass.report);
        assert_eq!(in_batches.plan.agents.len(), 5);
        // Every value landed, and every agent is recorded as converged.
        let store = Store::open(&batched.store).unwrap();
        let state = batched.state.lock().await;
        for i in 0..5 {
            let agent = format!("agent-{i}");
            let a = store.get(&agent, "A").unwrap().unwrap();
            assert_eq!(a.value.expose(), format!("a{i}"));
            assert!(
                state.applied_from(batched.platform.id(), &agent).is_some(),
                "{agent}"
            );
        }
        drop(state);
        // What the outcome keeps of the batches holds no value and no key list.
        assert_eq!(in_batches.loaded.agents.len(), 5);
        assert!(
            in_batches
                .loaded
                .agents
                .values()
                .all(|a| a.secrets().is_none())
        );
        assert!(in_batches.observed.is_empty());

        // The next run finds nothing changed.
        let again = batched.reconcile(checkout, ids, Some(2)).await;
        assert!(again.plan.agents.is_empty());
        assert_eq!(again.plan.coverage.unrefreshed.len(), 5);
    }

    /// What a tally is handed: the agents of each outcome, and whether any carried values.
    #[derive(Default)]
    struct Seen(Vec<Vec<String>>, bool);

    impl reconcile::Tally for Seen {
        fn add(&mut self, outcome: Outcome) {
            self.1 |= outcome
                .loaded
                .agents
                .values()
                .any(|a| a.secrets().is_some());
            self.0.push(
                outcome
                    .plan
                    .agents
                    .iter()
                    .map(|a| a.agent.clone())
                    .collect(),
            );
        }
    }

    #[tokio::test]
    async fn a_tally_gets_the_frame_then_each_batch_as_it_lands() {
        let f = five_agents();
        let (out, checkout, ids) = (&f.out, &f.checkout, &f.ids);
        let target = Target::open(out.path(), "t", checkout);
        let request = Request {
            batch: Some(2),
            ..ApplySettings::default().request(
                checkout,
                ids,
                target.platform.clone(),
                target.state.clone(),
            )
        };
        let mut seen = Seen::default();
        reconcile::reconcile_into(request, Arc::new(Unattended), &mut seen)
            .await
            .unwrap();
        let names = |r: std::ops::Range<usize>| -> Vec<String> {
            r.map(|i| format!("agent-{i}")).collect()
        };
        assert_eq!(seen.0, vec![vec![], names(0..2), names(2..4), names(4..5)]);
        // Each batch's values reach the tally, which keeps what it likes of them.
        assert!(seen.1);
    }
}
