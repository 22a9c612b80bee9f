//! Decoding protobuf bodies built with the `k8s-pb` types themselves, as
//! client-go would encode them.

use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
use serde_json::json;

use super::*;
use crate::apiserver::registry;

/// What client-go sends: the magic, then the object in an envelope.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Metadata as Go writes it: every string field, empty or not, and an
/// empty creation timestamp.
fn go_metadata(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: BTreeMap::from([("app".to_string(), "d".to_string())]),
        ..Default::default()
    })
}

fn normalizes_without_unknown_fields(group: &str, plural: &str, object: &Value) {
    let info = registry::lookup(group, "v1", plural).expect("a served kind");
    let normalized = (info.normalize)(object).expect("decodes into the kind");
    assert_eq!(
        registry::unknown_fields(object, &normalized),
        Vec::<String>::new()
    );
}

fn container(name: &str, image: &str) -> core_v1::Container {
    core_v1::Container {
        name: Some(name.into()),
        image: Some(image.into()),
        working_dir: Some(String::new()),
        resources: Some(core_v1::ResourceRequirements::default()),
        termination_message_path: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        ..Default::default()
    }
}

#[test]
fn a_namespace_from_kubectl_create_becomes_its_json() {
    let namespace = core_v1::Namespace {
        metadata: go_metadata("proto-x"),
        spec: Some(core_v1::NamespaceSpec::default()),
        status: Some(core_v1::NamespaceStatus {
            phase: Some(String::new()),
            conditions: Vec::new(),
        }),
    };
    let body = envelope("v1", "Namespace", &namespace);
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "proto-x", "labels": {"app": "d"}},
               "spec": {}, "status": {}})
    );
}

