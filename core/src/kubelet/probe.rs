//! Container probes (`livenessProbe`, `readinessProbe`, `startupProbe`) as
//! the upstream prober runs them.
//!
//! Contract: a probe runs no sooner than `initialDelaySeconds` after its
//! container started and then every `periodSeconds`; each run that takes
//! longer than `timeoutSeconds` fails. A probe's result turns to success
//! after `successThreshold` successes in a row and to failure after
//! `failureThreshold` failures in a row; before its first verdict a
//! readiness or startup probe counts as failed, a liveness probe as passed.
//! While a startup probe has not succeeded the other two do not run.
//! Defaults are upstream's: period 10 s, timeout 1 s, success 1, failure 3.
//! `exec` runs through the runtime (exit code 0 passes); `httpGet` and
//! `tcpSocket` connect to the pod IP (or `host`) from the node: a status
//! from 200 to 399 passes, an accepted connection passes. `https` and
//! `grpc` probes are not implemented and always fail, saying so.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::runtime::Runtime;
use crate::api::Container;

/// Which of a container's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// As upstream names it in events ("Liveness probe failed: ...").
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Exec(Vec<String>),
    HttpGet {
        scheme: String,
        host: Option<String>,
        port: Option<u16>,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: Option<String>,
        port: Option<u16>,
    },
    /// A handler this kubelet cannot run (`grpc`, an unknown one).
    Unsupported(String),
}

/// One probe of a container, parsed from its spec with the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Probe {
    /// The container's probe of `kind`, `None` when it has none.
    pub fn of(container: &Container, kind: ProbeKind) -> Option<Probe> {
        let spec = match kind {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }?;
        let seconds = |field: &str, default: u64, min: u64| {
            let value = spec.get(field).and_then(Value::as_u64).unwrap_or(default);
            Duration::from_secs(value.max(min))
        };
        let count = |field: &str, default: u64| {
            spec.get(field)
                .and_then(Value::as_u64)
                .unwrap_or(default)
                .max(1) as u32
        };
        Some(Probe {
            action: action(spec, container),
            initial_delay: seconds("initialDelaySeconds", 0, 0),
            period: seconds("periodSeconds", 10, 1),
            timeout: seconds("timeoutSeconds", 1, 1),
            // Liveness and startup probes must have a success threshold of 1.
            success_threshold: match kind {
                ProbeKind::Readiness => count("successThreshold", 1),
                _ => 1,
            },
            failure_threshold: count("failureThreshold", 3),
        })
    }
}

fn action(spec: &Value, container: &Container) -> Action {
    let port = |value: Option<&Value>| match value? {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(name) => name.parse().ok().or_else(|| {
            container
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }),
        _ => None,
    };
    let host = |handler: &Value| {
        handler
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    };
    if let Some(exec) = spec.get("exec") {
        let command = exec
            .get("command")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return Action::Exec(command);
    }
    if let Some(http) = spec.get("httpGet") {
        let headers = http
            .get("httpHeaders")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|h| {
                        let name = h.get("name")?.as_str()?;
                        let value = h.get("value").and_then(Value::as_str).unwrap_or("");
                        Some((name.to_owned(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        return Action::HttpGet {
            scheme: http
                .get("scheme")
                .and_then(Value::as_str)
                .unwrap_or("HTTP")
                .to_uppercase(),
            host: host(http),
            port: port(http.get("port")),
            path: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            },
            headers,
        };
    }
    if let Some(tcp) = spec.get("tcpSocket") {
        return Action::TcpSocket {
            host: host(tcp),
            port: port(tcp.get("port")),
        };
    }
    let name = ["grpc"]
        .into_iter()
        .find(|h| spec.get(*h).is_some())
        .unwrap_or("unknown");
    Action::Unsupported(format!("{name} probes are not supported"))
}

/// Runs a probe once: `Ok(())` when it passed, else why it failed.
pub async fn run(
    action: &Action,
    timeout: Duration,
    runtime: &dyn Runtime,
    container_id: &str,
    pod_ip: Option<&str>,
) -> Result<(), String> {
    match action {
        Action::Exec(command) => {
            match runtime
                .exec(container_id.to_owned(), command.clone(), timeout)
                .await
            {
                Ok(outcome) if outcome.exit_code == 0 => Ok(()),
                Ok(outcome) => Err(if outcome.output.trim().is_empty() {
                    format!(
                        "command {:?} exited with {}",
                        command.join(" "),
                        outcome.exit_code
                    )
                } else {
                    outcome.output.trim_end().to_owned()
                }),
                Err(error) => Err(error.to_string()),
            }
        }
        Action::TcpSocket { host, port } => {
            let address = address(host.as_deref(), pod_ip, *port)?;
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("dial tcp {address}: {error}")),
                Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
            }
        }
        Action::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => {
            if scheme != "HTTP" {
                return Err(format!("{scheme} probes are not supported"));
            }
            let address = address(host.as_deref(), pod_ip, *port)?;
            let url = format!("http://{address}{path}");
            match tokio::time::timeout(timeout, http_get(&address, path, headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(error)) => Err(format!("Get \"{url}\": {error}")),
                Err(_) => Err(format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while \
                     awaiting headers)"
                )),
            }
        }
        Action::Unsupported(message) => Err(message.clone()),
    }
}

