//! The Kubernetes JSON form of a pod and its template: containers, probes,
//! lifecycle hooks, environment, volumes and security contexts.

use super::*;

impl Json for core_v1::Pod {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Pod {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec }, unsupported { "status": status })
    }
}

impl Json for core_v1::PodTemplateSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodTemplateSpec { metadata, spec } = self;
        object!(at, { "metadata": metadata, "spec": spec })
    }
}

impl Json for core_v1::PodSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSpec {
            volumes,
            init_containers,
            containers,
            ephemeral_containers,
            restart_policy,
            termination_grace_period_seconds,
            active_deadline_seconds,
            dns_policy,
            node_selector,
            service_account_name,
            service_account,
            automount_service_account_token,
            node_name,
            host_network,
            host_pid,
            host_ipc,
            share_process_namespace,
            security_context,
            image_pull_secrets,
            hostname,
            subdomain,
            affinity,
            scheduler_name,
            tolerations,
            host_aliases,
            priority_class_name,
            priority,
            dns_config,
            readiness_gates,
            runtime_class_name,
            enable_service_links,
            preemption_policy,
            overhead,
            topology_spread_constraints,
            set_hostname_as_fqdn,
            os,
            host_users,
            scheduling_gates,
            resource_claims,
            resources,
            hostname_override,
            workload_ref,
        } = self;
        // Upstream JSON always has the containers list, even when empty.
        let containers = containers.json(&child(at, "containers"))?;
        let containers = if containers.is_null() {
            Value::Array(Vec::new())
        } else {
            containers
        };
        object!(at, {
            "volumes": volumes, "initContainers": init_containers, "containers": Raw(containers),
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": termination_grace_period_seconds,
            "activeDeadlineSeconds": active_deadline_seconds, "dnsPolicy": dns_policy,
            "nodeSelector": node_selector, "serviceAccountName": service_account_name,
            "serviceAccount": service_account,
            "automountServiceAccountToken": automount_service_account_token,
            "nodeName": node_name, "hostNetwork": OmitZero(host_network),
            "hostPID": OmitZero(host_pid), "hostIPC": OmitZero(host_ipc),
            "shareProcessNamespace": share_process_namespace,
            "securityContext": security_context, "imagePullSecrets": image_pull_secrets,
            "hostname": hostname, "hostnameOverride": hostname_override,
            "subdomain": subdomain, "schedulerName": scheduler_name,
            "tolerations": tolerations, "priorityClassName": priority_class_name,
            "priority": priority, "readinessGates": readiness_gates,
            "runtimeClassName": runtime_class_name,
            "enableServiceLinks": enable_service_links, "preemptionPolicy": preemption_policy,
            "overhead": overhead, "setHostnameAsFQDN": set_hostname_as_fqdn, "os": os,
            "hostUsers": host_users, "schedulingGates": scheduling_gates,
            "resources": resources,
        }, unsupported {
            "ephemeralContainers": ephemeral_containers, "affinity": affinity,
            "hostAliases": host_aliases, "dnsConfig": dns_config,
            "topologySpreadConstraints": topology_spread_constraints,
            "resourceClaims": resource_claims, "workloadRef": workload_ref,
        })
    }
}

impl Json for core_v1::Container {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Container {
            name,
            image,
            command,
            args,
            working_dir,
            ports,
            env_from,
            env,
            resources,
            resize_policy,
            restart_policy,
            restart_policy_rules,
            volume_mounts,
            volume_devices,
            liveness_probe,
            readiness_probe,
            startup_probe,
            lifecycle,
            termination_message_path,
            termination_message_policy,
            image_pull_policy,
            security_context,
            stdin,
            stdin_once,
            tty,
        } = self;
        object!(at, {
            "name": name, "image": image, "command": command, "args": args,
            "workingDir": working_dir, "ports": ports, "envFrom": env_from, "env": env,
            "resources": resources, "restartPolicy": restart_policy,
            "volumeMounts": volume_mounts, "livenessProbe": liveness_probe,
            "readinessProbe": readiness_probe, "startupProbe": startup_probe,
            "lifecycle": lifecycle, "terminationMessagePath": termination_message_path,
            "terminationMessagePolicy": termination_message_policy,
            "imagePullPolicy": image_pull_policy, "securityContext": security_context,
            "stdin": OmitZero(stdin), "stdinOnce": OmitZero(stdin_once), "tty": OmitZero(tty),
        }, unsupported {
            "resizePolicy": resize_policy, "restartPolicyRules": restart_policy_rules,
            "volumeDevices": volume_devices,
        })
    }
}

