//! BatchUploadTimesheets is all or nothing.

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

fn item(user: &str, date: &str, hours: f64, request_id: &str) -> UploadTimesheetRequest {
    UploadTimesheetRequest {
        timesheet: Some(Timesheet {
            user_id: user.into(),
            ..timesheet(date, "StoreZero", hours)
        }),
        request_id: request_id.into(),
    }
}

/// How many rows `user` has, over every page.
async fn stored_for(app: &TestApp, user: &str) -> usize {
    let mut client = app.employee(user);
    let (mut count, mut page_token) = (0, String::new());
    loop {
        let page = client
            .list_timesheets(ListTimesheetsRequest {
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        count += page.timesheets.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

on_both_backends! {
    async fn a_valid_batch_is_stored_in_order(app: &TestApp) {
        let items = vec![item("007", "2017-05-10", 5.0, ""), item("008", "2017-05-11T09:00:00+02:00", 6.0, ""), item("007", "2017-05-12", 7.0, "")];
        let stored = app.importer().batch_upload_timesheets(tokio_stream::iter(items)).await.expect("batch").into_inner().timesheets;
        let got: Vec<_> = stored.iter().map(|t| (t.user_id.as_str(), t.date.as_str(), t.hours)).collect();
        assert_eq!(got, [("007", "2017-05-10", 5.0), ("008", "2017-05-11", 6.0), ("007", "2017-05-12", 7.0)]);
        assert!(stored.iter().all(|t| !t.approved));
        assert_eq!(stored_for(app, "007").await, 2);
    }

    async fn one_invalid_item_fails_the_batch_naming_its_index_and_stores_nothing(app: &TestApp) {
        let items = vec![item("007", "2017-05-10", 5.0, ""), item("007", "2017-05-11", 99.0, ""), item("007", "2017-05-12", 7.0, "")];
        let status = app.importer().batch_upload_timesheets(tokio_stream::iter(items)).await.expect_err("invalid item");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("item 1"), "{}", status.message());
        assert_eq!(violated_fields(&status), ["requests[1].timesheet.hours"]);
        assert_eq!(stored_for(app, "007").await, 0);
    }

    async fn a_batch_over_the_item_limit_is_refused_as_a_field_violation_and_stores_nothing(app: &TestApp) {
        let items = (0..=10_000).map(|_| item("007", "2017-05-10", 5.0, ""));
        let status = app.importer().batch_upload_timesheets(tokio_stream::iter(items)).await.expect_err("too many items");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("10000"), "{}", status.message());
        assert_eq!(violated_fields(&status), ["requests"]);
        assert_eq!(stored_for(app, "007").await, 0);
    }

    async fn a_conflicting_request_id_rolls_back_the_whole_batch(app: &TestApp) {
        let mut importer = app.importer();
        importer.upload_timesheet(item("007", "2017-05-10", 5.0, "k1")).await.expect("earlier upload");
        let items = vec![item("007", "2017-05-11", 5.0, ""), item("007", "2017-05-10", 6.0, "k1")];
        let status = importer.batch_upload_timesheets(tokio_stream::iter(items)).await.expect_err("conflict");
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(status.message().contains("item 1"), "{}", status.message());
        assert_eq!(stored_for(app, "007").await, 1, "only the earlier upload");
    }

    async fn an_empty_batch_stores_nothing_and_succeeds(app: &TestApp) {
        let stored = app.importer().batch_upload_timesheets(tokio_stream::iter(Vec::<UploadTimesheetRequest>::new())).await.expect("empty").into_inner();
        assert!(stored.timesheets.is_empty());
    }
}

/// The smallest message limit the server takes (`--max-message-bytes`).
const SMALL_LIMIT: usize = 16 * 1024;

/// `count` items whose echoed timesheets take about 400 bytes each.
fn wordy_items(count: usize) -> Vec<UploadTimesheetRequest> {
    (0..count)
        .map(|i| UploadTimesheetRequest {
            timesheet: Some(Timesheet {
                user_id: "007".into(),
                notes: "n".repeat(300),
                ..timesheet(&format!("2017-05-{:02}", 1 + i % 28), "StoreZero", 1.0)
            }),
            request_id: String::new(),
        })
        .collect()
}

#[tokio::test]
async fn a_batch_too_large_to_echo_in_one_reply_fails_and_stores_nothing() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(backend, |c| c.max_message_bytes = SMALL_LIMIT).await else {
            continue;
        };
        // About 24 KiB of reply against a 16 KiB limit; each item alone is small.
        let status = app
            .importer()
            .batch_upload_timesheets(tokio_stream::iter(wordy_items(60)))
            .await
            .expect_err("reply too large");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{backend:?}: {status:?}"
        );
        assert!(
            status.message().contains("nothing was stored"),
            "{}",
            status.message()
        );
        // Told apart from load shedding, which a client may retry.
        use tonic_types::StatusExt;
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "REPLY_TOO_LARGE");
        assert_eq!(stored_for(&app, "007").await, 0, "{backend:?}");
        // Half of it fits, and is stored and echoed whole.
        let stored = app
            .importer()
            .batch_upload_timesheets(tokio_stream::iter(wordy_items(30)))
            .await
            .expect("fits")
            .into_inner();
        assert_eq!(stored.timesheets.len(), 30);
        assert_eq!(stored_for(&app, "007").await, 30, "{backend:?}");
        app.shutdown().await;
    }
}

#[tokio::test]
async fn a_batch_of_replays_too_large_to_echo_is_refused_before_commit() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(backend, |c| c.max_message_bytes = SMALL_LIMIT).await else {
            continue;
        };
        // 30 keyed items fit (about 12 KiB echoed) ...
        let keyed = |items: Vec<UploadTimesheetRequest>| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| UploadTimesheetRequest {
                    request_id: format!("k{i}"),
                    ..item
                })
                .collect::<Vec<_>>()
        };
        let stored = app
            .importer()
            .batch_upload_timesheets(tokio_stream::iter(keyed(wordy_items(30))))
            .await
            .expect("fits")
            .into_inner()
            .timesheets;
        // ... until an approver with a long name is stored on each of them.
        let approver = format!("{}@exampleco.com", "m".repeat(280));
        let mut manager = app.client(&approver, MANAGER);
        for timesheet in &stored {
            manager
                .approve_timesheet(ApproveTimesheetRequest {
                    id: timesheet.id.clone(),
                })
                .await
                .expect("approve");
        }
        // Replaying them (plus one new item) echoes the approved rows: too large.
        let mut items = keyed(wordy_items(30));
        items.push(item("007", "2017-06-01", 1.0, "new"));
        let status = app
            .importer()
            .batch_upload_timesheets(tokio_stream::iter(items))
            .await
            .expect_err("echo too large");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{backend:?}: {status:?}"
        );
        use tonic_types::StatusExt;
        let reason = status.get_details_error_info().map(|i| i.reason);
        assert_eq!(reason.as_deref(), Some("REPLY_TOO_LARGE"));
        assert_eq!(
            stored_for(&app, "007").await,
            30,
            "{backend:?}: the new item was rolled back"
        );
        app.shutdown().await;
    }
}
