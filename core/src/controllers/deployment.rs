//! The deployment controller: one ReplicaSet per pod template, rolled from
//! the old template to the new one.
//!
//! What it promises, for each Deployment with a non-empty selector:
//!
//! * the ReplicaSets it owns are those matching its selector with a
//!   controller reference to it (orphans that match are adopted, owned ones
//!   that stop matching are released);
//! * the "new" ReplicaSet is the one whose template equals the Deployment's
//!   (ignoring `pod-template-hash`), named `<deployment>-<hash>`, created when
//!   missing, with revision `max(old revisions) + 1`;
//! * RollingUpdate scales the new set up within `maxSurge` and the old ones
//!   down within `maxUnavailable`; Recreate scales the old sets to zero, waits
//!   for their pods to go, then scales the new set up;
//! * a Deployment scaled in the middle of a rollout is scaled proportionally;
//! * once a rollout is complete, old sets beyond `revisionHistoryLimit` are
//!   deleted;
//! * the status (counts, `Available` and `Progressing` conditions) is written
//!   only when it changes, and `status.observedGeneration` follows
//!   `metadata.generation`, so `kubectl rollout status` can finish.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::informer::Change;
use super::queue::WorkQueue;
use super::rollout::{self, ActiveSet, OldSet};
use super::{
    Caches, Error, Informers, Requeue, Result, controller_of, controller_reference, key_of,
    run_workers, split_key,
};
use crate::api::selector::Selector;
use crate::api::{DeleteOptions, Deployment, Preconditions, ReplicaSet, Resource, Time};
use crate::client::{Client, EventRecorder};

/// The deployment controller. Create with [`DeploymentController::new`],
/// register its handlers, then [`DeploymentController::run`] it.
pub struct DeploymentController {
    client: Client,
    events: EventRecorder,
    caches: Caches,
    queue: Arc<WorkQueue>,
}

impl DeploymentController {
    pub fn new(client: Client, caches: Caches) -> Arc<DeploymentController> {
        let events = EventRecorder::new(client.clone(), "deployment-controller", None);
        Arc::new(DeploymentController {
            client,
            events,
            caches,
            queue: WorkQueue::new(),
        })
    }

    /// Registers the handlers that queue Deployments when they, their
    /// ReplicaSets, or (for Recreate) their pods change.
    pub fn register(self: &Arc<Self>, informers: &mut Informers) {
        let queue = Arc::clone(&self.queue);
        informers.deployments.on_change(move |change| match change {
            Change::Applied { new, .. } => queue.add(key_of(new.as_ref())),
            Change::Deleted(old) => queue.add(key_of(old.as_ref())),
        });

        let queue = Arc::clone(&self.queue);
        let deployments = self.caches.deployments.clone();
        informers.replica_sets.on_change(move |change| {
            let (old, new) = match change {
                Change::Applied { old, new } => (old.as_deref(), new.as_ref()),
                Change::Deleted(old) => (None, old.as_ref()),
            };
            for rs in old.into_iter().chain([new]) {
                for key in deployments_for_replica_set(&deployments, rs) {
                    queue.add(key);
                }
            }
        });

        let queue = Arc::clone(&self.queue);
        let caches = self.caches.clone();
        informers.pods.on_change(move |change| {
            // Only Recreate waits for pods: it needs to hear when old ones go.
            let Change::Deleted(pod) = change else { return };
            let Some(owner) = controller_of(pod.as_ref(), ReplicaSet::KIND) else {
                return;
            };
            let Some(rs) = caches.replica_sets.get(pod.namespace(), &owner.name) else {
                return;
            };
            let Some(d_ref) = controller_of(rs.as_ref(), Deployment::KIND) else {
                return;
            };
            if let Some(d) = caches.deployments.get(rs.namespace(), &d_ref.name)
                && d.meta().uid() == d_ref.uid
                && rollout::is_recreate(&d)
            {
                queue.add(key_of(d.as_ref()));
            }
        });
    }

