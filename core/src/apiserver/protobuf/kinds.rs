//! The Kubernetes JSON form of the non-pod kinds: v1 Namespace, Node,
//! Event and Binding; apps/v1 Deployment and ReplicaSet;
//! coordination.k8s.io/v1 Lease; autoscaling/v1 Scale; policy/v1 Eviction.

use super::*;

// ---- core/v1: Namespace, Node, Event, Binding ----

impl Json for core_v1::Namespace {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Namespace {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for core_v1::NamespaceSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NamespaceSpec { finalizers } = self;
        object!(at, { "finalizers": finalizers })
    }
}

impl Json for core_v1::NamespaceStatus {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NamespaceStatus { phase, conditions } = self;
        object!(at, { "phase": phase }, unsupported { "conditions": conditions })
    }
}

impl Json for core_v1::Node {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Node {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for core_v1::NodeSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeSpec {
            pod_cidr,
            pod_cid_rs,
            provider_id,
            unschedulable,
            taints,
            config_source,
            external_id,
        } = self;
        object!(at, {
            "podCIDR": pod_cidr, "podCIDRs": pod_cid_rs, "providerID": provider_id,
            "unschedulable": OmitZero(unschedulable), "taints": taints, "externalID": external_id,
        }, unsupported { "configSource": config_source })
    }
}

impl Json for core_v1::Taint {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Taint {
            key,
            value,
            effect,
            time_added,
        } = self;
        object!(at, { "key": key, "value": value, "effect": effect, "timeAdded": time_added })
    }
}

impl Json for core_v1::NodeStatus {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeStatus {
            capacity,
            allocatable,
            phase,
            conditions,
            addresses,
            daemon_endpoints,
            node_info,
            images,
            volumes_in_use,
            volumes_attached,
            config,
            runtime_handlers,
            features,
            declared_features,
        } = self;
        object!(at, {
            "capacity": capacity, "allocatable": allocatable, "phase": phase,
            "conditions": conditions, "addresses": addresses,
            "daemonEndpoints": daemon_endpoints, "nodeInfo": node_info, "images": images,
            "volumesInUse": volumes_in_use, "volumesAttached": volumes_attached,
            "declaredFeatures": declared_features,
        }, unsupported {
            "config": config, "runtimeHandlers": runtime_handlers, "features": features,
        })
    }
}

impl Json for core_v1::NodeCondition {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeCondition {
            r#type,
            status,
            last_heartbeat_time,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastHeartbeatTime": last_heartbeat_time,
            "lastTransitionTime": last_transition_time, "reason": reason, "message": message,
        })
    }
}

impl Json for core_v1::NodeAddress {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeAddress { r#type, address } = self;
        object!(at, { "type": r#type, "address": address })
    }
}

impl Json for core_v1::NodeDaemonEndpoints {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeDaemonEndpoints { kubelet_endpoint } = self;
        object!(at, { "kubeletEndpoint": kubelet_endpoint })
    }
}

impl Json for core_v1::DaemonEndpoint {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::DaemonEndpoint { port } = self;
        // Upstream spells this one field with a capital letter.
        object!(at, { "Port": port })
    }
}

impl Json for core_v1::NodeSystemInfo {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeSystemInfo {
            machine_id,
            system_uuid,
            boot_id,
            kernel_version,
            os_image,
            container_runtime_version,
            kubelet_version,
            kube_proxy_version,
            operating_system,
            architecture,
            swap,
        } = self;
        object!(at, {
            "machineID": machine_id, "systemUUID": system_uuid, "bootID": boot_id,
            "kernelVersion": kernel_version, "osImage": os_image,
            "containerRuntimeVersion": container_runtime_version,
            "kubeletVersion": kubelet_version, "kubeProxyVersion": kube_proxy_version,
            "operatingSystem": operating_system, "architecture": architecture,
        }, unsupported { "swap": swap })
    }
}

impl Json for core_v1::ContainerImage {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ContainerImage { names, size_bytes } = self;
        object!(at, { "names": names, "sizeBytes": OmitZero(size_bytes) })
    }
}

impl Json for core_v1::AttachedVolume {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::AttachedVolume { name, device_path } = self;
        object!(at, { "name": name, "devicePath": device_path })
    }
}

impl Json for core_v1::ObjectReference {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ObjectReference {
            kind,
            namespace,
            name,
            uid,
            api_version,
            resource_version,
            field_path,
        } = self;
        object!(at, {
            "kind": kind, "namespace": namespace, "name": name, "uid": uid,
            "apiVersion": api_version, "resourceVersion": resource_version,
            "fieldPath": field_path,
        })
    }
}

impl Json for core_v1::Event {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Event {
            metadata,
            involved_object,
            reason,
            message,
            source,
            first_timestamp,
            last_timestamp,
            count,
            r#type,
            event_time,
            series,
            action,
            related,
            reporting_component,
            reporting_instance,
        } = self;
        object!(at, {
            "metadata": metadata, "involvedObject": involved_object, "reason": reason,
            "message": message, "source": source, "firstTimestamp": first_timestamp,
            "lastTimestamp": last_timestamp, "count": OmitZero(count), "type": r#type,
            "eventTime": event_time, "series": series, "action": action, "related": related,
            "reportingComponent": reporting_component, "reportingInstance": reporting_instance,
        })
    }
}