impl Json for core_v1::ContainerPort {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ContainerPort {
            name,
            host_port,
            container_port,
            protocol,
            host_ip,
        } = self;
        object!(at, {
            "name": name, "hostPort": OmitZero(host_port), "containerPort": container_port,
            "protocol": protocol, "hostIP": host_ip,
        })
    }
}

impl Json for core_v1::EnvVar {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvVar {
            name,
            value,
            value_from,
        } = self;
        object!(at, { "name": name, "value": value, "valueFrom": value_from })
    }
}

impl Json for core_v1::EnvVarSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvVarSource {
            field_ref,
            resource_field_ref,
            config_map_key_ref,
            secret_key_ref,
            file_key_ref,
        } = self;
        object!(at, {
            "fieldRef": field_ref, "resourceFieldRef": resource_field_ref,
            "configMapKeyRef": config_map_key_ref, "secretKeyRef": secret_key_ref,
        }, unsupported { "fileKeyRef": file_key_ref })
    }
}

impl Json for core_v1::ObjectFieldSelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ObjectFieldSelector {
            api_version,
            field_path,
        } = self;
        object!(at, { "apiVersion": api_version, "fieldPath": field_path })
    }
}

impl Json for core_v1::ResourceFieldSelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ResourceFieldSelector {
            container_name,
            resource,
            divisor,
        } = self;
        object!(at, { "containerName": container_name, "resource": resource, "divisor": divisor })
    }
}

/// The `name` of an embedded `LocalObjectReference`, inlined in JSON.
fn local_name(reference: Option<core_v1::LocalObjectReference>) -> Option<String> {
    reference.and_then(|r| r.name)
}

impl Json for core_v1::ConfigMapKeySelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "key": key, "optional": optional,
        })
    }
}

impl Json for core_v1::SecretKeySelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "key": key, "optional": optional,
        })
    }
}

impl Json for core_v1::EnvFromSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvFromSource {
            prefix,
            config_map_ref,
            secret_ref,
        } = self;
        object!(at, { "prefix": prefix, "configMapRef": config_map_ref, "secretRef": secret_ref })
    }
}

impl Json for core_v1::ConfigMapEnvSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapEnvSource {
            local_object_reference,
            optional,
        } = self;
        object!(at, { "name": local_name(local_object_reference), "optional": optional })
    }
}

impl Json for core_v1::SecretEnvSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretEnvSource {
            local_object_reference,
            optional,
        } = self;
        object!(at, { "name": local_name(local_object_reference), "optional": optional })
    }
}

impl Json for core_v1::LocalObjectReference {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::LocalObjectReference { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::ResourceRequirements {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ResourceRequirements {
            limits,
            requests,
            claims,
        } = self;
        object!(at, { "limits": limits, "requests": requests }, unsupported { "claims": claims })
    }
}

impl Json for core_v1::VolumeMount {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::VolumeMount {
            name,
            read_only,
            recursive_read_only,
            mount_path,
            sub_path,
            mount_propagation,
            sub_path_expr,
        } = self;
        object!(at, {
            "name": name, "readOnly": OmitZero(read_only), "recursiveReadOnly": recursive_read_only,
            "mountPath": mount_path, "subPath": sub_path,
            "mountPropagation": mount_propagation, "subPathExpr": sub_path_expr,
        })
    }
}

impl Json for core_v1::Volume {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Volume {
            name,
            volume_source,
        } = self;
        // The volume source is inlined beside the name in JSON.
        let mut object = volume_source.unwrap_or_default().json(at)?;
        if let (Value::Object(map), Some(name)) = (&mut object, name) {
            map.insert("name".into(), Value::String(name));
        }
        Ok(object)
    }
}

