//! The error side of the document: the AIP-193 `Error` schema every
//! failure has, and the shared error responses each operation refers to,
//! with their statuses from the one code table.

use serde_json::{Map, Value, json};
use tonic::Code;

use super::{JSON, operation::header, schema::SCHEMAS};

pub(super) const ERROR_SCHEMA: &str = "Error";

/// The error responses worth naming on every operation; everything else
/// (405, 413, 429, 5xx) is covered by `default`. Statuses come from the one
/// code table, so the document follows it.
pub(super) const NAMED_ERRORS: &[(Code, &str, &str)] = &[
    (
        Code::InvalidArgument,
        "BadRequest",
        "The request is malformed or invalid (INVALID_ARGUMENT, FAILED_PRECONDITION, \
         OUT_OF_RANGE): bad JSON, an unknown field or query parameter, a value out of range. \
         A malformed credential is also a 400, with `WWW-Authenticate`.",
    ),
    (
        Code::Unauthenticated,
        "Unauthenticated",
        "No valid access token (UNAUTHENTICATED).",
    ),
    (
        Code::PermissionDenied,
        "PermissionDenied",
        "The token lacks the operation's scope (PERMISSION_DENIED).",
    ),
    (
        Code::NotFound,
        "NotFound",
        "The resource does not exist or is not visible to the caller (NOT_FOUND).",
    ),
    (
        Code::AlreadyExists,
        "Conflict",
        "The request conflicts with the current state (ALREADY_EXISTS, ABORTED).",
    ),
    (
        Code::Unavailable,
        "Unavailable",
        "The service is temporarily unavailable (UNAVAILABLE); retry after `Retry-After`.",
    ),
];

pub(super) fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "The AIP-193 error body of every failure.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "status", "message", "details"],
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "The HTTP status."},
                "status": {"type": "string", "description": "The gRPC code name, e.g. `NOT_FOUND`."},
                "message": {"type": "string", "description": "A developer-facing explanation."},
                "details": {
                    "type": "array",
                    "description": "google.rpc details (BadRequest, ErrorInfo …) in their JSON form.",
                    "items": {
                        "type": "object",
                        "properties": {"@type": {"type": "string"}},
                        "required": ["@type"],
                    },
                },
            },
        }},
    })
}

pub(super) fn error_responses() -> Value {
    let content = json!({JSON: {"schema": {"$ref": format!("{SCHEMAS}{ERROR_SCHEMA}")}}});
    let challenge = header("RFC 6750 challenge naming the error and, for 403, the missing scope.");
    let mut responses = Map::new();
    for (code, name, description) in NAMED_ERRORS {
        let mut response = Map::new();
        response.insert("description".into(), (*description).into());
        let headers = match code {
            Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied => {
                Some(json!({"WWW-Authenticate": challenge}))
            }
            Code::Unavailable => Some(json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }})),
            _ => None,
        };
        if let Some(headers) = headers {
            response.insert("headers".into(), headers);
        }
        response.insert("content".into(), content.clone());
        responses.insert((*name).into(), response.into());
    }
    responses.insert(
        "Error".into(),
        json!({"description": "Any other failure, in the same shape.", "content": content}),
    );
    Value::Object(responses)
}