fn address(host: Option<&str>, pod_ip: Option<&str>, port: Option<u16>) -> Result<String, String> {
    let host = host
        .or(pod_ip)
        .ok_or_else(|| "the pod has no IP".to_owned())?;
    let port = port.ok_or_else(|| "the probe names no valid port".to_owned())?;
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// One plain HTTP/1.1 GET; the response's status code.
async fn http_get(address: &str, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("dial tcp {address}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = http::Request::get(path)
        .header(http::header::HOST, address)
        .header(http::header::USER_AGENT, "kube-probe/1.35")
        .header(http::header::ACCEPT, "*/*");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// A probe's progress on one container instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeState {
    /// The container instance probed; a new instance starts over.
    pub container_id: String,
    pub last_run: Option<DateTime<Utc>>,
    successes: u32,
    failures: u32,
    /// The verdict: `None` before the first one.
    pub passed: Option<bool>,
}

impl ProbeState {
    pub fn new(container_id: &str) -> ProbeState {
        ProbeState {
            container_id: container_id.to_owned(),
            last_run: None,
            successes: 0,
            failures: 0,
            passed: None,
        }
    }

    /// Whether the probe is due at `now` for a container started at
    /// `started_at`.
    pub fn due(&self, probe: &Probe, started_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let since = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
        if since(started_at) < probe.initial_delay {
            return false;
        }
        self.last_run.is_none_or(|last| since(last) >= probe.period)
    }

    /// Counts one run's result; returns whether the verdict changed.
    pub fn record(&mut self, probe: &Probe, passed: bool, now: DateTime<Utc>) -> bool {
        self.last_run = Some(now);
        let before = self.passed;
        if passed {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= probe.success_threshold {
                self.passed = Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= probe.failure_threshold {
                self.passed = Some(false);
            }
        }
        self.passed != before
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ContainerPort;

    fn container(probe: Value) -> Container {
        Container {
            name: "c".into(),
            readiness_probe: Some(probe),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn probes_take_upstream_defaults_and_resolve_named_ports() {
        let c = container(json!({"httpGet": {"port": "http", "path": "healthz"}}));
        let probe = Probe::of(&c, ProbeKind::Readiness).unwrap();
        assert_eq!(probe.period, Duration::from_secs(10));
        assert_eq!(probe.timeout, Duration::from_secs(1));
        assert_eq!((probe.success_threshold, probe.failure_threshold), (1, 3));
        assert_eq!(probe.initial_delay, Duration::ZERO);
        assert!(matches!(
            probe.action,
            Action::HttpGet { port: Some(8080), ref path, .. } if path == "/healthz"
        ));
        assert!(Probe::of(&c, ProbeKind::Liveness).is_none());
    }

    #[test]
    fn verdicts_need_their_thresholds_in_a_row() {
        let c = container(json!({
            "exec": {"command": ["true"]},
            "initialDelaySeconds": 5,
            "periodSeconds": 2,
            "successThreshold": 2,
            "failureThreshold": 2,
        }));
        let probe = Probe::of(&c, ProbeKind::Readiness).unwrap();
        let mut state = ProbeState::new("c1");
        assert!(!state.due(&probe, at(0), at(4)));
        assert!(state.due(&probe, at(0), at(5)));
        assert!(!state.record(&probe, true, at(5)));
        assert!(!state.due(&probe, at(0), at(6)));
        assert!(state.record(&probe, true, at(7)));
        assert_eq!(state.passed, Some(true));
        assert!(!state.record(&probe, false, at(9)));
        assert!(!state.record(&probe, true, at(11)));
        assert!(!state.record(&probe, false, at(13)));
        assert!(state.record(&probe, false, at(15)));
        assert_eq!(state.passed, Some(false));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_pass_on_a_listening_server_and_fail_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 1024];
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                let code = if request.starts_with("GET /ok ") {
                    200
                } else {
                    500
                };
                let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let runtime = crate::kubelet::fake::FakeRuntime::with_images(&[]);
        let get = |path: &str, port| Action::HttpGet {
            scheme: "HTTP".into(),
            host: None,
            port: Some(port),
            path: path.into(),
            headers: vec![],
        };
        let probe = |action: Action| {
            let runtime = runtime.clone();
            async move {
                run(
                    &action,
                    Duration::from_secs(1),
                    &*runtime,
                    "c1",
                    Some("127.0.0.1"),
                )
                .await
            }
        };
        assert_eq!(probe(get("/ok", port)).await, Ok(()));
        let failed = probe(get("/bad", port)).await.unwrap_err();
        assert_eq!(failed, "HTTP probe failed with statuscode: 500");
        assert!(probe(get("/ok", closed)).await.is_err());
        let tcp = |port| Action::TcpSocket {
            host: None,
            port: Some(port),
        };
        assert_eq!(probe(tcp(port)).await, Ok(()));
        assert!(probe(tcp(closed)).await.is_err());
    }
}