impl Json for core_v1::VolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::VolumeSource {
            host_path,
            empty_dir,
            gce_persistent_disk,
            aws_elastic_block_store,
            git_repo,
            secret,
            nfs,
            iscsi,
            glusterfs,
            persistent_volume_claim,
            rbd,
            flex_volume,
            cinder,
            cephfs,
            flocker,
            downward_api,
            fc,
            azure_file,
            config_map,
            vsphere_volume,
            quobyte,
            azure_disk,
            photon_persistent_disk,
            projected,
            portworx_volume,
            scale_io,
            storageos,
            csi,
            ephemeral,
            image,
        } = self;
        object!(at, {
            "hostPath": host_path, "emptyDir": empty_dir, "secret": secret,
            "persistentVolumeClaim": persistent_volume_claim, "configMap": config_map,
        }, unsupported {
            "gcePersistentDisk": gce_persistent_disk,
            "awsElasticBlockStore": aws_elastic_block_store, "gitRepo": git_repo, "nfs": nfs,
            "iscsi": iscsi, "glusterfs": glusterfs, "rbd": rbd, "flexVolume": flex_volume,
            "cinder": cinder, "cephfs": cephfs, "flocker": flocker,
            "downwardAPI": downward_api, "fc": fc, "azureFile": azure_file,
            "vsphereVolume": vsphere_volume, "quobyte": quobyte, "azureDisk": azure_disk,
            "photonPersistentDisk": photon_persistent_disk, "projected": projected,
            "portworxVolume": portworx_volume, "scaleIO": scale_io, "storageos": storageos,
            "csi": csi, "ephemeral": ephemeral, "image": image,
        })
    }
}

impl Json for core_v1::HostPathVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HostPathVolumeSource { path, r#type } = self;
        object!(at, { "path": path, "type": r#type })
    }
}

impl Json for core_v1::EmptyDirVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EmptyDirVolumeSource { medium, size_limit } = self;
        object!(at, { "medium": medium, "sizeLimit": size_limit })
    }
}

impl Json for core_v1::ConfigMapVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapVolumeSource {
            local_object_reference,
            items,
            default_mode,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "items": items,
            "defaultMode": default_mode, "optional": optional,
        })
    }
}

impl Json for core_v1::SecretVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretVolumeSource {
            secret_name,
            items,
            default_mode,
            optional,
        } = self;
        object!(at, {
            "secretName": secret_name, "items": items, "defaultMode": default_mode,
            "optional": optional,
        })
    }
}

impl Json for core_v1::KeyToPath {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::KeyToPath { key, path, mode } = self;
        object!(at, { "key": key, "path": path, "mode": mode })
    }
}

impl Json for core_v1::PersistentVolumeClaimVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PersistentVolumeClaimVolumeSource {
            claim_name,
            read_only,
        } = self;
        object!(at, { "claimName": claim_name, "readOnly": OmitZero(read_only) })
    }
}

impl Json for core_v1::Toleration {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Toleration {
            key,
            operator,
            value,
            effect,
            toleration_seconds,
        } = self;
        object!(at, {
            "key": key, "operator": operator, "value": value, "effect": effect,
            "tolerationSeconds": toleration_seconds,
        })
    }
}

impl Json for core_v1::Probe {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Probe {
            handler,
            initial_delay_seconds,
            timeout_seconds,
            period_seconds,
            success_threshold,
            failure_threshold,
            termination_grace_period_seconds,
        } = self;
        // The handler's actions are inlined beside the timings in JSON.
        let mut object = handler.unwrap_or_default().json(at)?;
        let timings: Value = object!(at, {
            "initialDelaySeconds": OmitZero(initial_delay_seconds),
            "timeoutSeconds": OmitZero(timeout_seconds),
            "periodSeconds": OmitZero(period_seconds),
            "successThreshold": OmitZero(success_threshold),
            "failureThreshold": OmitZero(failure_threshold),
            "terminationGracePeriodSeconds": termination_grace_period_seconds,
        })?;
        if let (Value::Object(map), Value::Object(timings)) = (&mut object, timings) {
            map.extend(timings);
        }
        Ok(object)
    }
}

