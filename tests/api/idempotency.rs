//! request_id makes retries safe: same payload, same row; other payload, refused.

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

fn keyed(request_id: &str, hours: f64) -> CreateTimesheetRequest {
    CreateTimesheetRequest {
        request_id: request_id.into(),
        ..create("2026-11-27", "Website", hours)
    }
}

on_both_backends! {
    async fn a_retried_create_returns_the_first_result_and_stores_nothing_new(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let first = alice.create_timesheet(keyed("retry-1", 7.5)).await.expect("first").into_inner();
        let retry = alice.create_timesheet(keyed("retry-1", 7.5)).await.expect("retry").into_inner();
        assert_eq!(retry, first);
        let listed = alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert_eq!(listed.timesheets.len(), 1);
    }

    async fn reusing_a_request_id_with_another_payload_is_already_exists(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        alice.create_timesheet(keyed("retry-2", 7.5)).await.expect("first");
        let status = alice.create_timesheet(keyed("retry-2", 8.0)).await.expect_err("different payload");
        assert_eq!(status.code(), Code::AlreadyExists);
        let listed = alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert_eq!(listed.timesheets.len(), 1);
    }

    async fn concurrent_creates_with_one_request_id_store_one_row(app: &TestApp) {
        // Sent at once, they reach the store together (on SQLite, in one
        // group commit): one payload's row is stored, its retries replay
        // it, and the other payload is refused.
        let alice = app.employee("alice@exampleco.com");
        let calls: Vec<_> = (0..20)
            .map(|n| {
                let mut client = alice.clone();
                let hours = if n % 2 == 0 { 7.5 } else { 8.0 };
                tokio::spawn(async move { (hours, client.create_timesheet(keyed("race-1", hours)).await) })
            })
            .collect();
        let mut stored = Vec::new();
        let mut refused = Vec::new();
        for call in calls {
            match call.await.expect("task") {
                (hours, Ok(reply)) => stored.push((hours, reply.into_inner())),
                (hours, Err(status)) => {
                    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                    refused.push(hours);
                }
            }
        }
        let (hours, first) = stored.first().cloned().expect("one payload stored");
        assert!(stored.iter().all(|(h, reply)| *h == hours && *reply == first), "{stored:?}");
        assert!(refused.iter().all(|h| *h != hours), "{refused:?}");
        assert_eq!(stored.len(), 10, "every retry of the stored payload replays it");
        let listed = alice.clone().list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert_eq!(listed.timesheets, vec![first]);
    }

    async fn request_ids_are_scoped_to_the_caller(app: &TestApp) {
        let a = app.employee("alice@exampleco.com").create_timesheet(keyed("shared", 7.5)).await.expect("alice").into_inner();
        let b = app.employee("bob@exampleco.com").create_timesheet(keyed("shared", 7.5)).await.expect("bob").into_inner();
        assert_ne!(a.id, b.id);
        assert_eq!(b.user_id, "bob@exampleco.com");
    }

    async fn a_retried_upload_is_idempotent_too(app: &TestApp) {
        let mut importer = app.importer();
        let request = || UploadTimesheetRequest {
            timesheet: Some(Timesheet { user_id: "007".into(), ..timesheet("2017-05-10", "StoreZero", 5.0) }),
            request_id: "cron-2017-05-10-007".into(),
        };
        let first = importer.upload_timesheet(request()).await.expect("first").into_inner();
        let again = importer.upload_timesheet(request()).await.expect("again").into_inner();
        assert_eq!(again.id, first.id);
        let too_long = importer
            .upload_timesheet(UploadTimesheetRequest { request_id: "x".repeat(129), ..request() })
            .await
            .expect_err("request_id too long");
        assert_eq!(too_long.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&too_long), ["request_id"]);
    }
}