#[test]
fn a_deployment_from_kubectl_create_keeps_its_template_and_selector() {
    let labels = BTreeMap::from([("app".to_string(), "d".to_string())]);
    let mut web = container("web", "coxswain/web:0.1");
    web.ports = vec![core_v1::ContainerPort {
        container_port: Some(80),
        host_port: Some(0),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    let deployment = apps::Deployment {
        metadata: go_metadata("d"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            }),
            template: Some(core_v1::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core_v1::PodSpec {
                    containers: vec![web],
                    restart_policy: Some(String::new()),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("25%".into()),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: Some(String::new()),
                    }),
                }),
            }),
            min_ready_seconds: Some(0),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(object["apiVersion"], "apps/v1");
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(
        object["spec"]["selector"],
        json!({"matchLabels": {"app": "d"}})
    );
    assert_eq!(
        object["spec"]["strategy"]["rollingUpdate"],
        json!({"maxUnavailable": "25%", "maxSurge": 1})
    );
    assert_eq!(
        object["spec"]["template"],
        json!({"metadata": {"labels": {"app": "d"}},
               "spec": {"containers": [{
                   "name": "web", "image": "coxswain/web:0.1", "resources": {},
                   "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}})
    );
    normalizes_without_unknown_fields("apps", "deployments", &object);
}

#[test]
fn zero_replicas_are_kept_and_zeros_of_non_pointer_fields_are_left_out() {
    let deployment = apps::Deployment {
        metadata: go_metadata("d"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(object["spec"], json!({"replicas": 0}));
    assert_eq!(object["metadata"].get("generation"), None);
}

#[test]
fn a_pod_with_probes_env_and_volumes_decodes_to_fields_the_pod_type_knows() {
    let mut web = container("web", "coxswain/web:0.1");
    web.liveness_probe = Some(core_v1::Probe {
        handler: Some(core_v1::ProbeHandler {
            http_get: Some(core_v1::HttpGetAction {
                path: Some("/healthz".into()),
                port: Some(IntOrString {
                    r#type: Some(1),
                    int_val: None,
                    str_val: Some("http".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        period_seconds: Some(5),
        ..Default::default()
    });
    web.lifecycle = Some(core_v1::Lifecycle {
        pre_stop: Some(core_v1::LifecycleHandler {
            sleep: Some(core_v1::SleepAction { seconds: Some(3) }),
            ..Default::default()
        }),
        ..Default::default()
    });
    web.env = vec![
        core_v1::EnvVar {
            name: Some("NODE".into()),
            value: Some(String::new()),
            value_from: Some(core_v1::EnvVarSource {
                field_ref: Some(core_v1::ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: Some("spec.nodeName".into()),
                }),
                ..Default::default()
            }),
        },
        core_v1::EnvVar {
            name: Some("MODE".into()),
            value: None,
            value_from: Some(core_v1::EnvVarSource {
                config_map_key_ref: Some(core_v1::ConfigMapKeySelector {
                    local_object_reference: Some(core_v1::LocalObjectReference {
                        name: Some("cfg".into()),
                    }),
                    key: Some("mode".into()),
                    optional: None,
                }),
                ..Default::default()
            }),
        },
    ];
    web.resources = Some(core_v1::ResourceRequirements {
        limits: BTreeMap::from([(
            "memory".to_string(),
            Quantity {
                string: Some("64Mi".into()),
            },
        )]),
        ..Default::default()
    });
    web.volume_mounts = vec![core_v1::VolumeMount {
        name: Some("scratch".into()),
        mount_path: Some("/scratch".into()),
        ..Default::default()
    }];
    web.security_context = Some(core_v1::SecurityContext {
        capabilities: Some(core_v1::Capabilities {
            add: vec!["NET_ADMIN".into()],
            drop: Vec::new(),
        }),
        ..Default::default()
    });
    let volume = |name: &str, source: core_v1::VolumeSource| core_v1::Volume {
        name: Some(name.into()),
        volume_source: Some(source),
    };
    let pod = core_v1::Pod {
        metadata: go_metadata("web"),
        spec: Some(core_v1::PodSpec {
            containers: vec![web],
            volumes: vec![
                volume(
                    "scratch",
                    core_v1::VolumeSource {
                        empty_dir: Some(core_v1::EmptyDirVolumeSource::default()),
                        ..Default::default()
                    },
                ),
                volume(
                    "cfg",
                    core_v1::VolumeSource {
                        config_map: Some(core_v1::ConfigMapVolumeSource {
                            local_object_reference: Some(core_v1::LocalObjectReference {
                                name: Some("cfg".into()),
                            }),
                            default_mode: Some(420),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ],
            tolerations: vec![core_v1::Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
        status: Some(core_v1::PodStatus::default()),
    };
    let object = decode(&envelope("v1", "Pod", &pod)).unwrap();
    let web = &object["spec"]["containers"][0];
    assert_eq!(
        web["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5})
    );
    assert_eq!(
        web["lifecycle"],
        json!({"preStop": {"sleep": {"seconds": 3}}})
    );
    assert_eq!(
        web["env"][1],
        json!({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                 "key": "mode"}}})
    );
    assert_eq!(web["resources"], json!({"limits": {"memory": "64Mi"}}));
    assert_eq!(
        object["spec"]["volumes"],
        json!([{"name": "scratch", "emptyDir": {}},
               {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}])
    );
    assert_eq!(object.get("status"), None);
    normalizes_without_unknown_fields("", "pods", &object);
}

#[test]
fn delete_options_from_kubectl_drain_read_as_the_api_type() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: Some("u-1".into()),
            resource_version: None,
        }),
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let object = decode(&envelope("v1", "DeleteOptions", &options)).unwrap();
    assert_eq!(
        object,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
               "preconditions": {"uid": "u-1"}, "propagationPolicy": "Background"})
    );
    let typed: crate::api::DeleteOptions = serde_json::from_value(object).unwrap();
    assert_eq!(typed.grace_period_seconds, Some(0));
    assert_eq!(typed.propagation_policy.as_deref(), Some("Background"));
}

#[test]
fn an_eviction_carries_its_delete_options() {
    let eviction = policy::Eviction {
        metadata: go_metadata("web"),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(5),
            ..Default::default()
        }),
    };
    let object = decode(&envelope("policy/v1", "Eviction", &eviction)).unwrap();
    assert_eq!(object["kind"], "Eviction");
    assert_eq!(object["deleteOptions"], json!({"gracePeriodSeconds": 5}));
}

#[test]
fn times_have_seconds_and_micro_times_have_microseconds() {
    let event = core_v1::Event {
        metadata: go_metadata("web.1"),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_780_000_000),
            nanos: Some(0),
        }),
        last_timestamp: Some(meta::Time::default()),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_780_000_000),
            nanos: Some(123_456_789),
        }),
        count: Some(2),
        ..Default::default()
    };
    let object = decode(&envelope("v1", "Event", &event)).unwrap();
    assert_eq!(object["firstTimestamp"], "2026-05-28T20:26:40Z");
    assert_eq!(object.get("lastTimestamp"), None);
    assert_eq!(object["eventTime"], "2026-05-28T20:26:40.123456Z");
    assert_eq!(object["count"], 2);
    normalizes_without_unknown_fields("", "events", &object);
}

#[test]
fn a_field_the_converter_does_not_carry_is_refused_by_name() {
    let pod = core_v1::Pod {
        metadata: go_metadata("web"),
        spec: Some(core_v1::PodSpec {
            containers: vec![container("web", "coxswain/web:0.1")],
            affinity: Some(core_v1::Affinity {
                node_affinity: Some(core_v1::NodeAffinity::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let error = decode(&envelope("v1", "Pod", &pod)).unwrap_err();
    assert!(
        matches!(&error, ProtobufError::UnsupportedField { field } if field == "spec.affinity"),
        "{error}"
    );
}

#[test]
fn bodies_without_the_prefix_or_of_unknown_kinds_are_refused() {
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::MissingMagic)
    ));
    let body = envelope("v1", "Secret", &core_v1::Secret::default());
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::UnknownKind { kind, .. }) if kind == "Secret"
    ));
    let mut truncated = envelope("v1", "Namespace", &core_v1::Namespace::default());
    truncated.push(0x0a);
    let error: crate::apiserver::ApiError = decode(&truncated).unwrap_err().into();
    assert!(
        error
            .to_string()
            .starts_with("the protobuf body could not be decoded")
    );
}

#[test]
fn the_media_type_is_recognised_with_parameters() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=binary"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf(""));
}
