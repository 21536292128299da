//! Create, get, list, delete and upload, and who may see what.

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn a_created_timesheet_belongs_to_the_caller_and_is_unapproved(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let created = alice
            .create_timesheet(create("2026-11-27", "Website", 7.5))
            .await
            .expect("create")
            .into_inner();
        assert!(!created.id.is_empty());
        assert!(created.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "URL-safe id");
        assert_eq!(created.user_id, "alice@exampleco.com");
        assert_eq!((created.date.as_str(), created.project.as_str(), created.hours), ("2026-11-27", "Website", 7.5));
        assert!(!created.approved);
        assert!(created.create_time.is_some());
        assert!(created.approve_time.is_none());

        let fetched = alice
            .get_timesheet(GetTimesheetRequest { id: created.id.clone() })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(fetched, created);
    }

    async fn values_the_server_owns_are_ignored_on_create(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let sent = Timesheet {
            id: "chosen-id".into(),
            user_id: "mallory@exampleco.com".into(),
            approved: true,
            approved_by: "mallory@exampleco.com".into(),
            create_time: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            approve_time: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            notes: "kept".into(),
            ..timesheet("2026-11-27", "Website", 8.0)
        };
        let created = alice
            .create_timesheet(CreateTimesheetRequest { timesheet: Some(sent), request_id: String::new() })
            .await
            .expect("create")
            .into_inner();
        assert_ne!(created.id, "chosen-id");
        assert_eq!(created.user_id, "alice@exampleco.com");
        assert!(!created.approved);
        assert_eq!(created.approved_by, "");
        assert!(created.approve_time.is_none());
        assert_ne!(created.create_time.map(|t| t.seconds), Some(1));
        assert_eq!(created.notes, "kept");
    }

    async fn another_users_timesheet_is_not_found_for_get_list_and_delete(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let mut bob = app.employee("bob@exampleco.com");
        let id = alice.create_timesheet(create("2026-11-27", "Website", 7.5)).await.expect("create").into_inner().id;
        // Alice reads it first, so a server that caches rows has it when Bob asks.
        alice.get_timesheet(GetTimesheetRequest { id: id.clone() }).await.expect("alice reads it");

        let get = bob.get_timesheet(GetTimesheetRequest { id: id.clone() }).await.expect_err("bob cannot read it");
        assert_eq!(get.code(), Code::NotFound);
        let delete = bob.delete_timesheet(DeleteTimesheetRequest { id: id.clone() }).await.expect_err("bob cannot delete it");
        assert_eq!(delete.code(), Code::NotFound);
        let listed = bob.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert!(listed.timesheets.is_empty());
        // Still there for its owner.
        alice.get_timesheet(GetTimesheetRequest { id }).await.expect("alice still has it");
    }

    async fn deleting_an_own_unapproved_timesheet_removes_it(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let id = alice.create_timesheet(create("2026-11-27", "Website", 7.5)).await.expect("create").into_inner().id;
        alice.get_timesheet(GetTimesheetRequest { id: id.clone() }).await.expect("read before the delete");
        alice.delete_timesheet(DeleteTimesheetRequest { id: id.clone() }).await.expect("delete");
        let gone = alice.get_timesheet(GetTimesheetRequest { id: id.clone() }).await.expect_err("deleted");
        assert_eq!(gone.code(), Code::NotFound);
        let again = alice.delete_timesheet(DeleteTimesheetRequest { id }).await.expect_err("already deleted");
        assert_eq!(again.code(), Code::NotFound);
    }

    async fn list_filters_by_inclusive_dates_and_exact_project(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        for (date, project) in [("2026-11-01", "Website"), ("2026-11-15", "Website"), ("2026-11-30", "Website"), ("2026-11-15", "Mobile")] {
            alice.create_timesheet(create(date, project, 1.0)).await.expect("create");
        }
        let listed = alice
            .list_timesheets(ListTimesheetsRequest {
                start_date: "2026-11-15".into(),
                end_date: "2026-11-30".into(),
                project: "Website".into(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        let dates: Vec<_> = listed.timesheets.iter().map(|t| t.date.as_str()).collect();
        assert_eq!(dates, ["2026-11-30", "2026-11-15"]);
        assert!(listed.next_page_token.is_empty());

        let bad = alice
            .list_timesheets(ListTimesheetsRequest { start_date: "2026-11-31".into(), ..Default::default() })
            .await
            .expect_err("not a date");
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&bad), ["start_date"]);
    }

    async fn an_importer_uploads_for_the_named_employee_and_the_date_keeps_its_calendar_day(app: &TestApp) {
        let mut importer = app.importer();
        let uploaded = importer
            .upload_timesheet(UploadTimesheetRequest {
                timesheet: Some(Timesheet {
                    user_id: "007".into(),
                    ..timesheet("2017-05-10T17:40:20.095Z", "StoreZero", 5.0)
                }),
                request_id: String::new(),
            })
            .await
            .expect("upload")
            .into_inner();
        assert_eq!(uploaded.user_id, "007");
        assert_eq!(uploaded.date, "2017-05-10");
        assert!(!uploaded.approved);

        let mut owner = app.employee("007");
        let mine = owner.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert_eq!(mine.timesheets, [uploaded]);

        let missing_owner = importer
            .upload_timesheet(UploadTimesheetRequest {
                timesheet: Some(timesheet("2017-05-10", "StoreZero", 5.0)),
                request_id: String::new(),
            })
            .await
            .expect_err("user_id is required");
        assert_eq!(missing_owner.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&missing_owner), ["timesheet.user_id"]);
    }
}

mod acknowledged_writes {
    use super::*;

    async fn survive_a_restart(backend: Backend) {
        let Some(app) = spawn_app(backend).await else {
            return;
        };
        let created = app
            .employee("alice@exampleco.com")
            .create_timesheet(create("2026-11-27", "Website", 7.5))
            .await
            .expect("create")
            .into_inner();
        let app = app.restart().await;
        let fetched = app
            .employee("alice@exampleco.com")
            .get_timesheet(GetTimesheetRequest {
                id: created.id.clone(),
            })
            .await
            .expect("still there after restart")
            .into_inner();
        assert_eq!(fetched, created);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn survive_a_restart_on_sqlite() {
        survive_a_restart(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn survive_a_restart_on_postgres() {
        survive_a_restart(Backend::Postgres).await;
    }
}
