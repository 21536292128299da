//! Against a real tonic server (the generated TimesheetServiceServer with a
//! canned implementation): tonic's own framing, trailers, trailers-only
//! errors and status metadata all map as the hand-built fakes promise.

use std::collections::HashMap;

use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use super::{http, send, timesheets};
use crate::{
    auth::AuthError,
    proto::timesheets::v1::{
        ApproveTimesheetRequest, BatchUploadTimesheetsResponse, CreateTimesheetRequest,
        DeleteTimesheetRequest, GetTimesheetRequest, ListPendingApprovalsRequest,
        ListPendingApprovalsResponse, ListTimesheetsRequest, ListTimesheetsResponse, Timesheet,
        UploadTimesheetRequest,
        timesheet_service_server::{TimesheetService, TimesheetServiceServer},
    },
    transcode::{GrpcService, TranscodeOptions},
};

/// Canned answers, one behaviour per method.
struct Canned;

#[tonic::async_trait]
impl TimesheetService for Canned {
    async fn create_timesheet(
        &self,
        request: Request<CreateTimesheetRequest>,
    ) -> Result<Response<Timesheet>, Status> {
        let caller = request.metadata().get("authorization").is_some();
        let timesheet = request.into_inner().timesheet.unwrap_or_default();
        let user_id = if caller { "alice" } else { "" };
        Ok(Response::new(Timesheet {
            id: "t1".into(),
            user_id: user_id.into(),
            ..timesheet
        }))
    }

    async fn get_timesheet(
        &self,
        _: Request<GetTimesheetRequest>,
    ) -> Result<Response<Timesheet>, Status> {
        let mut details = ErrorDetails::new();
        details.set_error_info("NOT_FOUND", "example.com", HashMap::new());
        Err(Status::with_error_details(
            Code::NotFound,
            "timesheet not found",
            details,
        ))
    }

    async fn list_timesheets(
        &self,
        _: Request<ListTimesheetsRequest>,
    ) -> Result<Response<ListTimesheetsResponse>, Status> {
        let page = vec![Timesheet {
            id: "a".into(),
            ..Default::default()
        }];
        Ok(Response::new(ListTimesheetsResponse {
            timesheets: page,
            next_page_token: "n".into(),
        }))
    }

    async fn delete_timesheet(
        &self,
        _: Request<DeleteTimesheetRequest>,
    ) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn upload_timesheet(
        &self,
        _: Request<UploadTimesheetRequest>,
    ) -> Result<Response<Timesheet>, Status> {
        Err(Status::unavailable("database unreachable"))
    }

    async fn batch_upload_timesheets(
        &self,
        _: Request<Streaming<UploadTimesheetRequest>>,
    ) -> Result<Response<BatchUploadTimesheetsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_pending_approvals(
        &self,
        _: Request<ListPendingApprovalsRequest>,
    ) -> Result<Response<ListPendingApprovalsResponse>, Status> {
        Err(AuthError::InsufficientScope("approve:timesheets".into()).to_status())
    }

    async fn approve_timesheet(
        &self,
        _: Request<ApproveTimesheetRequest>,
    ) -> Result<Response<Timesheet>, Status> {
        Ok(Response::new(Timesheet {
            id: "x".into(),
            approved: true,
            ..Default::default()
        }))
    }
}

fn server() -> GrpcService {
    GrpcService::new(TimesheetServiceServer::new(Canned))
}

#[tokio::test]
async fn a_real_tonic_server_answers_through_the_transcoder() {
    let mut create = http(
        "POST",
        "/timesheets",
        r#"{"date":"2026-11-27","project":"Website","hours":"8"}"#,
    );
    create
        .headers_mut()
        .insert("authorization", "Bearer t".parse().expect("header"));
    let answer = send(timesheets(TranscodeOptions::default()), server(), create).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["user_id"], "alice", "metadata reached the handler");
    assert_eq!(json["hours"], 8.0);
    assert_eq!(json["approved"], false);

    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("GET", "/timesheets", ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()[0]["id"], "a");
    assert_eq!(
        answer.header("link"),
        Some("</timesheets?page_token=n>; rel=\"next\"")
    );

    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("PUT", "/approvals/x", ""),
    )
    .await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["approved"].clone()),
        (200, true.into())
    );

    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("DELETE", "/v1/timesheets/x", ""),
    )
    .await;
    assert_eq!(answer.status, 204);
}

#[tokio::test]
async fn real_tonic_failures_keep_codes_details_and_challenges() {
    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("GET", "/v1/timesheets/x", ""),
    )
    .await;
    assert_eq!(answer.status, 404);
    let json = answer.json();
    assert_eq!(json["error"]["message"], "timesheet not found");
    assert_eq!(json["error"]["details"][0]["reason"], "NOT_FOUND", "{json}");

    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("GET", "/approvals", ""),
    )
    .await;
    assert_eq!(answer.status, 403);
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    let answer = send(
        timesheets(TranscodeOptions::default()),
        server(),
        http("POST", "/timesheets/upload", "{}"),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("1"));
}