    /// Syncs Deployments with `workers` concurrent workers, forever.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let queue = Arc::clone(&self.queue);
        run_workers("deployment", queue, workers, move |key| {
            let this = Arc::clone(&self);
            async move { this.sync(&key).await }
        })
        .await
    }

    /// Brings one Deployment's ReplicaSets and status in line with its spec.
    pub async fn sync(&self, key: &str) -> Result<Requeue> {
        let (namespace, name) = split_key(key);
        let Some(cached) = self.caches.deployments.get(namespace, name) else {
            return Ok(None);
        };
        let d = (*cached).clone();
        let selector = match deployment_selector(&d) {
            Some(selector) => selector,
            None => {
                tracing::warn!(
                    namespace,
                    name,
                    "deployment has an empty or invalid selector"
                );
                return Err(Error::InvalidSelector {
                    kind: Deployment::KIND,
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
        };
        tracing::debug!(namespace, name, "syncing deployment");

        let replica_sets = self.claim_replica_sets(&d, &selector).await?;
        let mut sync = Sync {
            controller: self,
            d,
        };
        if sync.d.metadata.deletion_timestamp.is_some() {
            return sync.status_only(replica_sets).await;
        }
        sync.check_paused_conditions().await?;
        let paused = sync.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        if paused || is_scaling_event(&sync.d, &replica_sets) {
            return sync.scale_only(replica_sets).await;
        }
        if rollout::is_recreate(&sync.d) {
            sync.rollout_recreate(replica_sets).await
        } else {
            sync.rollout_rolling(replica_sets).await
        }
    }

    /// The ReplicaSets this Deployment owns, after adopting matching orphans
    /// and releasing owned sets that no longer match.
    async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<ReplicaSet>> {
        let uid = d.metadata.uid();
        let namespace = d.namespace();
        let mut owned = Vec::new();
        for rs in self.caches.replica_sets.owned_by(uid) {
            let Some(controller) = rs.metadata.controller() else {
                continue;
            };
            if controller.uid != uid || rs.namespace() != namespace {
                continue;
            }
            if selector.matches(&rs.metadata.labels) {
                owned.push((*rs).clone());
            } else if d.metadata.deletion_timestamp.is_none() {
                let mut released = (*rs).clone();
                released.metadata.owner_references.retain(|r| r.uid != uid);
                self.client.replace(&released).await?;
                tracing::info!(namespace, name = rs.name(), "released replica set");
            }
        }
        if d.metadata.deletion_timestamp.is_none() {
            for rs in self.caches.replica_sets.without_controller(namespace) {
                if rs.metadata.deletion_timestamp.is_some()
                    || !selector.matches(&rs.metadata.labels)
                {
                    continue;
                }
                let mut adopted = (*rs).clone();
                adopted
                    .metadata
                    .owner_references
                    .push(controller_reference(d));
                let adopted = self.client.replace(&adopted).await?;
                tracing::info!(namespace, name = rs.name(), "adopted replica set");
                owned.push(adopted);
            }
        }
        owned.sort_by(rollout::by_creation);
        Ok(owned)
    }

    async fn event(&self, d: &Deployment, reason: &str, message: &str) {
        self.events.record(d, "Normal", reason, message).await;
    }
}

/// Keys of the Deployments that may care about a ReplicaSet: its controller,
/// or for an orphan every Deployment of its namespace whose selector matches.
fn deployments_for_replica_set(
    deployments: &super::informer::Cache<Deployment>,
    rs: &ReplicaSet,
) -> Vec<String> {
    if let Some(owner) = rs.metadata.controller() {
        if owner.kind != Deployment::KIND {
            return Vec::new();
        }
        return match deployments.get(rs.namespace(), &owner.name) {
            Some(d) if d.metadata.uid() == owner.uid => vec![key_of(d.as_ref())],
            _ => Vec::new(),
        };
    }
    deployments
        .list_namespace(rs.namespace())
        .into_iter()
        .filter(|d| deployment_selector(d).is_some_and(|s| s.matches(&rs.metadata.labels)))
        .map(|d| key_of(d.as_ref()))
        .collect()
}

/// The Deployment's selector; `None` when empty or invalid (such a
/// Deployment selects nothing).
fn deployment_selector(d: &Deployment) -> Option<Selector> {
    let spec = d.spec.as_ref()?;
    Selector::from_label_selector(&spec.selector)
        .ok()
        .filter(|s| !s.is_empty())
}

/// Whether the Deployment's replica count changed since its active sets were
/// last scaled (their `desired-replicas` annotation disagrees).
fn is_scaling_event(d: &Deployment, replica_sets: &[ReplicaSet]) -> bool {
    let replicas = rollout::desired_replicas(d);
    replica_sets
        .iter()
        .filter(|rs| rollout::rs_replicas(rs) > 0)
        .any(|rs| {
            rs.metadata
                .annotations
                .get(rollout::DESIRED_REPLICAS_ANNOTATION)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|desired| desired != replicas)
        })
}

/// One sync of one Deployment: the Deployment as last written, so that every
/// write builds on the previous one's resourceVersion.
struct Sync<'a> {
    controller: &'a DeploymentController,
    d: Deployment,
}

