//! The scope matrix: every RPC with every wrong scope is denied, and with
//! the right one it works.

use tonic::{Code, Status};

use crate::helpers::*;
use crate::on_both_backends;

/// Each RPC and the scope it needs, pinned here independently of the proto.
const MATRIX: &[(&str, &str)] = &[
    ("CreateTimesheet", "create:timesheets"),
    ("GetTimesheet", "read:timesheets"),
    ("ListTimesheets", "read:timesheets"),
    ("DeleteTimesheet", "delete:timesheets"),
    ("UploadTimesheet", "batch:upload"),
    ("BatchUploadTimesheets", "batch:upload"),
    ("ListPendingApprovals", "approve:timesheets"),
    ("ApproveTimesheet", "approve:timesheets"),
];

async fn call(rpc: &str, client: &mut Client) -> Result<(), Status> {
    let upload = || UploadTimesheetRequest {
        timesheet: Some(Timesheet {
            user_id: "007".into(),
            ..timesheet("2026-11-27", "Website", 1.0)
        }),
        request_id: String::new(),
    };
    match rpc {
        "CreateTimesheet" => client
            .create_timesheet(create("2026-11-27", "Website", 1.0))
            .await
            .map(drop),
        "GetTimesheet" => client
            .get_timesheet(GetTimesheetRequest {
                id: "missing".into(),
            })
            .await
            .map(drop),
        "ListTimesheets" => client
            .list_timesheets(ListTimesheetsRequest::default())
            .await
            .map(drop),
        "DeleteTimesheet" => client
            .delete_timesheet(DeleteTimesheetRequest {
                id: "missing".into(),
            })
            .await
            .map(drop),
        "UploadTimesheet" => client.upload_timesheet(upload()).await.map(drop),
        "BatchUploadTimesheets" => client
            .batch_upload_timesheets(tokio_stream::iter(vec![upload()]))
            .await
            .map(drop),
        "ListPendingApprovals" => client
            .list_pending_approvals(ListPendingApprovalsRequest::default())
            .await
            .map(drop),
        "ApproveTimesheet" => client
            .approve_timesheet(ApproveTimesheetRequest {
                id: "missing".into(),
            })
            .await
            .map(drop),
        other => panic!("no such RPC {other}"),
    }
}

/// "Works" means the call got past authorization; NOT_FOUND for a missing
/// id is the handler answering.
fn authorized(result: &Result<(), Status>) -> bool {
    !matches!(result, Err(s) if matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated))
}

on_both_backends! {
    async fn every_rpc_needs_exactly_its_declared_scope(app: &TestApp) {
        for &(rpc, needed) in MATRIX {
            let mut right = app.client("alice@exampleco.com", &[needed]);
            let result = call(rpc, &mut right).await;
            assert!(authorized(&result), "{rpc} with {needed}: {result:?}");

            let mut wrong_tokens: Vec<(String, Vec<&str>)> = ALL_SCOPES
                .iter()
                .filter(|s| **s != needed)
                .map(|s| (format!("only {s}"), vec![*s]))
                .collect();
            let all_others: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| *s != needed).collect();
            let suffixed = format!("{needed}X");
            let upper = needed.to_uppercase();
            wrong_tokens.push(("every other scope".into(), all_others));
            wrong_tokens.push(("no scope".into(), vec![]));
            wrong_tokens.push(("a longer lookalike".into(), vec![suffixed.as_str()]));
            wrong_tokens.push(("different case".into(), vec![upper.as_str()]));
            for (description, scopes) in wrong_tokens {
                let mut client = app.client("alice@exampleco.com", &scopes);
                let status = call(rpc, &mut client).await.expect_err(&format!("{rpc} with {description}"));
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc} with {description}");
                assert!(status.message().starts_with("Forbidden: "), "{rpc}: {}", status.message());
                assert!(status.message().contains(needed), "{rpc}: names {needed}: {}", status.message());
            }
        }
    }

    async fn scopes_may_also_arrive_as_an_array(app: &TestApp) {
        let mut claims = app.issuer.claims("alice@exampleco.com", &[]);
        claims["scope"] = serde_json::json!(["read:timesheets", "create:timesheets"]);
        let mut client = app.client_with_token(&app.issuer.sign(&claims));
        client.list_timesheets(ListTimesheetsRequest::default()).await.expect("array scopes grant access");
    }
}

/// A path that names no method of the service has no handler behind it: it
/// is UNIMPLEMENTED (what gRPC clients feature-detect on), token or not.
#[tokio::test]
async fn a_method_the_service_lacks_is_unimplemented_with_or_without_a_token() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let token = app.token("alice@exampleco.com", ALL_SCOPES);
    for (path, bearer) in [
        (
            "/timesheets.v1.TimesheetService/UpdateTimesheet",
            Some(&token),
        ),
        ("/timesheets.v1.TimesheetService/UpdateTimesheet", None),
        ("/timesheets.v1.TimesheetService/gettimesheet", Some(&token)),
    ] {
        let mut grpc = tonic::client::Grpc::new(app.channel.clone());
        grpc.ready().await.expect("ready");
        let mut request = tonic::Request::new(());
        if let Some(token) = bearer {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
        }
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let status = grpc
            .unary(request, path.parse().expect("path"), codec)
            .await
            .expect_err("no such method");
        assert_eq!(
            status.code(),
            Code::Unimplemented,
            "{path} (token: {}): {status:?}",
            bearer.is_some()
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_to_a_service_nobody_serves_is_unimplemented_in_the_callers_protocol() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    // Media types compare without case; gRPC-Web must come back labelled
    // as gRPC-Web, or a browser's client cannot read the status. (The reply
    // has no body, so its encoding, binary or text, does not matter.)
    for (content_type, web) in [
        ("application/grpc", false),
        ("Application/GRPC+proto", false),
        ("application/grpc-web+proto", true),
        ("APPLICATION/GRPC-WEB-TEXT", true),
    ] {
        let response = app
            .h2()
            .post(app.url("/acme.v1.Nothing/Anything"))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("te", "trailers")
            .body(vec![0u8; 5])
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{content_type}");
        assert_eq!(
            header_value(&response, "grpc-status"),
            Some("12"),
            "{content_type}"
        );
        let answered = header_value(&response, "content-type").unwrap_or_default();
        assert!(
            answered.starts_with("application/grpc"),
            "{content_type}: {answered}"
        );
        assert_eq!(
            answered.starts_with("application/grpc-web"),
            web,
            "{content_type}: {answered}"
        );
    }
    app.shutdown().await;
}