impl Json for core_v1::ProbeHandler {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ProbeHandler {
            exec,
            http_get,
            tcp_socket,
            grpc,
        } = self;
        object!(at, { "exec": exec, "httpGet": http_get, "tcpSocket": tcp_socket, "grpc": grpc })
    }
}

impl Json for core_v1::ExecAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ExecAction { command } = self;
        object!(at, { "command": command })
    }
}

impl Json for core_v1::HttpGetAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HttpGetAction {
            path,
            port,
            host,
            scheme,
            http_headers,
        } = self;
        object!(at, {
            "path": path, "port": port, "host": host, "scheme": scheme,
            "httpHeaders": http_headers,
        })
    }
}

impl Json for core_v1::HttpHeader {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HttpHeader { name, value } = self;
        object!(at, { "name": name, "value": value })
    }
}

impl Json for core_v1::TcpSocketAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::TcpSocketAction { port, host } = self;
        object!(at, { "port": port, "host": host })
    }
}

impl Json for core_v1::GrpcAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::GrpcAction { port, service } = self;
        object!(at, { "port": port, "service": service })
    }
}

impl Json for core_v1::Lifecycle {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Lifecycle {
            post_start,
            pre_stop,
            stop_signal,
        } = self;
        object!(at, { "postStart": post_start, "preStop": pre_stop, "stopSignal": stop_signal })
    }
}

impl Json for core_v1::LifecycleHandler {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::LifecycleHandler {
            exec,
            http_get,
            tcp_socket,
            sleep,
        } = self;
        object!(at, {
            "exec": exec, "httpGet": http_get, "tcpSocket": tcp_socket, "sleep": sleep,
        })
    }
}

impl Json for core_v1::SleepAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SleepAction { seconds } = self;
        object!(at, { "seconds": seconds })
    }
}

impl Json for core_v1::SecurityContext {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecurityContext {
            capabilities,
            privileged,
            se_linux_options,
            windows_options,
            run_as_user,
            run_as_group,
            run_as_non_root,
            read_only_root_filesystem,
            allow_privilege_escalation,
            proc_mount,
            seccomp_profile,
            app_armor_profile,
        } = self;
        object!(at, {
            "capabilities": capabilities, "privileged": privileged, "runAsUser": run_as_user,
            "runAsGroup": run_as_group, "runAsNonRoot": run_as_non_root,
            "readOnlyRootFilesystem": read_only_root_filesystem,
            "allowPrivilegeEscalation": allow_privilege_escalation, "procMount": proc_mount,
        }, unsupported {
            "seLinuxOptions": se_linux_options, "windowsOptions": windows_options,
            "seccompProfile": seccomp_profile, "appArmorProfile": app_armor_profile,
        })
    }
}

impl Json for core_v1::Capabilities {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Capabilities { add, drop } = self;
        object!(at, { "add": add, "drop": drop })
    }
}

impl Json for core_v1::PodSecurityContext {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSecurityContext {
            se_linux_options,
            windows_options,
            run_as_user,
            run_as_group,
            run_as_non_root,
            supplemental_groups,
            supplemental_groups_policy,
            fs_group,
            sysctls,
            fs_group_change_policy,
            seccomp_profile,
            app_armor_profile,
            se_linux_change_policy,
        } = self;
        object!(at, {
            "runAsUser": run_as_user, "runAsGroup": run_as_group,
            "runAsNonRoot": run_as_non_root, "supplementalGroups": supplemental_groups,
            "supplementalGroupsPolicy": supplemental_groups_policy, "fsGroup": fs_group,
            "fsGroupChangePolicy": fs_group_change_policy,
            "seLinuxChangePolicy": se_linux_change_policy,
        }, unsupported {
            "seLinuxOptions": se_linux_options, "windowsOptions": windows_options,
            "sysctls": sysctls, "seccompProfile": seccomp_profile,
            "appArmorProfile": app_armor_profile,
        })
    }
}

impl Json for core_v1::PodOs {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodOs { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::PodSchedulingGate {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSchedulingGate { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::PodReadinessGate {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodReadinessGate { condition_type } = self;
        object!(at, { "conditionType": condition_type })
    }
}
