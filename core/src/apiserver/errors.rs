//! Every way a request can fail, and the one mapping from a failure to the
//! Kubernetes `Status` the client receives.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::api::{Status, StatusCause, StatusDetails};
use crate::store::StoreError;

/// A failed API request. `resource` names are `pods` or `deployments.apps`,
/// as upstream messages spell them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        resource: String,
        name: String,
        group: String,
        kind: String,
    },
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        resource: String,
        name: String,
        group: String,
        kind: String,
    },
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
         please apply your changes to the latest version and try again"
    )]
    Conflict {
        resource: String,
        name: String,
        group: String,
        kind: String,
    },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Precondition {
        resource: String,
        name: String,
        message: String,
    },
    /// 422: one or more fields are wrong.
    #[error("{kind} \"{name}\" is invalid: {}", render_causes(.causes))]
    Invalid {
        kind: String,
        group: String,
        name: String,
        causes: Vec<FieldError>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// 504: the store did not reach the asked-for revision in time.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: u64, current: u64 },
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
}

/// One wrong field, as a `StatusCause`.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn required(field: &str, detail: &str) -> FieldError {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: \"{value}\": {detail}"),
        }
    }

    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: \"{value}\": supported values: {list}"),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
}

fn render_causes(causes: &[FieldError]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::Precondition { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Expired { .. } => StatusCode::GONE,
            ApiError::TooLargeResourceVersion { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::Precondition { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Expired { .. } => "Expired",
            ApiError::TooLargeResourceVersion { .. } => "Timeout",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// The `Status` object for this failure.
    pub fn status(&self) -> Status {
        let details = match self {
            ApiError::NotFound {
                name, group, kind, ..
            }
            | ApiError::AlreadyExists {
                name, group, kind, ..
            }
            | ApiError::Conflict {
                name, group, kind, ..
            } => Some(StatusDetails {
                name: Some(name.clone()),
                group: (!group.is_empty()).then(|| group.clone()),
                kind: Some(kind.clone()),
                ..Default::default()
            }),
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => Some(StatusDetails {
                name: Some(name.clone()),
                group: (!group.is_empty()).then(|| group.clone()),
                kind: Some(kind.clone()),
                causes: causes
                    .iter()
                    .map(|c| StatusCause {
                        reason: Some(c.reason.into()),
                        message: Some(c.message.clone()),
                        field: Some(c.field.clone()),
                    })
                    .collect(),
                ..Default::default()
            }),
            // What client-go's IsTooLargeResourceVersion looks for.
            ApiError::TooLargeResourceVersion { .. } => Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: Some("ResourceVersionTooLarge".into()),
                    message: Some("Too large resource version".into()),
                    field: None,
                }],
                retry_after_seconds: Some(1),
                ..Default::default()
            }),
            _ => None,
        };
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: Some("Failure".into()),
            message: Some(self.to_string()),
            reason: Some(self.reason().into()),
            details,
            code: Some(self.code().as_u16()),
            ..Default::default()
        }
    }

    /// Maps a store failure on one object of one resource.
    pub fn from_store(error: StoreError, info: &super::registry::KindInfo, name: &str) -> ApiError {
        let (resource, group, kind) = (
            info.qualified(),
            info.group.to_owned(),
            info.plural.to_owned(),
        );
        let name = name.to_owned();
        match error {
            StoreError::NotFound(_) => ApiError::NotFound {
                resource,
                name,
                group,
                kind,
            },
            StoreError::AlreadyExists(_) => ApiError::AlreadyExists {
                resource,
                name,
                group,
                kind,
            },
            StoreError::Conflict { .. } => ApiError::Conflict {
                resource,
                name,
                group,
                kind,
            },
            StoreError::Expired { requested, oldest } => ApiError::Expired { requested, oldest },
            StoreError::Unavailable(message) => ApiError::ServiceUnavailable(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status()).expect("Status always encodes");
        (
            self.code(),
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