impl Json for core_v1::EventSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EventSource { component, host } = self;
        object!(at, { "component": component, "host": host })
    }
}

impl Json for core_v1::EventSeries {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EventSeries {
            count,
            last_observed_time,
        } = self;
        object!(at, { "count": OmitZero(count), "lastObservedTime": last_observed_time })
    }
}

impl Json for core_v1::Binding {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Binding { metadata, target } = self;
        object!(at, { "metadata": metadata, "target": target })
    }
}

// ---- apps/v1 ----

impl Json for apps::Deployment {
    fn json(self, at: &str) -> Result<Value> {
        let apps::Deployment {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for apps::DeploymentSpec {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentSpec {
            replicas,
            selector,
            template,
            strategy,
            min_ready_seconds,
            revision_history_limit,
            paused,
            progress_deadline_seconds,
        } = self;
        object!(at, {
            "replicas": replicas, "selector": selector, "template": template,
            "strategy": strategy, "minReadySeconds": OmitZero(min_ready_seconds),
            "revisionHistoryLimit": revision_history_limit, "paused": OmitZero(paused),
            "progressDeadlineSeconds": progress_deadline_seconds,
        })
    }
}

impl Json for apps::DeploymentStrategy {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentStrategy {
            r#type,
            rolling_update,
        } = self;
        object!(at, { "type": r#type, "rollingUpdate": rolling_update })
    }
}

impl Json for apps::RollingUpdateDeployment {
    fn json(self, at: &str) -> Result<Value> {
        let apps::RollingUpdateDeployment {
            max_unavailable,
            max_surge,
        } = self;
        object!(at, { "maxUnavailable": max_unavailable, "maxSurge": max_surge })
    }
}

impl Json for apps::DeploymentStatus {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentStatus {
            observed_generation,
            replicas,
            updated_replicas,
            ready_replicas,
            available_replicas,
            unavailable_replicas,
            terminating_replicas,
            conditions,
            collision_count,
        } = self;
        object!(at, {
            "observedGeneration": OmitZero(observed_generation),
            "replicas": OmitZero(replicas), "updatedReplicas": OmitZero(updated_replicas),
            "readyReplicas": OmitZero(ready_replicas),
            "availableReplicas": OmitZero(available_replicas),
            "unavailableReplicas": OmitZero(unavailable_replicas),
            "terminatingReplicas": terminating_replicas, "conditions": conditions,
            "collisionCount": collision_count,
        })
    }
}

impl Json for apps::DeploymentCondition {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentCondition {
            r#type,
            status,
            last_update_time,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastUpdateTime": last_update_time,
            "lastTransitionTime": last_transition_time, "reason": reason, "message": message,
        })
    }
}

impl Json for apps::ReplicaSet {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSet {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for apps::ReplicaSetSpec {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetSpec {
            replicas,
            min_ready_seconds,
            selector,
            template,
        } = self;
        object!(at, {
            "replicas": replicas, "minReadySeconds": OmitZero(min_ready_seconds),
            "selector": selector,
            "template": template,
        })
    }
}

impl Json for apps::ReplicaSetStatus {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetStatus {
            replicas,
            fully_labeled_replicas,
            ready_replicas,
            available_replicas,
            terminating_replicas,
            observed_generation,
            conditions,
        } = self;
        object!(at, {
            "replicas": replicas, "fullyLabeledReplicas": OmitZero(fully_labeled_replicas),
            "readyReplicas": OmitZero(ready_replicas),
            "availableReplicas": OmitZero(available_replicas),
            "terminatingReplicas": terminating_replicas,
            "observedGeneration": OmitZero(observed_generation), "conditions": conditions,
        })
    }
}

impl Json for apps::ReplicaSetCondition {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetCondition {
            r#type,
            status,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastTransitionTime": last_transition_time,
            "reason": reason, "message": message,
        })
    }
}

// ---- coordination.k8s.io/v1, autoscaling/v1, policy/v1 ----

impl Json for coordination::Lease {
    fn json(self, at: &str) -> Result<Value> {
        let coordination::Lease { metadata, spec } = self;
        object!(at, { "metadata": metadata, "spec": spec })
    }
}

impl Json for coordination::LeaseSpec {
    fn json(self, at: &str) -> Result<Value> {
        let coordination::LeaseSpec {
            holder_identity,
            lease_duration_seconds,
            acquire_time,
            renew_time,
            lease_transitions,
            strategy,
            preferred_holder,
        } = self;
        object!(at, {
            "holderIdentity": holder_identity, "leaseDurationSeconds": lease_duration_seconds,
            "acquireTime": acquire_time, "renewTime": renew_time,
            "leaseTransitions": lease_transitions, "strategy": strategy,
            "preferredHolder": preferred_holder,
        })
    }
}

impl Json for autoscaling::Scale {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::Scale {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for autoscaling::ScaleSpec {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::ScaleSpec { replicas } = self;
        object!(at, { "replicas": OmitZero(replicas) })
    }
}

impl Json for autoscaling::ScaleStatus {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::ScaleStatus { replicas, selector } = self;
        object!(at, { "replicas": replicas, "selector": selector })
    }
}

impl Json for policy::Eviction {
    fn json(self, at: &str) -> Result<Value> {
        let policy::Eviction {
            metadata,
            delete_options,
        } = self;
        object!(at, { "metadata": metadata, "deleteOptions": delete_options })
    }
}
