//! Keyset pagination: complete, stable walks and tamper-proof tokens.

use std::collections::HashSet;

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

/// Stores `count` rows for `owner`, five per day, in one batch.
async fn seed(app: &TestApp, owner: &str, count: usize) {
    let items: Vec<UploadTimesheetRequest> = (0..count)
        .map(|i| UploadTimesheetRequest {
            timesheet: Some(Timesheet {
                user_id: owner.into(),
                ..timesheet(
                    &format!("2026-{:02}-{:02}", 1 + (i / 5) / 28, 1 + (i / 5) % 28),
                    &format!("P{i}"),
                    1.0,
                )
            }),
            request_id: String::new(),
        })
        .collect();
    let stored = app
        .importer()
        .batch_upload_timesheets(tokio_stream::iter(items))
        .await
        .expect("seed batch")
        .into_inner();
    assert_eq!(stored.timesheets.len(), count);
}

async fn walk(client: &mut Client, page_size: i32) -> Vec<Timesheet> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_timesheets(ListTimesheetsRequest {
                page_size,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.timesheets.len() <= page_size as usize);
        all.extend(page.timesheets);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

on_both_backends! {
    async fn walking_250_rows_visits_each_once_newest_date_first(app: &TestApp) {
        seed(app, "alice@exampleco.com", 250).await;
        let mut alice = app.employee("alice@exampleco.com");

        let by_hundreds = walk(&mut alice, 100).await;
        assert_eq!(by_hundreds.len(), 250);
        let ids: HashSet<_> = by_hundreds.iter().map(|t| t.id.clone()).collect();
        assert_eq!(ids.len(), 250, "no duplicates");
        for pair in by_hundreds.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(a.date > b.date || (a.date == b.date && a.id < b.id), "order: {a:?} then {b:?}");
        }
        // Pages that split a day in the middle give the same sequence.
        let by_sevens = walk(&mut alice, 7).await;
        assert_eq!(by_sevens, by_hundreds);
        // 0 means the default page of 100.
        let default_page = alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert_eq!(default_page.timesheets.len(), 100);
        // An oversized page is not refused: here it holds every row (the
        // clamp to 1000 is pagination.rs's unit test).
        let clamped = alice
            .list_timesheets(ListTimesheetsRequest { page_size: 5000, ..Default::default() })
            .await
            .expect("clamped")
            .into_inner();
        assert_eq!(clamped.timesheets, by_hundreds);
    }

    async fn page_tokens_only_work_for_their_caller_and_filters(app: &TestApp) {
        seed(app, "alice@exampleco.com", 12).await;
        seed(app, "bob@exampleco.com", 12).await;
        let mut alice = app.employee("alice@exampleco.com");
        let bob = app.employee("bob@exampleco.com");
        let first = alice
            .list_timesheets(ListTimesheetsRequest { page_size: 5, ..Default::default() })
            .await
            .expect("first page")
            .into_inner();
        let token = first.next_page_token;
        assert!(!token.is_empty());

        let mut tampered = token.clone().into_bytes();
        tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
        let cases = [
            ("another caller replays it", bob.clone(), ListTimesheetsRequest { page_size: 5, page_token: token.clone(), ..Default::default() }),
            ("the filters changed", alice.clone(), ListTimesheetsRequest { page_size: 5, page_token: token.clone(), project: "P1".into(), ..Default::default() }),
            ("it was edited", alice.clone(), ListTimesheetsRequest { page_size: 5, page_token: String::from_utf8(tampered).expect("ascii"), ..Default::default() }),
            ("it is garbage", alice.clone(), ListTimesheetsRequest { page_token: "not-a-token".into(), ..Default::default() }),
        ];
        for (description, mut client, request) in cases {
            let status = client.list_timesheets(request).await.expect_err(description);
            assert_eq!(status.code(), Code::InvalidArgument, "{description}");
            assert_eq!(violated_fields(&status), ["page_token"], "{description}");
        }
    }

    async fn a_negative_page_size_is_invalid(app: &TestApp) {
        let status = app
            .employee("alice@exampleco.com")
            .list_timesheets(ListTimesheetsRequest { page_size: -1, ..Default::default() })
            .await
            .expect_err("negative");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_size"]);
        let status = app
            .manager()
            .list_pending_approvals(ListPendingApprovalsRequest { page_size: -5, ..Default::default() })
            .await
            .expect_err("negative");
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    async fn pending_approvals_walk_every_users_rows_oldest_first(app: &TestApp) {
        seed(app, "alice@exampleco.com", 30).await;
        seed(app, "bob@exampleco.com", 25).await;
        let mut manager = app.manager();
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = manager
                .list_pending_approvals(ListPendingApprovalsRequest { page_size: 8, page_token: token })
                .await
                .expect("page")
                .into_inner();
            all.extend(page.timesheets);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(all.len(), 55);
        assert_eq!(all.iter().map(|t| &t.id).collect::<HashSet<_>>().len(), 55);
        for pair in all.windows(2) {
            assert!((&pair[0].date, &pair[0].id) < (&pair[1].date, &pair[1].id), "oldest first");
        }
    }
}

#[tokio::test]
async fn a_page_too_large_for_one_reply_ends_early_and_the_walk_still_sees_every_row() {
    const LIMIT: usize = 16 * 1024;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(backend, |c| c.max_message_bytes = LIMIT).await else {
            continue;
        };
        // 60 rows of about 400 bytes each: 24 KiB, more than one reply holds.
        for chunk in 0..2 {
            let items: Vec<UploadTimesheetRequest> = (0..30)
                .map(|i| UploadTimesheetRequest {
                    timesheet: Some(Timesheet {
                        user_id: "alice@exampleco.com".into(),
                        notes: "n".repeat(300),
                        ..timesheet(&format!("2026-0{}-{:02}", 3 + chunk, 1 + i), "Website", 1.0)
                    }),
                    request_id: String::new(),
                })
                .collect();
            app.importer()
                .batch_upload_timesheets(tokio_stream::iter(items))
                .await
                .expect("seed");
        }
        let mut alice = app.employee("alice@exampleco.com");
        let first = alice
            .list_timesheets(ListTimesheetsRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("a page that fits")
            .into_inner();
        assert!(
            first.timesheets.len() < 60,
            "{backend:?}: {} rows in one page",
            first.timesheets.len()
        );
        assert!(prost::Message::encoded_len(&first) <= LIMIT);
        assert!(
            !first.next_page_token.is_empty(),
            "{backend:?}: the rest is on the next page"
        );
        let all = walk(&mut alice, 100).await;
        let ids: HashSet<_> = all.iter().map(|t| t.id.as_str()).collect();
        assert_eq!((all.len(), ids.len()), (60, 60), "{backend:?}");
        app.shutdown().await;
    }
}