impl Sync<'_> {
    fn client(&self) -> &Client {
        &self.controller.client
    }

    /// Splits the owned sets into the new one (whose template matches) and
    /// the old ones, creating the new one when `create` is set.
    async fn new_and_old(
        &mut self,
        mut replica_sets: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let template = self.d.spec.clone().unwrap_or_default().template;
        let position = replica_sets.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| rollout::templates_equal_ignoring_hash(t, &template))
        });
        let existing = position.map(|i| replica_sets.remove(i));
        let new = self
            .new_replica_set(existing, &replica_sets, create)
            .await?;
        Ok((new, replica_sets))
    }

    /// Brings the existing new set's annotations up to date, or creates it.
    async fn new_replica_set(
        &mut self,
        existing: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>> {
        let max_old = old
            .iter()
            .map(|rs| rollout::revision_of(&rs.metadata.annotations))
            .max();
        let new_revision = max_old.unwrap_or(0) + 1;

        if let Some(mut rs) = existing {
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let mut changed = self.set_new_rs_annotations(&mut rs, new_revision, true);
            if let Some(spec) = rs.spec.as_mut()
                && spec.min_ready_seconds != min_ready
            {
                spec.min_ready_seconds = min_ready;
                changed = true;
            }
            if changed {
                rs = self.client().replace(&rs).await?;
            }
            let revision = rollout::revision_of(&rs.metadata.annotations);
            self.set_deployment_revision(revision).await?;
            let status = self.d.status.get_or_insert_with(Default::default);
            if status.condition(rollout::PROGRESSING).is_none() {
                let message = format!("Found new replica set \"{}\"", rs.name());
                let condition = rollout::condition(
                    rollout::PROGRESSING,
                    "True",
                    rollout::FOUND_NEW_RS,
                    &message,
                    Time::now(),
                );
                rollout::set_condition(status, condition);
                self.write_status().await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let rs = self.create_new_replica_set(old, new_revision).await?;
        Ok(Some(rs))
    }

    async fn create_new_replica_set(
        &mut self,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = rollout::template_hash(&spec.template, collision_count);
        let name = format!("{}-{hash}", self.d.name());

        let mut template = spec.template.clone();
        template
            .metadata
            .labels
            .insert(rollout::POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .insert(rollout::POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let replicas = rollout::desired_replicas(&self.d);
        let fence = rollout::fenceposts(&self.d);
        let new_replicas = if rollout::is_recreate(&self.d) {
            replicas
        } else {
            let total: i32 = old.iter().map(rollout::rs_replicas).sum();
            rollout::new_rs_target(replicas, fence.max_surge, total, 0)
        };

        let mut rs = ReplicaSet::new(self.d.namespace(), &name);
        rs.metadata.labels = template.metadata.labels.clone();
        rs.metadata.owner_references = vec![controller_reference(&self.d)];
        rs.spec = Some(crate::api::ReplicaSetSpec {
            replicas: Some(new_replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        });
        self.set_new_rs_annotations(&mut rs, new_revision, false);

        let created = match self.client().create(&rs).await {
            Ok(created) => created,
            Err(error) if error.is_conflict() => {
                // Either our own earlier create the cache has not shown yet,
                // or a different object took the name: a hash collision.
                let live = self
                    .client()
                    .get::<ReplicaSet>(self.d.namespace(), &name)
                    .await?;
                let ours = live
                    .metadata
                    .controller()
                    .is_some_and(|c| c.uid == self.d.metadata.uid());
                let same = live
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| rollout::templates_equal_ignoring_hash(t, &spec.template));
                if ours && same {
                    return Ok(live);
                }
                let status = self.d.status.get_or_insert_with(Default::default);
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                self.write_status().await?;
                return Err(Error::HashCollision { name });
            }
            Err(error) => return Err(error.into()),
        };
        tracing::info!(
            namespace = self.d.namespace(),
            name,
            replicas = new_replicas,
            "created replica set"
        );
        if new_replicas > 0 {
            let message = format!("Scaled up replica set {name} from 0 to {new_replicas}");
            self.controller
                .event(&self.d, "ScalingReplicaSet", &message)
                .await;
        }
        self.set_deployment_revision(new_revision).await?;
        let status = self.d.status.get_or_insert_with(Default::default);
        let message = format!("Created new replica set \"{name}\"");
        let condition = rollout::condition(
            rollout::PROGRESSING,
            "True",
            rollout::NEW_RS_CREATED,
            &message,
            Time::now(),
        );
        rollout::set_condition(status, condition);
        self.write_status().await?;
        Ok(created)
    }

    /// Sets the revision, replica and copied annotations of the new set;
    /// returns whether anything changed.
    fn set_new_rs_annotations(&self, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
        let mut changed = false;
        let annotations = &mut rs.metadata.annotations;
        for (key, value) in rollout::copied_annotations(&self.d) {
            if annotations.get(&key) != Some(&value) {
                annotations.insert(key, value);
                changed = true;
            }
        }
        let old_revision = annotations.get(rollout::REVISION_ANNOTATION).cloned();
        let old_number = old_revision
            .as_deref()
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0);
        if old_number < new_revision {
            annotations.insert(
                rollout::REVISION_ANNOTATION.into(),
                new_revision.to_string(),
            );
            changed = true;
            if let Some(old) = old_revision.filter(|r| !r.is_empty()) {
                let history = match annotations.get(rollout::REVISION_HISTORY_ANNOTATION) {
                    Some(h) if !h.is_empty() => format!("{h},{old}"),
                    _ => old,
                };
                annotations.insert(rollout::REVISION_HISTORY_ANNOTATION.into(), history);
            }
        }
        if !exists {
            changed |= self.set_replicas_annotations(rs);
        }
        changed
    }

    /// Sets `desired-replicas` and `max-replicas`; returns whether they
    /// changed.
    fn set_replicas_annotations(&self, rs: &mut ReplicaSet) -> bool {
        let replicas = rollout::desired_replicas(&self.d);
        let max = replicas + rollout::fenceposts(&self.d).max_surge;
        let annotations = &mut rs.metadata.annotations;
        let mut changed = false;
        for (key, value) in [
            (rollout::DESIRED_REPLICAS_ANNOTATION, replicas),
            (rollout::MAX_REPLICAS_ANNOTATION, max),
        ] {
            let value = value.to_string();
            if annotations.get(key) != Some(&value) {
                annotations.insert(key.into(), value);
                changed = true;
            }
        }
        changed
    }

    /// Writes the Deployment's revision annotation when it differs.
    async fn set_deployment_revision(&mut self, revision: i64) -> Result<()> {
        let text = revision.to_string();
        let current = self
            .d
            .metadata
            .annotations
            .get(rollout::REVISION_ANNOTATION);
        if current == Some(&text) {
            return Ok(());
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": self.d.metadata.resource_version,
                "annotations": {rollout::REVISION_ANNOTATION: text},
            }
        });
        let status = self.d.status.clone();
        let patched: Deployment = self
            .client()
            .merge_patch(self.d.namespace(), self.d.name(), &patch)
            .await?;
        // Keep any status this sync computed but has not written yet.
        self.d = Deployment { status, ..patched };
        Ok(())
    }

    /// Writes `self.d.status` as it stands.
    async fn write_status(&mut self) -> Result<()> {
        let status = self.d.status.clone();
        let written = self.controller.client.replace_status(&self.d).await?;
        self.d = Deployment { status, ..written };
        Ok(())
    }

    /// Scales a ReplicaSet (and refreshes its replica annotations), records
    /// the event; returns whether its size changed.
    async fn scale(&mut self, rs: &mut ReplicaSet, target: i32) -> Result<bool> {
        let current = rollout::rs_replicas(rs);
        let mut copy = rs.clone();
        let annotations_changed = self.set_replicas_annotations(&mut copy);
        if current == target && !annotations_changed {
            return Ok(false);
        }
        if let Some(spec) = copy.spec.as_mut() {
            spec.replicas = Some(target);
        }
        *rs = self.client().replace(&copy).await?;
        if current == target {
            return Ok(false);
        }
        let direction = if target > current { "up" } else { "down" };
        tracing::info!(
            namespace = rs.namespace(),
            name = rs.name(),
            from = current,
            to = target,
            "scaled replica set"
        );
        let message = format!(
            "Scaled {direction} replica set {} from {current} to {target}",
            rs.name()
        );
        self.controller
            .event(&self.d, "ScalingReplicaSet", &message)
            .await;
        Ok(true)
    }

    async fn rollout_rolling(&mut self, replica_sets: Vec<ReplicaSet>) -> Result<Requeue> {
        let (new, mut old) = self.new_and_old(replica_sets, true).await?;
        let mut new = new.expect("created when missing");

        if self.reconcile_new(&mut new, &old).await? {
            return self.sync_rollout_status(Some(&new), &old).await;
        }
        if self.reconcile_old(&new, &mut old).await? {
            return self.sync_rollout_status(Some(&new), &old).await;
        }
        if rollout::is_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(Some(&new), &old).await
    }

    /// Grows (or trims) the new set as far as the surge allows.
    async fn reconcile_new(&mut self, new: &mut ReplicaSet, old: &[ReplicaSet]) -> Result<bool> {
        let replicas = rollout::desired_replicas(&self.d);
        let current = rollout::rs_replicas(new);
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            return self.scale(new, replicas).await;
        }
        let total = current + old.iter().map(rollout::rs_replicas).sum::<i32>();
        let surge = rollout::fenceposts(&self.d).max_surge;
        let target = rollout::new_rs_target(replicas, surge, total, current);
        self.scale(new, target).await
    }

    /// Shrinks old sets as far as availability allows.
    async fn reconcile_old(&mut self, new: &ReplicaSet, old: &mut [ReplicaSet]) -> Result<bool> {
        let sets: Vec<OldSet> = old
            .iter()
            .map(|rs| OldSet {
                replicas: rollout::rs_replicas(rs),
                available: rollout::rs_available(rs),
            })
            .collect();
        let targets = rollout::old_rs_targets(
            rollout::desired_replicas(&self.d),
            rollout::fenceposts(&self.d).max_unavailable,
            rollout::rs_replicas(new),
            rollout::rs_available(new),
            &sets,
        );
        let mut scaled = false;
        for (rs, target) in old.iter_mut().zip(targets) {
            if rollout::rs_replicas(rs) != target {
                scaled |= self.scale(rs, target).await?;
            }
        }
        Ok(scaled)
    }

    async fn rollout_recreate(&mut self, replica_sets: Vec<ReplicaSet>) -> Result<Requeue> {
        let (new, mut old) = self.new_and_old(replica_sets, false).await?;

        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| rollout::rs_replicas(rs) > 0) {
            scaled_down |= self.scale(rs, 0).await?;
        }
        if scaled_down || self.old_pods_running(&old) {
            return self.sync_rollout_status(new.as_ref(), &old).await;
        }

        let mut new = match new {
            Some(new) => new,
            None => {
                let max_old = old
                    .iter()
                    .map(|rs| rollout::revision_of(&rs.metadata.annotations));
                let revision = max_old.max().unwrap_or(0) + 1;
                self.create_new_replica_set(&old, revision).await?
            }
        };
        let replicas = rollout::desired_replicas(&self.d);
        self.scale(&mut new, replicas).await?;
        if rollout::is_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(Some(&new), &old).await
    }

    /// Whether pods of the old sets still exist and have not finished.
    fn old_pods_running(&self, old: &[ReplicaSet]) -> bool {
        if old.iter().any(|rs| rollout::rs_status_replicas(rs) > 0) {
            return true;
        }
        let pods = &self.controller.caches.pods;
        old.iter().any(|rs| {
            pods.owned_by(rs.metadata.uid()).iter().any(|pod| {
                controller_of(pod.as_ref(), ReplicaSet::KIND)
                    .is_some_and(|c| c.uid == rs.metadata.uid())
                    && !matches!(pod.phase(), "Succeeded" | "Failed")
            })
        })
    }

    /// Scaling only (paused, or the replica count changed mid-rollout).
    async fn scale_only(&mut self, replica_sets: Vec<ReplicaSet>) -> Result<Requeue> {
        let (mut new, mut old) = self.new_and_old(replica_sets, false).await?;
        self.scale_proportionally(new.as_mut(), &mut old).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&old).await?;
        }
        self.sync_status(new.as_ref(), &old).await
    }

    async fn scale_proportionally(
        &mut self,
        mut new: Option<&mut ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> Result<()> {
        let replicas = rollout::desired_replicas(&self.d);
        // One active set (or none): it simply gets the desired count.
        let active_count = old.iter().filter(|rs| rollout::rs_replicas(rs) > 0).count()
            + new.as_ref().is_some_and(|rs| rollout::rs_replicas(rs) > 0) as usize;
        if active_count <= 1 {
            let target: Option<&mut ReplicaSet> = if active_count == 1 {
                match new {
                    Some(rs) if rollout::rs_replicas(rs) > 0 => Some(rs),
                    _ => old.iter_mut().find(|rs| rollout::rs_replicas(rs) > 0),
                }
            } else {
                match new {
                    Some(rs) => Some(rs),
                    None => old.iter_mut().max_by(|a, b| rollout::by_creation(a, b)),
                }
            };
            if let Some(rs) = target
                && rollout::rs_replicas(rs) != replicas
            {
                self.scale(rs, replicas).await?;
            }
            return Ok(());
        }

        // The new set is full and available: the old ones go.
        if let Some(rs) = new.as_deref() {
            let saturated = rollout::rs_replicas(rs) == replicas
                && rollout::rs_available(rs) == replicas
                && rs
                    .metadata
                    .annotations
                    .get(rollout::DESIRED_REPLICAS_ANNOTATION)
                    == Some(&replicas.to_string());
            if saturated {
                for rs in old.iter_mut().filter(|rs| rollout::rs_replicas(rs) > 0) {
                    self.scale(rs, 0).await?;
                }
                return Ok(());
            }
        }
        if rollout::is_recreate(&self.d) {
            return Ok(());
        }

        let mut active: Vec<&mut ReplicaSet> = old
            .iter_mut()
            .filter(|rs| rollout::rs_replicas(rs) > 0)
            .collect();
        if let Some(rs) = new.take()
            && rollout::rs_replicas(rs) > 0
        {
            active.push(rs);
        }
        let sets: Vec<ActiveSet> = active
            .iter()
            .map(|rs| ActiveSet {
                replicas: rollout::rs_replicas(rs),
                max_replicas: rs
                    .metadata
                    .annotations
                    .get(rollout::MAX_REPLICAS_ANNOTATION)
                    .and_then(|v| v.parse().ok()),
                created: rs.metadata.creation_timestamp,
                name: rs.name().to_owned(),
            })
            .collect();
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let surge = rollout::fenceposts(&self.d).max_surge;
        let sizes = rollout::proportional_sizes(replicas, surge, status_replicas, &sets);
        for (rs, size) in active.into_iter().zip(sizes) {
            self.scale(rs, size).await?;
        }
        Ok(())
    }

    /// Deletes old, empty sets beyond `revisionHistoryLimit`, oldest
    /// revision first.
    async fn cleanup(&self, old: &[ReplicaSet]) -> Result<()> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| {
                rollout::rs_replicas(rs) == 0
                    && rs.metadata.deletion_timestamp.is_none()
                    && rs.metadata.generation
                        == rs.status.as_ref().and_then(|s| s.observed_generation)
            })
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit.max(0));
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            rollout::revision_of(&a.metadata.annotations)
                .cmp(&rollout::revision_of(&b.metadata.annotations))
                .then_with(|| rollout::by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(excess as usize) {
            if rollout::rs_status_replicas(rs) != 0 {
                continue;
            }
            let options = DeleteOptions {
                propagation_policy: Some("Background".into()),
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self
                .client()
                .delete::<ReplicaSet>(rs.namespace(), rs.name(), &options)
                .await
            {
                Ok(_) => tracing::info!(
                    namespace = rs.namespace(),
                    name = rs.name(),
                    "deleted old replica set"
                ),
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Pause and resume are shown as an `Unknown` Progressing condition.
    async fn check_paused_conditions(&mut self) -> Result<()> {
        let status = self.d.status.clone().unwrap_or_default();
        let current = status.condition(rollout::PROGRESSING);
        let reason = current.and_then(|c| c.reason.as_deref());
        if reason == Some(rollout::TIMED_OUT) {
            return Ok(());
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let condition = if paused && reason != Some(rollout::PAUSED) {
            rollout::condition(
                rollout::PROGRESSING,
                "Unknown",
                rollout::PAUSED,
                "Deployment is paused",
                Time::now(),
            )
        } else if !paused && reason == Some(rollout::PAUSED) {
            rollout::condition(
                rollout::PROGRESSING,
                "Unknown",
                rollout::RESUMED,
                "Deployment is resumed",
                Time::now(),
            )
        } else {
            return Ok(());
        };
        let mut status = status;
        rollout::set_condition(&mut status, condition);
        self.d.status = Some(status);
        self.write_status().await
    }

    async fn status_only(&mut self, replica_sets: Vec<ReplicaSet>) -> Result<Requeue> {
        let (new, old) = self.new_and_old(replica_sets, false).await?;
        self.sync_status(new.as_ref(), &old).await
    }

    /// Writes the counts and the Available condition.
    async fn sync_status(
        &mut self,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<Requeue> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let status = rollout::calculate_status(&self.d, &all, new, Time::now());
        self.write_if_changed(status).await?;
        Ok(None)
    }

    /// Writes the counts and both conditions; asks to be looked at again when
    /// the progress deadline would pass.
    async fn sync_rollout_status(
        &mut self,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<Requeue> {
        let now = Time::now();
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let mut status = rollout::calculate_status(&self.d, &all, new, now);
        rollout::update_progressing(&self.d, &mut status, new, now);
        let requeue = rollout::until_deadline(&self.d, &status, now)
            .map(|seconds| Duration::from_secs(seconds.max(0) as u64 + 1));
        self.write_if_changed(status).await?;
        Ok(requeue)
    }

    async fn write_if_changed(&mut self, status: crate::api::DeploymentStatus) -> Result<()> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.d.status = Some(status);
        self.write_status().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs_with_desired(replicas: i32, desired: Option<&str>) -> ReplicaSet {
        let mut rs = ReplicaSet::new("default", "web-1");
        rs.spec = Some(crate::api::ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        });
        if let Some(desired) = desired {
            rs.metadata
                .annotations
                .insert(rollout::DESIRED_REPLICAS_ANNOTATION.into(), desired.into());
        }
        rs
    }

    #[test]
    fn a_changed_replica_count_is_a_scaling_event_only_for_active_sets() {
        let mut d = Deployment::new("default", "web");
        d.spec = Some(crate::api::DeploymentSpec {
            replicas: Some(5),
            ..Default::default()
        });
        assert!(is_scaling_event(&d, &[rs_with_desired(3, Some("3"))]));
        assert!(!is_scaling_event(&d, &[rs_with_desired(5, Some("5"))]));
        assert!(!is_scaling_event(&d, &[rs_with_desired(0, Some("3"))]));
        assert!(!is_scaling_event(&d, &[rs_with_desired(3, None)]));
    }

    #[test]
    fn an_empty_selector_selects_nothing() {
        let mut d = Deployment::new("default", "web");
        d.spec = Some(Default::default());
        assert!(deployment_selector(&d).is_none());
    }
}
