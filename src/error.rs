//! The service boundary's error type and its one mapping to gRPC status.
//!
//! Handlers return [`Error`]; `From<Error> for Status` is the only place a
//! service or storage failure becomes a wire status. Internal failures are
//! logged here with their cause chain, and the client sees only
//! "internal error".

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation as PbFieldViolation, StatusExt};

use crate::{domain::FieldViolation, storage};

/// `ErrorInfo.domain` of every error this service explains with a reason.
pub const ERROR_DOMAIN: &str = "timesheets.exampleco.com";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation → INVALID_ARGUMENT with google.rpc.BadRequest.
    #[error("{message}")]
    Invalid {
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// No such row visible to the caller → NOT_FOUND.
    #[error("timesheet not found")]
    NotFound,
    /// The row is in a state that forbids the call → FAILED_PRECONDITION.
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// No authenticated caller reached the handler → UNAUTHENTICATED.
    /// The auth layer prevents this; the check keeps handlers safe on their own.
    #[error("missing principal")]
    Unauthenticated,
    /// The reply would exceed the message size limit; nothing was stored →
    /// RESOURCE_EXHAUSTED, told apart from load shedding by its ErrorInfo.
    #[error("reply too large")]
    ReplyTooLarge,
    /// Storage failed → ALREADY_EXISTS, UNAVAILABLE or INTERNAL, by kind.
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl Error {
    /// INVALID_ARGUMENT for `violations`, summarised by the first one.
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [] => "invalid request".to_owned(),
            [only] => format!("{} {}", only.field, only.description),
            [first, rest @ ..] => {
                format!(
                    "{} {} (and {} more)",
                    first.field,
                    first.description,
                    rest.len()
                )
            }
        };
        Error::Invalid {
            message,
            violations,
        }
    }

    pub fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid {
                message,
                violations,
            } => {
                let violations: Vec<PbFieldViolation> = violations
                    .into_iter()
                    .map(|v| PbFieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::NotFound => Status::not_found("timesheet not found"),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::Unauthenticated => {
                Status::unauthenticated("Missing or invalid token: no bearer token")
            }
            Error::Storage(storage::Error::IdempotencyConflict { index }) => {
                Status::already_exists(if index == 0 {
                    "request_id was already used with a different payload".to_owned()
                } else {
                    format!("item {index}: request_id was already used with a different payload")
                })
            }
            Error::ReplyTooLarge | Error::Storage(storage::Error::TooLarge) => {
                Status::with_error_details(
                    Code::ResourceExhausted,
                    "the timesheets would not fit in one reply (the message size limit); \
                     nothing was stored: split the upload, a retry as it is fails the same way",
                    ErrorDetails::with_error_info(
                        "REPLY_TOO_LARGE",
                        ERROR_DOMAIN,
                        std::collections::HashMap::new(),
                    ),
                )
            }
            Error::Storage(err @ storage::Error::Unavailable(_)) => {
                tracing::warn!(error = %anyhow::Error::from(err), "storage unavailable");
                Status::unavailable("database unavailable; retry with backoff")
            }
            Error::Storage(err @ storage::Error::Internal(_)) => {
                tracing::error!(error = ?anyhow::Error::from(err), "storage failure");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_storage_errors_never_reach_the_client() {
        let err = Error::Storage(storage::Error::Internal(std::sync::Arc::new(
            sqlx::Error::Protocol("syntax error near SELECT * FROM secrets".into()),
        )));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn lost_database_connections_are_unavailable_not_internal() {
        let status = Status::from(Error::Storage(storage::Error::from(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn validation_errors_carry_field_violations() {
        let status = Status::from(Error::invalid(vec![
            FieldViolation::new("timesheet.hours", "must be greater than 0 and at most 24"),
            FieldViolation::new("timesheet.date", "is required"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        assert_eq!(bad_request.field_violations.len(), 2);
        assert_eq!(bad_request.field_violations[0].field, "timesheet.hours");
    }
}
